#!/usr/bin/env bash
# Run the Agent-Net worker (creates .venv on first use). Settings come from the
# environment; see docs/operator.md. Example: WORKER_PORT=9876 scripts/run.sh
set -euo pipefail
# shellcheck source=scripts/_venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv ""
cd "$ROOT"
exec "$VENV/bin/python" -m worker "$@"
