#!/usr/bin/env bash
# Install what the tests need (into .venv) and run every test.
#   scripts/test.sh               everything, live Docker tests included
#   scripts/test.sh --no-docker   everything except the live Docker engine tests
#   scripts/test.sh -- ARGS       extra arguments for pytest (e.g. -- -k registration)
#   scripts/test.sh --help        what it installs, as whom, and how long it takes
set -euo pipefail
# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"

usage() {
  cat <<'EOF'
Usage: scripts/test.sh [--no-docker] [-- PYTEST_ARGS...]

Installs what the tests need, then runs ruff check, ruff format --check and every test.

What it installs, and as whom:
  - .venv in the repository (created when missing), with the project and its [test]
    extra from PyPI: as you, no root needed.
  - The NVML stand-in (tests/standins/nvml), compiled with cc into pytest's temporary
    directory: as you.
  - promtool and prometheus, for the alert-rule and dashboard tests, when missing: as
    root, on a machine with apt, apt-get installs Debian's prometheus package (the tests
    start their own Prometheus on a free loopback port, never the package's service).
    Not root: install that package yourself, or those tests fail and say so.
  - For the live Docker tests only, when no Docker engine answers: as root, on a machine
    with apt, apt-get installs docker.io and debootstrap, and dockerd runs for the length
    of the tests (stopped afterwards; tests/docker/provision_engine.py). An engine that
    already answers is used as it is. Neither root nor an engine: those tests fail and
    name --no-docker.

How long, on a 2-core machine: about 10 minutes with the Docker tests on an idle machine
(598 s in a fresh clone), more on a first run, which installs the engine and builds the
images; about 9.5 minutes with --no-docker while another process keeps one core busy
(565-580 s over three runs).

Options:
  --no-docker   leave out the live Docker-engine tests (marker docker): nothing is
                installed as root and no engine is started
  -- ARGS       pass ARGS to pytest, e.g. scripts/test.sh -- -k registration
  -h, --help    print this help and exit
EOF
}

pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
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
