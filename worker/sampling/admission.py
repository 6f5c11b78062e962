"""Admission: may an agent's job start now, judged from the sampler's published readings?

Asked before any stream starts, so a refusal is a plain 503 JSON answer with the reason
and `Retry-After`; a live runner serving an agent is `ready` only while the same holds.
The GPU part is `worker.sampling.fitness.gpu_fitness`, the one judgement of the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.sampling.fitness import gpu_fitness
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReport, ModelEntry

RETRY_SOON_SECONDS = 5
RETRY_PULL_SECONDS = 30  # a model still being pulled takes a while


@dataclass(frozen=True)
class Refusal:
    """Why a job cannot start now: a stable `code`, plain-words `reason`, when to retry."""

    code: str
    reason: str
    retry_after: int


def catalogue_entry(catalogue: Catalogue | None, model: str) -> ModelEntry | None:
    """`model`'s entry in the catalogue (a name without a tag means `:latest`), if on disk."""
    if catalogue is None:
        return None
    wanted = {model} if ":" in model.rsplit("/", 1)[-1] else {model, f"{model}:latest"}
    return next((entry for entry in catalogue.models if entry.name in wanted), None)


def refusal(
    views: tuple[SourceView[GpuReport], SourceView[Catalogue]], model: str
) -> Refusal | None:
    """None when a job on `model` may start now, else why not."""
    gpu_view, ollama_view = views
    fit, reason = gpu_fitness(gpu_view)
    if not fit:
        return Refusal("gpu_unfit", reason or "the GPU is not fit", RETRY_SOON_SECONDS)
    if ollama_view.status != "ok" or ollama_view.data is None:
        why = ollama_view.reason or "no reading"
        return Refusal(
            "ollama_unavailable", f"Ollama is {ollama_view.status}: {why}", RETRY_SOON_SECONDS
        )
    if catalogue_entry(ollama_view.data, model) is None:
        return Refusal(
            "model_not_on_disk",
            f"model {model!r} is not on disk yet (the ollama service pulls it)",
            RETRY_PULL_SECONDS,
        )
    return None
