"""gunicorn, in-process: settings, hooks and the app factory for each forked worker.

The master binds the port and forks; each worker process builds its own sampler (NVML
must be initialised after fork) and app. The master also owns the container's single
registrar: started once the server is ready, stopped (unregistering) on exit.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from worker import metrics, registrar
from worker.app import create_app
from worker.config import Settings
from worker.sampling import Sampler

log = logging.getLogger("agent_net.server")
# Leave room inside Docker's default 10 s stop grace period for unregistering.
GRACEFUL_TIMEOUT_SECONDS = 5
UNREGISTER_TIMEOUT_SECONDS = 4.0


def gunicorn_logconfig(settings: Settings) -> dict[str, Any]:
    """gunicorn's own log lines in the worker's format (access log off; the app logs)."""
    formatter = (
        {"()": "worker.logs.JsonFormatter"}
        if settings.log_format == "json"
        else {"()": "worker.logs.TextFormatter"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"agent_net": formatter},
        "filters": {"gunicorn_events": {"()": "worker.logs.GunicornEvents"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "agent_net",
                "stream": "ext://sys.stderr",
            },
            "gunicorn_stderr": {
                "class": "logging.StreamHandler",
                "formatter": "agent_net",
                "stream": "ext://sys.stderr",
                "filters": ["gunicorn_events"],
            },
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {
                "level": settings.log_level,
                "handlers": ["gunicorn_stderr"],
                "propagate": False,
            },
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
        },
    }


def yield_to_hub(worker: Any, request: Any) -> None:
    """gunicorn `pre_request` under gevent: let other greenlets run once per request.

    A keep-alive connection whose next request is already buffered would otherwise be
    served again and again without yielding, and other connections' tails grow long.
    """
    import gevent

    gevent.sleep(0)


class WorkerServer(BaseApplication):
    """Runs create_app() under gunicorn (gthread or gevent) with the worker's settings."""

    def __init__(
        self, settings: Settings, runtime_dir: Path, app_factory: Callable[[], Any] | None = None
    ) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.app_factory = app_factory
        self.sampler: Sampler | None = None
        super().__init__()

    def load_config(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "bind": [_bind_address(settings.worker_host, settings.worker_port)],
            "workers": settings.worker_workers,
            "worker_class": settings.worker_class,
            "timeout": 30,
            "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
            "keepalive": 5,
            "limit_request_line": 4094,
            "limit_request_fields": 100,
            "preload_app": False,
            "proc_name": "agent-net-worker",
            # gunicorn 24+ opens a control socket under $HOME; the worker needs none, and a
            # non-root container user may have no writable home.
            "control_socket_disable": True,
            "logconfig_dict": gunicorn_logconfig(settings),
            "when_ready": self._when_ready,
            "post_worker_init": self._post_worker_init,
            "worker_exit": self._worker_exit,
            "child_exit": self._child_exit,
            "on_exit": self._on_exit,
        }
        if settings.worker_class == "gevent":
            # One greenlet per connection: slow or silent clients cost memory, not threads.
            options |= {"worker_connections": settings.worker_connections}
            options["pre_request"] = yield_to_hub
        else:
            options |= {"threads": settings.worker_threads}
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        if self.app_factory is not None:
            return self.app_factory()
        sampler = Sampler(self.settings)
        self.sampler = sampler
        return create_app(self.settings, sampler, self.runtime_dir)

    # --- hooks ------------------------------------------------------------------------------
    def _when_ready(self, server: Any) -> None:
        settings = self.settings
        log.info(
            "worker_listening address=%s class=%s workers=%d %s",
            _bind_address(settings.worker_host, settings.worker_port),
            settings.worker_class,
            settings.worker_workers,
            f"connections={settings.worker_connections}"
            if settings.worker_class == "gevent"
            else f"threads={settings.worker_threads}",
        )
        registrar.start(self.settings, self.runtime_dir)

    def _post_worker_init(self, worker: Any) -> None:
        # The app is loaded in the worker process, after fork: start its sampler threads here.
        if self.sampler is not None:
            self.sampler.start()
            self.sampler.wait_first_readings()

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def _child_exit(self, server: Any, worker: Any) -> None:
        # In the master, after a worker process ended: its metrics files are now final.
        metrics.process_exited(worker.pid)

    def _on_exit(self, server: Any) -> None:
        registrar.stop(timeout=UNREGISTER_TIMEOUT_SECONDS)
        log.info("worker_stopped")


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def remove_runtime_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
