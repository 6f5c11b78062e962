"""Which models agents serve, and which of them are pinned: the residency loop's scope.

Each agent's model (worker/agents.py: the agents file, or the default agent on
OLLAMA_MODEL), pinned when any agent serving it says `pinned = true`, plus every model in
RESIDENCY_PINNED (served and pinned).
"""

from __future__ import annotations

from worker.config import Settings
from worker.residency.usage import model_key


def served_models(settings: Settings) -> dict[str, bool]:
    """Every served model (Ollama's full name) mapped to whether it is pinned."""
    from worker.agents import load_agents

    served: dict[str, bool] = {}
    for agent in load_agents(settings):
        key = model_key(agent.model)
        served[key] = served.get(key, False) or agent.pinned
    for name in settings.residency_pinned:
        served[model_key(name)] = True
    return served
