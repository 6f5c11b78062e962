"""Load worker/sampling/*.py by path, here and in child processes.

worker/sampling/ has no __init__.py yet (worker/sampling.py still owns the name
`worker.sampling`), so its modules are loaded from their files under the names
`agent_net_sampling_<module>`.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SAMPLING_DIR = ROOT / "worker" / "sampling"
STANDIN_DIR = ROOT / "tests" / "standins" / "nvml"


def load(name: str, directory: Path = SAMPLING_DIR) -> ModuleType:
    """Import ``directory/<name>.py`` (once) as ``agent_net_sampling_<name>``."""
    module_name = f"agent_net_sampling_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, directory / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# Start of every child: the same loader, and emit() for the one RESULT line.
CHILD_PRELUDE = textwrap.dedent(
    f"""
    import importlib.util, json, os, sys, time
    sys.path.insert(0, {str(ROOT)!r})
    import pynvml

    def load(name):
        spec = importlib.util.spec_from_file_location(
            "agent_net_sampling_" + name, {str(SAMPLING_DIR)!r} + "/" + name + ".py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

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
