"""The runtime directory this container's processes share, and atomic writes into it.

The gunicorn master creates it (or takes `AGENT_NET_RUNTIME_DIR`) and hands it to every
child: the sampler publishes its readings there, the registrar its state, the HTTP
workers keep their capacity lock file and prometheus_client its multiprocess files there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

RUNTIME_DIR_VARIABLE = "AGENT_NET_RUNTIME_DIR"
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PARENT_VARIABLE = "AGENT_NET_PARENT_PID"


def prepare_runtime_dir() -> tuple[Path, bool]:
    """The directory shared by this container's processes; created (and owned) if unset."""
    existing = os.environ.get(RUNTIME_DIR_VARIABLE)
    if existing:
        path = Path(existing)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    path = Path(tempfile.mkdtemp(prefix="agent-net-"))
    os.environ[RUNTIME_DIR_VARIABLE] = str(path)
    return path, True


def prepare_metrics_dir(runtime_dir: Path) -> Path:
    """An empty prometheus_client multiprocess directory under the runtime dir, in the env.

    Must run before anything imports prometheus_client: it picks its value store once.
    """
    path = runtime_dir / "prometheus"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[METRICS_DIR_VARIABLE] = str(path)
    return path


def runtime_dir_from_env() -> Path:
    """The runtime directory a child process was given (the current one if none)."""
    return Path(os.environ.get(RUNTIME_DIR_VARIABLE) or ".")


def write_json_atomically(path: Path, document: Any) -> None:
    """Replace `path` with `document` as compact JSON at once: a reader never sees half."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # dumps, then one write: json.dump streams through the pure-Python encoder.
        text = json.dumps(document, separators=(",", ":"))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
