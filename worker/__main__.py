"""`python -m worker`: validate settings, then serve under gunicorn."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any

from worker.config import ConfigError, Settings, load_settings
from worker.logs import setup_logging
from worker.runtime import prepare_metrics_dir, prepare_runtime_dir


def serve(settings: Settings, app_factory: Callable[[], Any] | None = None) -> int:
    """Prepare the runtime and metrics directories, then run gunicorn until it stops.

    `app_factory` replaces the worker's app (the benchmark's baseline uses it), keeping
    every gunicorn option and hook.
    """
    runtime_dir, owned = prepare_runtime_dir()
    prepare_metrics_dir(runtime_dir)  # before prometheus_client is imported anywhere
    from worker.server import WorkerServer

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
            shutil.rmtree(runtime_dir, ignore_errors=True)
    return 0


def main() -> int:
    from worker.agents import load_agents

    try:
        settings = load_settings(os.environ)
        load_agents(settings)  # a bad agents file stops startup here, like a bad variable
    except ConfigError as error:
        print(f"agent-net: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    if settings.job_token is None:
        # Without a token the live-runner route prefix is random per start; the HTTP
        # workers (forked) and the registrar (spawned) inherit it from here.
        from worker.registration.runners import PREFIX_VARIABLE, new_route_prefix

        os.environ[PREFIX_VARIABLE] = new_route_prefix()
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
