"""The /gpu-check document, built from the sampler's current views.

The per-GPU and per-model parts change only when a source publishes a new reading (about
once a second), so they are encoded to JSON once per reading and spliced into every
response; a request encodes only its own small fields (agent_id, timestamp, status, ages).
"""

from __future__ import annotations

import json
import time
from typing import Any

from worker.config import Settings
from worker.gpu import GpuReport
from worker.ollama_reader import Catalogue
from worker.sampling import Sampler

MIB = 1024 * 1024


class _EncodedOnce:
    """Remembers the JSON of the last object it encoded (readings are immutable)."""

    def __init__(self, encode: Any) -> None:
        self._encode = encode
        self._last: tuple[object, str] | None = None

    def __call__(self, data: object) -> str:
        last = self._last
        if last is not None and last[0] is data:
            return last[1]
        encoded = self._encode(data)
        self._last = (data, encoded)  # one atomic assignment: safe across request threads
        return encoded


def _encode_gpus(report: GpuReport | None) -> str:
    gpus = [] if report is None else [gpu.as_dict() for gpu in report.gpus]
    return json.dumps(gpus, separators=(",", ":"))


def _encode_models(catalogue: Catalogue | None) -> str:
    models = [] if catalogue is None else [model.as_dict() for model in catalogue.models]
    return json.dumps(models, separators=(",", ":"))


class ReportBuilder:
    """Builds the /gpu-check JSON text for one app (one per gunicorn worker process)."""

    def __init__(self, settings: Settings, sampler: Sampler) -> None:
        self._model_name = settings.ollama_model
        self._sampler = sampler
        self._gpus_json = _EncodedOnce(_encode_gpus)
        self._models_json = _EncodedOnce(_encode_models)

    def render(self, agent_id: str) -> str:
        """The report as JSON text: the seed's fields first (same names), then the detail."""
        gpu_view, ollama_view = self._sampler.views()
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
            "vram_usage_mb": round(sum(gpu.memory_used_bytes or 0 for gpu in gpus) / MIB, 1),
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
                json.dumps(head, separators=(",", ":"))[:-1],
                ',"gpus":',
                self._gpus_json(gpu_report),
                ',"models":',
                self._models_json(catalogue),
                ",",
                json.dumps(tail, separators=(",", ":"))[1:],
            )
        )
