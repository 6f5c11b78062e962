"""The /gpu-check document, built from the sampler's current views in O(1) work."""

from __future__ import annotations

import time
from typing import Any

from worker.config import Settings
from worker.sampling import Sampler


def build_report(settings: Settings, sampler: Sampler, agent_id: str) -> dict[str, Any]:
    """The seed's fields first (same names), then per-GPU, catalogue and per-source status."""
    gpu_view, ollama_view = sampler.views()
    gpus = list(gpu_view.data.gpus) if gpu_view.data is not None else []
    models = list(ollama_view.data.models) if ollama_view.data is not None else []
    reasons: list[str] = []
    for view in (gpu_view, ollama_view):
        if view.status != "ok":
            reasons.append(f"{view.name}: {view.reason}")
    reasons.extend(f"nvml: GPU {gpu.index}: {gpu.error}" for gpu in gpus if gpu.error)
    vram_used = sum(gpu.memory_used_bytes or 0 for gpu in gpus)
    return {
        "status": "success" if not reasons else "degraded",
        "agent_id": agent_id,
        "model_name": settings.ollama_model,
        "vram_usage_mb": round(vram_used / (1024 * 1024), 1),
        "total_models": len(models),
        "timestamp": time.time(),
        "gpu_count": len(gpus),
        "reasons": reasons,
        "gpus": [gpu.as_dict() for gpu in gpus],
        "driver_version": gpu_view.data.driver_version if gpu_view.data is not None else None,
        "models": [model.as_dict() for model in models],
        "model_present": any(model.name == settings.ollama_model for model in models),
        "ollama_version": ollama_view.data.version if ollama_view.data is not None else None,
        "sources": {view.name: view.as_dict() for view in (gpu_view, ollama_view)},
    }
