#!/usr/bin/env python3
"""Regenerate tests/fixtures/standardwebhooks_python.json: a few Standard
Webhooks messages, each signed by scripts/sign_standardwebhooks.py (that is, by
the PyPI `standardwebhooks` package). The Rust unit test
`inbound::auth::standard_webhooks::tests::python_library_fixture` verifies
every case.

    python3 -m venv /tmp/venv-sw && /tmp/venv-sw/bin/pip install standardwebhooks
    /tmp/venv-sw/bin/python scripts/gen_standardwebhooks_fixture.py

Everything here is deterministic, so rerunning gives the same file.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from importlib.metadata import version

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGN = os.path.join(ROOT, "scripts", "sign_standardwebhooks.py")
OUT = os.path.join(ROOT, "tests", "fixtures", "standardwebhooks_python.json")


def test_secret(label: str, length: int = 32, prefix: str = "whsec_", pad: bool = True) -> str:
    """A made-up test secret, derived from a label."""
    raw = hashlib.sha512(label.encode()).digest()[:length]
    encoded = base64.b64encode(raw).decode()
    return prefix + (encoded if pad else encoded.rstrip("="))


def sign(secret: str, msg_id: str, timestamp: str, body: str) -> str:
    with tempfile.NamedTemporaryFile("wb", delete=False) as file:
        file.write(body.encode("utf-8"))
        path = file.name
    try:
        result = subprocess.run(
            [sys.executable, SIGN, "--id", msg_id, "--timestamp", timestamp, "--body-file", path],
            env={**os.environ, "WEBHOOK_SECRET": secret},
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(path)
    return result.stdout.strip()


def big_body() -> str:
    """A multi-KB payout batch, compact JSON."""
    items = [
        {
            "payee_id": f"emp_{i:04d}",
            "name": f"Employee {i}",
            "amount": f"{1000 + i * 37 % 997}.{i % 100:02d}",
            "currency": "EUR",
            "reference": f"payroll-2024-06-{i:04d}",
        }
        for i in range(60)
    ]
    return json.dumps({"type": "payroll.batch", "items": items}, separators=(",", ":"))


def main() -> None:
    cases = [
        {
            "name": "reference vector",
            "secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "id": "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "timestamp": "1649367553",
            "body": '{"email":"test@example.com","username":"test_user"}',
        },
        {
            "name": "secret without whsec_ prefix",
            "secret": test_secret("bare", prefix=""),
            "id": "msg_bare_secret",
            "timestamp": "1700000000",
            "body": '{"type":"payout.created","amount":"12.50"}',
        },
        {
            "name": "unpadded 31-byte secret",
            "secret": test_secret("unpadded", length=31, pad=False),
            "id": "msg_unpadded",
            "timestamp": "1700000300",
            "body": '{"type":"ping"}',
        },
        {
            "name": "unicode body",
            "secret": test_secret("unicode"),
            "id": "msg_unicode_01",
            "timestamp": "1718000000",
            "body": '{"payee":"Zoë Ñandú-Łukasz","note":"支払い — 给付 💸","city":"Zürich"}',
        },
        {
            "name": "multi-KB body",
            "secret": test_secret("big", length=64),
            "id": "msg_big_batch",
            "timestamp": "1718003600",
            "body": big_body(),
        },
        {
            "name": "pretty-printed body with trailing newline",
            "secret": test_secret("newline", length=24),
            "id": "msg_whitespace",
            "timestamp": "1718007200",
            "body": '{\n  "event": "payout.failed",\n  "reason": "IBAN \\"invalid\\""\n}\n',
        },
        {
            "name": "empty body",
            "secret": test_secret("empty"),
            "id": "msg_empty",
            "timestamp": "1718010800",
            "body": "",
        },
    ]
    for case in cases:
        case["signature"] = sign(case["secret"], case["id"], case["timestamp"], case["body"])

    # Rotation: the sender signs with the new and the old secret; the receiver
    # knows only the old one (listed after a third, unrelated one).
    new, old = test_secret("rotation-new"), test_secret("rotation-old")
    rotation = {
        "name": "rotation: two signatures and a v1a entry in the header",
        "secret": old,
        "other_secrets": [test_secret("rotation-unrelated")],
        "id": "msg_rotation",
        "timestamp": "1718014400",
        "body": '{"type":"payout.paid"}',
    }
    by_new = sign(new, rotation["id"], rotation["timestamp"], rotation["body"])
    by_old = sign(old, rotation["id"], rotation["timestamp"], rotation["body"])
    rotation["signature"] = f"{by_new} v1a,c29tZSBhc3ltbWV0cmljIHNpZ25hdHVyZQ== {by_old}"
    cases.append(rotation)

    fixture = {
        "generator": "scripts/gen_standardwebhooks_fixture.py via scripts/sign_standardwebhooks.py",
        "library": f"standardwebhooks {version('standardwebhooks')} (PyPI)",
        "note": "test secrets only; every case must verify at now = timestamp",
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as file:
        json.dump(fixture, file, ensure_ascii=False, indent=2)
        file.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
