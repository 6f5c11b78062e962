"""Which models agents serve, and which of them are pinned: the residency loop's scope.

Until the agents file exists this is OLLAMA_MODEL (served, not pinned) plus every model
in RESIDENCY_PINNED (served and pinned). The agents file replaces it with one line: each
agent's model, pinned when any agent serving it says `pinned = true`.
"""

from __future__ import annotations

from worker.config import Settings
from worker.residency.usage import model_key


def served_models(settings: Settings) -> dict[str, bool]:
    """Every served model (Ollama's full name) mapped to whether it is pinned."""
    served = {model_key(settings.ollama_model): False}
    for name in settings.residency_pinned:
        served[model_key(name)] = True
    return served
