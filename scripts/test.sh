#!/usr/bin/env bash
# Install what the tests need (into .venv) and run every test.
#   scripts/test.sh               everything, live Docker tests included
#   scripts/test.sh --no-docker   everything except the live Docker engine tests
#   scripts/test.sh -- ARGS       extra arguments for pytest (e.g. -- -k registration)
# Besides .venv it installs promtool and prometheus (Debian's `prometheus` package, with
# apt-get, when run as root and they are missing): the alert-rule tests run them.
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

ensure_prometheus() {
  command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "agent-net: installing promtool and prometheus (Debian's prometheus package)" >&2
    apt-get update -qq >/dev/null
    # the tests start their own Prometheus on a free loopback port, never the package's service
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "agent-net: promtool/prometheus missing and not root with apt-get:" \
      "install Debian's prometheus package (the alert-rule tests need it)" >&2
  fi
}

ensure_venv "[test]"
ensure_prometheus
cd "$ROOT"
echo "agent-net: ruff check, ruff format --check" >&2
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
echo "agent-net: pytest" >&2
exec "$VENV/bin/python" -m pytest "${pytest_args[@]}"
