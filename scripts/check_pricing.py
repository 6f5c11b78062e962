#!/usr/bin/env python3
"""Check that gateways will accept the orchestrator's price and tickets before going live.

Reads orchestrator_config/orchestrator.conf and gateway_config/gateway.conf (or the paths
given with --orchestrator / --gateway) and prints a side-by-side table.
Exit status: 0 accepted, 1 mismatch, 2 a file missing or malformed. --json for JSON.
Also installed as the ``agent-net-check-pricing`` command.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from payments.check_pricing_cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(root=ROOT))
