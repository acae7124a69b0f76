#!/usr/bin/env bash
# Checks the deployment files offline (no AWS account, region or credentials needed):
#   cfn-lint template.yaml
#   sam validate --lint --template template.yaml
#   checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet
#   infra/deployer-policy.json is valid JSON, infra/samconfig.toml is valid TOML.
# Every checkov check the template skips is named, with its reason, in the resource's
# `Metadata: checkov: skip:`. Exits non-zero if any check fails (all of them run).
#
# The tools live in their own virtualenv, .venv/tools (inside the repo's ignored .venv), because
# aws-sam-cli and checkov pin boto3/botocore, urllib3, click and networkx to versions that would
# downgrade what moto (scripts/test.sh, in .venv) runs on. First run: ~2 min to install (PyPI);
# afterwards 16 s on 2 idle cores (36 s beside a cargo build).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

SAM_VERSION="1.170.0"
CHECKOV_VERSION="3.2.459"
CFN_LINT_VERSION="1.58.0"
TOOLS="$ROOT/.venv/tools"
TEMPLATE="template.yaml"

export SAM_CLI_TELEMETRY=0          # no network call from sam
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
export BC_SKIP_MAPPING=TRUE         # checkov: do not fetch guideline mappings

# --- tools ---------------------------------------------------------------------------------------
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "==> creating $ROOT/.venv"
    python3 -m venv "$ROOT/.venv" || exit 1
fi
if [ ! -x "$TOOLS/bin/python" ]; then
    echo "==> creating $TOOLS"
    python3 -m venv "$TOOLS" || exit 1
fi
if ! "$TOOLS/bin/python" - "$SAM_VERSION" "$CHECKOV_VERSION" "$CFN_LINT_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
assert version("aws-sam-cli") == sys.argv[1]
assert version("checkov") == sys.argv[2]
assert version("cfn-lint") == sys.argv[3]
PY
then
    echo "==> installing aws-sam-cli $SAM_VERSION, checkov $CHECKOV_VERSION, cfn-lint $CFN_LINT_VERSION into $TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check \
        "aws-sam-cli==$SAM_VERSION" "checkov==$CHECKOV_VERSION" "cfn-lint==$CFN_LINT_VERSION" || exit 1
fi

# --- checks --------------------------------------------------------------------------------------
failed=()
run() {
    local name="$1"
    shift
    echo "==> $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

run "cfn-lint" "$TOOLS/bin/cfn-lint" "$TEMPLATE"
run "sam validate --lint" "$TOOLS/bin/sam" validate --lint --template "$TEMPLATE"
run "checkov" "$TOOLS/bin/checkov" -f "$TEMPLATE" --framework cloudformation \
    --skip-download --compact --quiet
run "infra/deployer-policy.json is JSON" "$TOOLS/bin/python" -m json.tool \
    infra/deployer-policy.json /dev/null
run "infra/samconfig.toml is TOML" "$TOOLS/bin/python" -c \
    'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' infra/samconfig.toml

if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-template: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "check-template: all checks passed"
