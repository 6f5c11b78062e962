# shellcheck shell=bash
# Sourced by run.sh and test.sh: make sure .venv exists with the project installed.
# Usage: ensure_venv EXTRAS   (EXTRAS: "" for the worker alone, "[test]" for the test suite)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENT_NET_VENV:-$ROOT/.venv}"

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "agent-net: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

ensure_venv() {
  local extras="$1" python stamp wanted installed
  if [ ! -x "$VENV/bin/python" ]; then
    python="$(find_python)" || return 1
    echo "agent-net: creating virtual environment in $VENV" >&2
    "$python" -m venv "$VENV" || {
      echo "agent-net: '$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
      return 1
    }
  fi
  stamp="$VENV/.agent-net-installed"
  wanted="$(sha256sum <"$ROOT/pyproject.toml" | cut -c1-16)$extras"
  installed="$(cat "$stamp" 2>/dev/null || true)"
  # The test set includes the runtime set: run.sh needs no reinstall after test.sh.
  if [ "$installed" != "$wanted" ] && [ "$installed" != "$wanted[test]" ]; then
    echo "agent-net: installing dependencies${extras:+ $extras} into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT$extras"
    echo "$wanted" >"$stamp"
  fi
}
