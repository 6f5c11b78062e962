"""gunicorn, in-process: settings, hooks and the app factory for each forked worker.

The master binds the port, starts the container's one sampler and one registrar
(worker/supervisor.py), and forks the HTTP workers; each worker builds its app over the
sampler's published readings. On exit the master stops its children (the registrar
unregisters) after the workers.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from worker.config import Settings
from worker.supervisor import Child, SupervisingArbiter, stop_children

log = logging.getLogger("agent_net.server")
# Leave room inside Docker's default 10 s stop grace period for unregistering.
GRACEFUL_TIMEOUT_SECONDS = 5
CHILDREN_STOP_TIMEOUT_SECONDS = 4.0
# gunicorn's own gthread worker; gevent's with a quick stop that prints no traceback.
WORKER_CLASSES = {"gthread": "gthread", "gevent": "worker.http.gevent_worker.QuietGeventWorker"}
# How long a new HTTP worker waits for the sampler's first readings beyond the sources'
# own timeouts (the sampler process needs a moment to start and import its readers).
FIRST_READINGS_GRACE_SECONDS = 3.0


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


# Per connection's greenlet: the event loop's iteration when its last request began.
_last_iteration: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def yield_to_hub(worker: Any, request: Any) -> None:
    """gunicorn `pre_request` under gevent: let other greenlets run once per request.

    A keep-alive connection whose next request is already buffered would otherwise be
    served again and again without yielding, and other connections' tails grow long.
    A greenlet that has waited since its last request began (the event loop has turned
    since, which it only does while this greenlet waits), or that has just started, has
    let the others run already: it goes on at once, without a turn of the loop on the
    path to its answer (an agent's first token).
    """
    import gevent

    loop = gevent.get_hub().loop
    current = gevent.getcurrent()
    iteration = getattr(loop, "iteration", None)
    last = _last_iteration.get(current)
    if iteration is None or (last is not None and last == iteration):
        gevent.sleep(0)
        iteration = getattr(loop, "iteration", None)
    if iteration is not None:
        _last_iteration[current] = iteration


class WorkerServer(BaseApplication):
    """Runs create_app() under gunicorn (gthread or gevent) with the worker's settings."""

    def __init__(
        self, settings: Settings, runtime_dir: Path, app_factory: Callable[[], Any] | None = None
    ) -> None:
        self.settings = settings
        self.runtime_dir = runtime_dir
        self.app_factory = app_factory
        self.children = [Child("sampler", "worker.sampling", runtime_dir)]
        if settings.orchestrators:
            self.children.append(Child("registrar", "worker.registration", runtime_dir))
        super().__init__()

    def run(self) -> None:
        """Run gunicorn's master loop, supervising the sampler and the registrar too."""
        SupervisingArbiter(self, self.children).run()

    def load_config(self) -> None:
        settings = self.settings
        options: dict[str, Any] = {
            "bind": [_bind_address(settings.worker_host, settings.worker_port)],
            "workers": settings.worker_workers,
            "worker_class": WORKER_CLASSES[settings.worker_class],
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
        from worker.http.app import create_app  # in the worker process, after gevent patches

        return create_app(self.settings, self.runtime_dir)

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
        if not settings.orchestrators:
            log.info(
                'registration_disabled reason="ORCH_URL is not set; the worker runs unregistered"'
            )
        for child in self.children:
            child.start()

    def _post_worker_init(self, worker: Any) -> None:
        """Serve only once the sampler has read every source once (bounded wait)."""
        from worker.sampling.published import Readings

        settings = self.settings
        readings = Readings(self.runtime_dir, stale_after=settings.stale_after_seconds)
        deadline = (
            time.monotonic()
            + FIRST_READINGS_GRACE_SECONDS
            + max(settings.nvml_timeout_seconds, settings.ollama_timeout_seconds)
        )
        while not readings.ready() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _child_exit(self, server: Any, worker: Any) -> None:
        # In the master, after a worker process ended: its metrics files are now final.
        from worker.http import metrics

        metrics.process_exited(worker.pid)

    def _on_exit(self, server: Any) -> None:
        stop_children(self.children, CHILDREN_STOP_TIMEOUT_SECONDS)
        log.info("worker_stopped")


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
