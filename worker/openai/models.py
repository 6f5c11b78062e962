"""`GET /v1/models` and `GET /v1/models/{id}`: the agents as OpenAI model objects (pure).

A client names an agent as its `model`, so each agent is one model object: `id` the
agent's name, `created` the Unix time of its Ollama model on disk (`modified_at`, as
Ollama's own OpenAI layer gives; 0 while the model is not on disk), `owned_by`
`agent-net`; beside OpenAI's fields, `capabilities` (Ollama's `/api/show` list, null until
read) and `ollama_model`. An agent whose model has `embedding` and no `completion` is an
embedding agent: `/v1/embeddings` serves it, and chat does not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from worker.agents import Agent
from worker.sampling.readings import ModelEntry

OWNED_BY = "agent-net"


def model_object(agent: Agent, entry: ModelEntry | None) -> dict[str, Any]:
    """`agent` as an OpenAI model object; `entry` is its Ollama model, if on disk."""
    capabilities = None if entry is None else entry.capabilities
    return {
        "id": agent.name,
        "object": "model",
        "created": 0 if entry is None else _unix_seconds(entry.modified_at),
        "owned_by": OWNED_BY,
        "capabilities": None if capabilities is None else list(capabilities),
        "ollama_model": agent.model,
    }


def model_list(objects: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """OpenAI's list of model objects."""
    return {"object": "list", "data": list(objects)}


def _unix_seconds(moment: str | None) -> int:
    if not moment:
        return 0
    try:
        return int(datetime.fromisoformat(moment).timestamp())
    except ValueError:
        return 0
