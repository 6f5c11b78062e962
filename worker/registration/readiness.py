"""What a live runner tells the orchestrator about its GPU: fitness, status, gpu, metadata.

Readiness is the GPU's own: `ready` only while the sampler's NVML reading is fresh and
the GPU is fit, as worker/sampling/fitness.py's `gpu_fitness` judges it (the same
judgement that admits agents' jobs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.sampling.admission import refusal
from worker.sampling.fitness import gpu_fitness
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport
from worker.units import MIB

MAX_METADATA_BYTES = 1024  # live_runner.go:40, UTF-8 bytes
MAX_REASON_CHARS = 160
READY = "ready"
STARTING = "starting"  # no reading yet: the sampler is starting
UNHEALTHY = "unhealthy"  # stale or failed readings, or an unfit GPU


def _nvml(views: Sequence[SourceView[Any]]) -> SourceView[GpuReport] | None:
    return next((view for view in views if view.name == "nvml"), None)


@dataclass(frozen=True)
class Readiness:
    """The `status` a heartbeat sends, and why it is not ready (None when ready)."""

    status: str
    reason: str | None

    @property
    def ready(self) -> bool:
        return self.status == READY


def runner_readiness(
    views: Sequence[SourceView[Any]], gpu_index: int, model: str | None = None
) -> Readiness:
    """`ready`, `starting` (no reading yet) or `unhealthy`, always lower case. A runner
    serving an agent (`model`) is ready only while that agent's jobs would be admitted."""
    nvml = _nvml(views)
    if nvml is None or nvml.status == "pending":
        return Readiness(STARTING, nvml.reason if nvml else "no NVML reading yet")
    fit, reason = gpu_fitness(views)
    if not fit:
        return Readiness(UNHEALTHY, _short(reason or "GPU not fit"))
    if runner_gpu_reading(nvml.data, gpu_index) is None:
        return Readiness(UNHEALTHY, f"no GPU at LIVE_RUNNER_GPU_INDEX={gpu_index}")
    if model is not None:
        refused = refusal((views[0], views[1]), model)
        if refused is not None:
            return Readiness(UNHEALTHY, _short(f"{refused.code}: {refused.reason}"))
    return Readiness(READY, None)


def runner_gpu_reading(report: GpuReport | None, gpu_index: int) -> GpuReading | None:
    if report is None:
        return None
    return next((gpu for gpu in report.gpus if gpu.index == gpu_index), None)


def runner_gpu(report: GpuReport | None, gpu_index: int) -> dict[str, Any] | None:
    """LiveRunnerGPU: `id` (the NVML index, a string in Go), `name`, `vram_mb` (MiB)."""
    gpu = runner_gpu_reading(report, gpu_index)
    if gpu is None or gpu.error is not None:
        return None
    entry: dict[str, Any] = {"id": str(gpu.index)}
    if gpu.name:
        entry["name"] = _clean(gpu.name)
    if gpu.memory_total_bytes:
        entry["vram_mb"] = gpu.memory_total_bytes // MIB
    return entry


def runner_metadata(views: Sequence[SourceView[Any]], gpu_index: int, readiness: Readiness) -> str:
    """Compact JSON of at most 1,024 UTF-8 bytes: the GPU's recovery action
    (docs/gpu-health.md#recovery-action), live temperature, VRAM, power and the loaded
    models (the list cut to fit). Public (discovery shows it): no secrets."""
    nvml = _nvml(views)
    gpu = runner_gpu_reading(None if nvml is None else nvml.data, gpu_index)
    document: dict[str, Any] = {"status": readiness.status}
    if readiness.reason:
        document["reason"] = readiness.reason
    if gpu is not None and gpu.action is not None:
        document["action"] = gpu.action
    if gpu is not None and gpu.error is None:
        document |= {
            key: value
            for key, value in (
                ("temperature_c", gpu.temperature_c),
                ("vram_used_mb", _mib(gpu.memory_used_bytes)),
                ("vram_total_mb", _mib(gpu.memory_total_bytes)),
                ("power_w", gpu.power_draw_w),
                ("power_limit_w", gpu.power_limit_w),
            )
            if value is not None
        }
    ollama = next((view for view in views if view.name == "ollama"), None)
    catalogue: Catalogue | None = None if ollama is None else ollama.data
    models = [] if catalogue is None else [m.name for m in catalogue.models if m.loaded]
    document["models_loaded"] = [_clean(name) for name in models]
    text = _compact(document)
    while len(text.encode()) > MAX_METADATA_BYTES and document["models_loaded"]:
        document["models_loaded"].pop()
        document["models_truncated"] = True
        text = _compact(document)
    if len(text.encode()) > MAX_METADATA_BYTES:  # only a very long reason can do this
        document.pop("reason", None)
        text = _compact(document)
    return text


def _mib(value: int | None) -> int | None:
    return None if value is None else value // MIB


def _clean(text: str) -> str:
    # go-livepeer refuses metadata with U+FFFD (what it decodes invalid UTF-8 and lone
    # surrogates to): replace both with "?".
    return text.encode("utf-8", "replace").decode("utf-8").replace("\ufffd", "?")


def _short(text: str) -> str:
    text = _clean(" ".join(text.split()))
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
