"""`python -m worker`: validate settings, then serve under gunicorn."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.config import ConfigError, Settings, load_settings
from worker.logs import setup_logging

RUNTIME_DIR_VARIABLE = "AGENT_NET_RUNTIME_DIR"
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


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


def serve(settings: Settings, app_factory: Callable[[], Any] | None = None) -> int:
    """Prepare the runtime and metrics directories, then run gunicorn until it stops.

    `app_factory` replaces the worker's app (the benchmark's baseline uses it), keeping
    every gunicorn option and hook.
    """
    runtime_dir, owned = prepare_runtime_dir()
    prepare_metrics_dir(runtime_dir)  # before prometheus_client is imported (worker.server)
    from worker.server import WorkerServer, remove_runtime_dir

    logging.getLogger("agent_net.server").info(
        "worker_starting ollama_host=%s model=%s orchestrators=%d runtime_dir=%s",
        settings.ollama_host,
        settings.ollama_model,
        len(settings.orch_urls),
        runtime_dir,
    )
    master_pid = os.getpid()
    try:
        WorkerServer(settings, runtime_dir, app_factory).run()
    finally:
        # gunicorn ends each forked worker with sys.exit, which unwinds through here too:
        # only the master, which created the directory, may remove it.
        if owned and os.getpid() == master_pid:
            remove_runtime_dir(runtime_dir)
    return 0


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        print(f"agent-net: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
