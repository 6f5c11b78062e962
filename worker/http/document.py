"""The /gpu-check document: every field name and unit of it, in this one module.

The seed's fields come first with their names unchanged (`status`, `agent_id`,
`model_name`, `vram_usage_mb`, `total_models`, `timestamp`, `gpu_count`), then the detail.
Memory is MiB (bytes / 2**20, as nvidia-smi shows it) in every `*_mb` field, power in
watts, times in Unix seconds. The per-GPU and per-model parts change only when the
sampler publishes a new reading, so they are encoded once per reading and spliced into
every response; a request encodes only its own small fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from worker.config import Settings
from worker.sampling.published import Readings
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry
from worker.units import MIB, to_mib


def gpu_fields(gpu: GpuReading) -> dict[str, Any]:
    """One GPU as the document shows it."""
    return {
        "index": gpu.index,
        "name": gpu.name,
        "uuid": gpu.uuid,
        "status": "ok" if gpu.error is None else "error",
        "error": gpu.error,
        "memory_used_mb": to_mib(gpu.memory_used_bytes),
        "memory_total_mb": to_mib(gpu.memory_total_bytes),
        "memory_used_bytes": gpu.memory_used_bytes,
        "memory_total_bytes": gpu.memory_total_bytes,
        "temperature_c": gpu.temperature_c,
        "power_draw_w": gpu.power_draw_w,
        "power_limit_w": gpu.power_limit_w,
        "utilization_gpu_pct": gpu.utilization_gpu_pct,
        "utilization_memory_pct": gpu.utilization_memory_pct,
    }


def model_fields(model: ModelEntry) -> dict[str, Any]:
    """One Ollama model as the document shows it."""
    return {
        "name": model.name,
        "size_bytes": model.size_bytes,
        "size_mb": to_mib(model.size_bytes),
        "parameter_size": model.parameter_size,
        "quantization": model.quantization,
        "family": model.family,
        "digest": model.digest,
        "modified_at": model.modified_at,
        "loaded": model.loaded,
        "vram_bytes": model.vram_bytes,
        "vram_mb": to_mib(model.vram_bytes),
        "expires_at": model.expires_at,
    }


def vram_usage_mb(gpus: tuple[GpuReading, ...]) -> float:
    """The seed's `vram_usage_mb`: NVML's memory used, summed over GPUs, in MiB."""
    return round(sum(gpu.memory_used_bytes or 0 for gpu in gpus) / MIB, 1)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class _EncodedOnce:
    """Remembers the JSON of the last object it encoded (readings are immutable)."""

    def __init__(self, encode: Callable[[Any], str]) -> None:
        self._encode = encode
        self._last: tuple[object, str] | None = None

    def __call__(self, data: object) -> str:
        last = self._last
        if last is not None and last[0] is data:
            return last[1]
        encoded = self._encode(data)
        self._last = (data, encoded)  # one atomic assignment: safe across greenlets
        return encoded


def _encode_gpus(report: GpuReport | None) -> str:
    return _compact([] if report is None else [gpu_fields(gpu) for gpu in report.gpus])


def _encode_models(catalogue: Catalogue | None) -> str:
    return _compact([] if catalogue is None else [model_fields(m) for m in catalogue.models])


class ReportBuilder:
    """Builds the /gpu-check JSON text for one app (one per gunicorn worker process)."""

    def __init__(self, settings: Settings, readings: Readings) -> None:
        self._model_name = settings.ollama_model
        self._readings = readings
        self._gpus_json = _EncodedOnce(_encode_gpus)
        self._models_json = _EncodedOnce(_encode_models)

    def render(self, agent_id: str) -> str:
        """The report as JSON text: the seed's fields first (same names), then the detail."""
        gpu_view, ollama_view = self._readings.views()
        gpu_report, catalogue = gpu_view.data, ollama_view.data
        gpus = gpu_report.gpus if gpu_report is not None else ()
        models = catalogue.models if catalogue is not None else ()
        reasons = [
            f"{view.name}: {view.reason}" for view in (gpu_view, ollama_view) if view.status != "ok"
        ]
        reasons.extend(f"nvml: GPU {gpu.index}: {gpu.error}" for gpu in gpus if gpu.error)
        head = {
            "status": "success" if not reasons else "degraded",
            "agent_id": agent_id,
            "model_name": self._model_name,
            "vram_usage_mb": vram_usage_mb(gpus),
            "total_models": len(models),
            "timestamp": time.time(),
            "gpu_count": len(gpus),
            "reasons": reasons,
        }
        tail = {
            "driver_version": gpu_report.driver_version if gpu_report is not None else None,
            "model_present": any(model.name == self._model_name for model in models),
            "ollama_version": catalogue.version if catalogue is not None else None,
            "sources": {view.name: view.as_dict() for view in (gpu_view, ollama_view)},
        }
        return "".join(
            (
                _compact(head)[:-1],
                ',"gpus":',
                self._gpus_json(gpu_report),
                ',"models":',
                self._models_json(catalogue),
                ",",
                _compact(tail)[1:],
            )
        )
