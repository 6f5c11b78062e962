"""The sampler process: the only process of the container that talks to NVML and Ollama.

The gunicorn master spawns `python -m worker.sampling` once (worker/supervisor.py) and
restarts it if it dies. It reads each source in its own thread, on an interval and with
its own timeout, and publishes every change to the runtime directory
(worker/sampling/published.py), where every HTTP worker reads the same readings. New
background work on the GPU or the models (health watches, residency) belongs here, as
one more component started and stopped by `Sampler`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.config import ConfigError, Settings, load_settings
from worker.residency.loop import ResidencyLoop
from worker.runtime import PARENT_VARIABLE, runtime_dir_from_env
from worker.sampling.nvml import GpuReader
from worker.sampling.ollama_catalogue import OllamaReader
from worker.sampling.published import Publisher
from worker.sampling.readings import Catalogue, GpuReport
from worker.sampling.source import SourceSampler
from worker.sampling.xid_history import XID_HISTORY_FILE, XidHistory

log = logging.getLogger("agent_net.sampler")
POLL_SECONDS = 0.1
# How long a stop waits for an Ollama read or a residency run in flight (the master gives
# the sampler 4 s in all); one still running then is left to end with the process.
STOP_WAIT_SECONDS = 1.5


class Sampler:
    """NVML and Ollama, each read in its own thread, published to `runtime_dir`."""

    def __init__(self, settings: Settings, runtime_dir: Path) -> None:
        self._gpu_reader = GpuReader(xid_history=XidHistory(settings.data_dir / XID_HISTORY_FILE))
        self._ollama_reader = OllamaReader(settings.ollama_host, settings.ollama_timeout_seconds)
        self.publisher = Publisher(runtime_dir, self._document)
        interval = settings.sample_interval_seconds
        self.nvml: SourceSampler[GpuReport] = SourceSampler(
            "nvml",
            self._gpu_reader.read,
            interval=interval,
            timeout=settings.nvml_timeout_seconds,
            on_change=self.publisher.publish,
        )
        self.ollama: SourceSampler[Catalogue] = SourceSampler(
            "ollama",
            self._ollama_reader.read,
            interval=interval,
            timeout=settings.ollama_timeout_seconds,
            on_change=self.publisher.publish,
        )
        self.residency = ResidencyLoop(
            settings, lambda: (self.nvml.state, self.ollama.state), self.publisher.publish
        )

    def _document(self) -> dict[str, Any]:
        return {
            "sources": {
                "nvml": self.nvml.as_json(GpuReport.as_json),
                "ollama": self.ollama.as_json(Catalogue.as_json),
            },
            "residency": self.residency.as_json(),
        }

    def start(self) -> None:
        self.publisher.publish()  # the pid first: workers see "pending", not "not started"
        self.nvml.start()
        self.ollama.start()
        self.residency.start()

    def stop(self) -> None:
        """Stop every thread; close what each used only once it has ended (a client closed
        under a read in flight would fail that read, and log it, during a clean stop)."""
        self.nvml.stop()
        self.residency.stop(wait=STOP_WAIT_SECONDS)
        if self.ollama.stop(wait=min(self.ollama.timeout, STOP_WAIT_SECONDS)):
            self._ollama_reader.close()
        if self.nvml.state.in_flight_since is None:  # never wait on a wedged driver
            self._gpu_reader.close()


def run(settings: Settings, runtime_dir: Path, stopping: Callable[[], bool], parent: int) -> int:
    """Sample until `stopping()` is true or the parent process is gone."""
    sampler = Sampler(settings, runtime_dir)
    sampler.start()
    log.info(
        "sampling_started interval=%g nvml_timeout=%g ollama_timeout=%g",
        settings.sample_interval_seconds,
        settings.nvml_timeout_seconds,
        settings.ollama_timeout_seconds,
    )
    while not stopping():
        time.sleep(POLL_SECONDS)
        if os.getppid() != parent:
            log.warning("sampler_parent_gone action=exit")
            break
    sampler.stop()
    log.info("sampler_stopped pid=%d", os.getpid())
    return 0


def main() -> int:
    """`python -m worker.sampling`: the child the gunicorn master spawns."""
    from worker.logs import setup_logging

    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        print(f"agent-net sampler: {error}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, settings.log_format)
    signalled: list[int] = []
    # The handler only records the signal: it must take no lock the main thread may hold.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: signalled.append(number))
    parent = int(os.environ.get(PARENT_VARIABLE) or os.getppid())
    return run(settings, runtime_dir_from_env(), lambda: bool(signalled), parent)
