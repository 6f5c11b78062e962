"""The heartbeat body of one live runner, built from the sampler's published readings.

Fields as go-livepeer's LiveRunnerHeartbeatRequest names them (runner_id is added by the
keeper): runner_url, app, version, metadata, status, mode, gpu, capacity, price_info,
session_ids. Each beat reads the readings afresh, so `status` follows the GPU.
"""

from __future__ import annotations

from importlib import metadata as package_metadata
from typing import Any

from worker.config import Settings
from worker.registration.live_runner import price_literal
from worker.registration.readiness import (
    Readiness,
    runner_gpu,
    runner_metadata,
    runner_readiness,
)
from worker.registration.runner_keeper import Beat
from worker.registration.runners import RunnerSpec
from worker.sampling.published import Readings


def worker_version() -> str:
    try:
        return package_metadata.version("agent-net")
    except package_metadata.PackageNotFoundError:
        return "0+unknown"


class BeatBuilder:
    """Builds each heartbeat of one runner from the readings in the runtime directory."""

    def __init__(
        self, settings: Settings, spec: RunnerSpec, readings: Readings, runner_url: str
    ) -> None:
        self.spec = spec
        self.readings = readings
        self.gpu_index = settings.live_runner_gpu_index
        self.capacity = settings.capability_capacity
        self.price_unit = settings.live_runner_price_unit
        self.version = worker_version()
        self._runner_url = runner_url

    def readiness(self) -> Readiness:
        return runner_readiness(self.readings.views(), self.gpu_index, self.spec.model)

    def __call__(self) -> Beat:
        views = self.readings.views()
        readiness = runner_readiness(views, self.gpu_index, self.spec.model)
        body: dict[str, Any] = {
            "runner_url": self._runner_url,
            "app": self.spec.app,
            "version": self.version,
            "metadata": runner_metadata(views, self.gpu_index, readiness),
            "status": readiness.status,
            "mode": self.spec.mode,
            "capacity": self.spec.capacity or self.capacity,
            "price_info": {
                "price": price_literal(self.spec.price),
                "currency": "usd",
                "unit": self.price_unit,
            },
            "session_ids": [],
        }
        gpu = runner_gpu(views[0].data, self.gpu_index)
        if gpu is not None:
            body["gpu"] = gpu
        return Beat(body, readiness)
