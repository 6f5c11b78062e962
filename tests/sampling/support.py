"""Child Pythons for NVML tests: the stand-in reaches a process only through LD_LIBRARY_PATH
at start-up, so each check runs `CHILD_PRELUDE + code` in a fresh interpreter and reads
back the one `RESULT <json>` line it printed (`emit(obj)`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

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


def result_of(stdout: str, stderr: str) -> dict:
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise AssertionError(f"child printed no RESULT line\nstdout:\n{stdout}\nstderr:\n{stderr}")


def run_child(code: str, env: dict[str, str], timeout: float = 30) -> dict:
    """Run CHILD_PRELUDE + code in a fresh Python; return what it emitted."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD_PRELUDE + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return result_of(proc.stdout, proc.stderr)
