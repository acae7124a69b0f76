#!/usr/bin/env bash
# Installs the deployment tools, at pinned versions, into their own virtualenv, .venv/tools
# (inside the repo's ignored .venv):
#   aws-sam-cli (sam), checkov, cfn-lint    scripts/check-template.sh
#   cargo-lambda (+ ziglang, its linker)    scripts/check-sam-build.sh, `sam build`, `cargo lambda`
# Does nothing when they are installed already. Use them with
#   export PATH="$PWD/.venv/tools/bin:$PATH"
#
# Why a venv of their own: aws-sam-cli and checkov pin boto3/botocore, urllib3, click and networkx
# to versions that would downgrade what moto (scripts/test.sh, in .venv) runs on.
# First run: about 2 minutes (PyPI); afterwards under a second.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

SAM_VERSION="1.170.0"
CHECKOV_VERSION="3.2.459"
CFN_LINT_VERSION="1.58.0"
CARGO_LAMBDA_VERSION="1.9.2"
TOOLS="$ROOT/.venv/tools"

if [ ! -x "$ROOT/.venv/bin/python" ]; then      # the repo's venv (moto), as scripts/test.sh makes it
    echo "==> creating $ROOT/.venv"
    python3 -m venv "$ROOT/.venv" || exit 1
fi
if [ ! -x "$TOOLS/bin/python" ]; then
    echo "==> creating $TOOLS"
    python3 -m venv "$TOOLS" || exit 1
fi
if ! "$TOOLS/bin/python" - "$SAM_VERSION" "$CHECKOV_VERSION" "$CFN_LINT_VERSION" \
    "$CARGO_LAMBDA_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
assert version("aws-sam-cli") == sys.argv[1]
assert version("checkov") == sys.argv[2]
assert version("cfn-lint") == sys.argv[3]
assert version("cargo-lambda") == sys.argv[4]
PY
then
    echo "==> installing aws-sam-cli $SAM_VERSION, checkov $CHECKOV_VERSION, cfn-lint $CFN_LINT_VERSION," \
        "cargo-lambda $CARGO_LAMBDA_VERSION into $TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check \
        "aws-sam-cli==$SAM_VERSION" "checkov==$CHECKOV_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
        "cargo-lambda==$CARGO_LAMBDA_VERSION" || exit 1
fi
