#!/usr/bin/env python3
"""Print the `webhook-signature` header value for a Standard Webhooks message,
computed by the reference Python package `standardwebhooks` (PyPI).

    python3 -m venv /tmp/venv-sw && /tmp/venv-sw/bin/pip install standardwebhooks
    /tmp/venv-sw/bin/python scripts/sign_standardwebhooks.py \
        --id msg_123 --timestamp 1700000000 --body-file body.json

The secret (`whsec_...` or bare base64) comes from --secret or, better (it then
stays out of the process list and shell history), from the environment
variable WEBHOOK_SECRET. The body file is read as bytes and must be UTF-8, as
the package signs text.
"""

import argparse
import os
import sys
from datetime import datetime, timezone

from standardwebhooks.webhooks import Webhook


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secret", help="whsec_... secret (default: $WEBHOOK_SECRET)")
    parser.add_argument("--id", required=True, help="message id (webhook-id)")
    parser.add_argument(
        "--timestamp", required=True, type=int, help="unix seconds (webhook-timestamp)"
    )
    parser.add_argument("--body-file", required=True, help="file holding the exact body")
    args = parser.parse_args()

    secret = args.secret or os.environ.get("WEBHOOK_SECRET")
    if not secret:
        parser.error("give --secret or set WEBHOOK_SECRET")
    with open(args.body_file, "rb") as file:
        body = file.read().decode("utf-8")

    timestamp = datetime.fromtimestamp(args.timestamp, tz=timezone.utc)
    print(Webhook(secret).sign(args.id, timestamp, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
