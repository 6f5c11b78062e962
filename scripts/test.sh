#!/usr/bin/env bash
# Install what the tests need (into .venv) and run every test.
#   scripts/test.sh               everything, live Docker tests included
#   scripts/test.sh --no-docker   everything except the live Docker engine tests
#   scripts/test.sh -- ARGS       extra arguments for pytest (e.g. -- -k registration)
set -euo pipefail
# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-docker) pytest_args+=(-m "not docker"); shift ;;
    --) shift; pytest_args+=("$@"); break ;;
    *) pytest_args+=("$1"); shift ;;
  esac
done

ensure_venv "[test]"
cd "$ROOT"
echo "agent-net: ruff check, ruff format --check" >&2
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "agent-net: pytest" >&2
exec "$VENV/bin/python" -m pytest "${pytest_args[@]}"
