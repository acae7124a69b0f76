#!/usr/bin/env bash
# The test command of payout-bridge: formatting, lints, the template checks, a real `sam build`
# of the Lambda function (scripts/check-sam-build.sh: 12-16 min cold on 2 shared cores, seconds
# to a few minutes afterwards), and every test, the AWS ones against a local moto server
# (DynamoDB and Secrets Manager emulator) through the real AWS SDK.
# Runs on a fresh machine without docker; needs python3 (with venv) and network access to PyPI
# the first time (and rustup, which cargo-lambda uses once to add the aarch64 rust-std).
# Extra arguments go to `cargo test`, e.g. `scripts/test.sh store_contract`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

MOTO_VERSION="5.2.5"
STANDARDWEBHOOKS_VERSION="1.1.0"
VENV="$ROOT/.venv"
mkdir -p "$ROOT/.tmp"

# --- Python tools (moto server; standardwebhooks signs test webhooks) -------------------------
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "$MOTO_VERSION" "$STANDARDWEBHOOKS_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
assert version("moto") == sys.argv[1] and version("standardwebhooks") == sys.argv[2]
import flask, flask_cors  # moto[server] extras
PY
then
    echo "==> installing moto[server] $MOTO_VERSION and standardwebhooks $STANDARDWEBHOOKS_VERSION"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi

# --- moto server on a free loopback port --------------------------------------------------------
# `moto_server -H 127.0.0.1 -p PORT` with its requests handled one at a time: moto is not atomic
# under concurrent conditional writes (see scripts/moto_serialized.py).
PORT="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
MOTO_LOG="$ROOT/.tmp/moto.log"
"$VENV/bin/python" "$ROOT/scripts/moto_serialized.py" -H 127.0.0.1 -p "$PORT" >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
cleanup() {
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ENDPOINT="http://127.0.0.1:$PORT"
ready=""
for _ in $(seq 1 100); do # up to ~20 s
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        break
    fi
    if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
        "$ENDPOINT/moto-api/" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ -z "$ready" ]; then
    echo "moto server did not come up on $ENDPOINT; its log ($MOTO_LOG):" >&2
    tail -n 50 "$MOTO_LOG" >&2 || true
    exit 1
fi
echo "==> moto server on $ENDPOINT (log: $MOTO_LOG)"

export AWS_ENDPOINT_URL="$ENDPOINT"
export AWS_REGION="us-east-1"
export AWS_ACCESS_KEY_ID="test"
export AWS_SECRET_ACCESS_KEY="test"
export AWS_EC2_METADATA_DISABLED="true"
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE AWS_ENDPOINT_URL_DYNAMODB \
    AWS_ENDPOINT_URL_SECRETS_MANAGER 2>/dev/null || true

# --- checks ---------------------------------------------------------------------------------------
echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "==> deployment checks: cfn-lint, sam validate --lint, checkov (scripts/check-template.sh)"
scripts/check-template.sh
echo "==> deployment build: a real sam build, arm64 bootstrap, no simulator (scripts/check-sam-build.sh)"
scripts/check-sam-build.sh
echo "==> cargo test $*"
TEST_LOG="$ROOT/.tmp/cargo-test.log"
cargo test "$@" 2>&1 | tee "$TEST_LOG"
# One closing line for the whole run (cargo prints one per test binary, the last being the
# doc-tests, which has none).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$TEST_LOG"
