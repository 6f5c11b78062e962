"""Run `agent-net doctor` as an operator would: a subprocess, in a directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.processes import ROOT

# A deadlock guard only: the doctor's own budget is 8 s; a loaded machine may add start-up.
DOCTOR_GUARD_SECONDS = 60
CONSOLE_SCRIPT = Path(sys.executable).parent / "agent-net"


@dataclass
class DoctorRun:
    code: int
    stdout: str
    stderr: str
    seconds: float  # wall time of the whole process, measured here (reported, not asserted)

    def document(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def checks(self) -> dict[str, dict[str, Any]]:
        """`--json` checks by name (e.g. "gpu 1", "model llama3:8b", "tls https://...")."""
        return {check["name"]: check for check in self.document()["checks"]}

    def line(self, name: str) -> str:
        """The text line of check `name` (verdict first, then the name)."""
        for line in self.stdout.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].startswith(name + " "):
                return line
        raise AssertionError(f"no line for {name!r} in:\n{self.stdout}")


def doctor_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`base` (a worker's environment) with the repository importable from anywhere."""
    env = {**base, **extra}
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any worker setting (as a fresh shell would have)."""
    prefixes = ("ORCH_", "CAPABILITY_", "WORKER_", "OLLAMA_", "FAKE_NVML", "AGENT_NET_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return doctor_env(base, **extra)


def run_doctor(
    env: Mapping[str, str], cwd: Path, *args: str, console_script: bool = False
) -> DoctorRun:
    """`python -m worker.cli doctor ARGS` (or the venv's `agent-net doctor ARGS`) in `cwd`."""
    command = (
        [str(CONSOLE_SCRIPT), "doctor", *args]
        if console_script
        else [sys.executable, "-m", "worker.cli", "doctor", *args]
    )
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=DOCTOR_GUARD_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    seconds = time.monotonic() - started
    print(f"doctor {' '.join(args)} ran {seconds:.2f} s (exit {result.returncode})")
    print(result.stdout)
    return DoctorRun(result.returncode, result.stdout, result.stderr, seconds)
