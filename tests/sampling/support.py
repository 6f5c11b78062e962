"""Child Pythons for NVML tests: the stand-in reaches a process only through LD_LIBRARY_PATH
at start-up, so each check runs `CHILD_PRELUDE + code` in a fresh interpreter and reads
back the one `RESULT <json>` line it printed (`emit(obj)`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers.child import run_python

ROOT = Path(__file__).resolve().parents[2]

# Start of every child: the repo root on sys.path, pynvml, the sampling modules, emit().
CHILD_PRELUDE = textwrap.dedent(
    f"""
    import json, os, sys, time
    sys.path.insert(0, {str(ROOT)!r})
    import pynvml
    from worker.sampling import gpu_health, xid_watch

    def emit(obj):
        print("RESULT " + json.dumps(obj), flush=True)
    """
)


def run_child(code: str, env: dict[str, str], timeout: float = 30) -> dict:
    """Run CHILD_PRELUDE + code in a fresh Python; return what it emitted."""
    return run_python(CHILD_PRELUDE, code, env, timeout)
