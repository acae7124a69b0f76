#!/usr/bin/env python3
"""Builds the Lambda test events under events/ from the raw bodies in events/bodies/.

Each event is an API Gateway HTTP API (payload v2) event, as the function receives it, signed
the way its route in events/routes.yaml expects, with the secrets from the environment (the
local defaults below when unset) and the current time, so that it passes the 5-minute
signature tolerance:

    scripts/make_events.py            # rewrite events/*.json now
    cargo lambda invoke payout-bridge --data-file events/payroll-payrun.json

Standard library only.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = os.path.join(ROOT, "events")

LOCAL_SECRETS = {
    "PAYROLL_WEBHOOK_SECRET": "whsec_cGF5b3V0LWJyaWRnZS1sb2NhbC10ZXN0LWtleSEh",
    "CRM_SIGNING_SECRET": "crm-local-secret",
    "FORM_API_KEY": "form-local-key",
    "PAYOUTS_KEY": "local-payouts-key",
}


def secret(name):
    return os.environ.get(name) or LOCAL_SECRETS[name]


def standard_webhooks(body, now, msg_id):
    key = base64.b64decode(secret("PAYROLL_WEBHOOK_SECRET")[len("whsec_"):])
    signed = f"{msg_id}.{now}.".encode() + body
    sig = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": f"v1,{sig}"}


def crm_hmac(body, now):
    signed = f"{now}.".encode() + body
    sig = hmac.new(secret("CRM_SIGNING_SECRET").encode(), signed, hashlib.sha256).hexdigest()
    return {"x-crm-timestamp": str(now), "x-crm-signature": f"sha256={sig}"}


# event file -> (route, body file, content type, signer)
EXAMPLES = {
    "payroll-payrun": ("payroll", "payroll-payrun.json", "application/json", "standard-webhooks"),
    "payroll-void": ("payroll-voids", "payroll-void.json", "application/json", "standard-webhooks"),
    "crm-deal-won": ("crm-deals", "crm-deal-won.json", "application/json", "hmac"),
    "form-payout": ("form-payouts", "form-payout.txt", "application/x-www-form-urlencoded", "form-key"),
    "canonical-create": ("payouts", "canonical-create.json", "application/json", "payouts-key"),
    "canonical-cancel": ("cancel", "canonical-cancel.json", "application/json", "payouts-key"),
}


def event(name, now):
    route, body_file, content_type, signer = EXAMPLES[name]
    with open(os.path.join(EVENTS, "bodies", body_file), "rb") as f:
        body = f.read()
    headers = {"content-type": content_type, "user-agent": f"example-sender/{name}"}
    if signer == "standard-webhooks":
        headers.update(standard_webhooks(body, now, f"msg_{name}_{now}"))
    elif signer == "hmac":
        headers.update(crm_hmac(body, now))
    elif signer == "form-key":
        headers["x-api-key"] = secret("FORM_API_KEY")
    else:
        headers["x-api-key"] = secret("PAYOUTS_KEY")
    path = f"/hooks/{route}"
    return {
        "version": "2.0",
        "routeKey": "POST /hooks/{name}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "pathParameters": {"name": route},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "example",
            "domainName": "example.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "example",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.10",
                "userAgent": headers["user-agent"],
            },
            "requestId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{now}")),
            "routeKey": "POST /hooks/{name}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": now * 1000,
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def main():
    """Optional argument: the unix time to sign with. EVENTS_OUT: another folder to write to."""
    now = int(time.time()) if len(sys.argv) < 2 else int(sys.argv[1])
    out = os.environ.get("EVENTS_OUT") or EVENTS
    for name in EXAMPLES:
        path = os.path.join(out, f"{name}.json")
        with open(path, "w") as f:
            json.dump(event(name, now), f, indent=2)
            f.write("\n")
        print(path)


if __name__ == "__main__":
    main()
