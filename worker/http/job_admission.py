"""Admitting an agent's job: the GPU's and Ollama's published state, then a capacity slot.

Shared by every kind of agent job (chat, embeddings), so a refusal reads the same
whatever the route: 503 with `Retry-After`, counted in the agent's series as `refused`
(GPU unfit, Ollama down, model not on disk) or `at_capacity` (all its slots taken).
"""

from __future__ import annotations

from worker.agents import Agent
from worker.http.agent_metrics import AgentSeries
from worker.http.capacity import SlotLimiter
from worker.http.errors import ApiError
from worker.sampling.admission import refusal
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReport


def admit(
    views: tuple[SourceView[GpuReport], SourceView[Catalogue]],
    agent: Agent,
    limiter: SlotLimiter,
    series: AgentSeries,
) -> int:
    """A slot of `agent`'s (hand it back with `limiter.give`), or ApiError 503 saying why
    not, judged on the published `views` (`Readings.views()`)."""
    refused = refusal(views, agent.model)
    if refused is not None:
        series.ended("refused")
        raise ApiError(503, refused.code, refused.reason, {"Retry-After": str(refused.retry_after)})
    slot = limiter.take()
    if slot is None:
        series.ended("at_capacity")
        raise ApiError(
            503,
            "at_capacity",
            f"agent {agent.name} is running {limiter.capacity} jobs, its capacity; retry shortly",
            {"Retry-After": "1"},
        )
    return slot
