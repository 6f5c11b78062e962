"""Series of the job slots and of what the agents serve: capacity, slots in use, jobs
refused at capacity, and whether each agent's model is on disk.

Two pools of slots: `jobs` (the job routes, CAPABILITY_CAPACITY, across every process) and
`agent` (each agent's own slots, labelled by its name). Refusals are counted in every
process and summed at scrape time, like the request counters; capacity, slots in use and
the models on disk are read at scrape time (a slot count asks the kernel for the locks:
one call per lock held, never per slot).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from worker.agents import Agent
from worker.http.capacity import SlotLimiter
from worker.http.metrics import REQUEST_REGISTRY
from worker.sampling.admission import catalogue_entry
from worker.sampling.published import Readings

POOL_LABELS = ("pool", "agent")
JOBS_POOL = ("jobs", "")

CAPACITY_REFUSALS = Counter(
    "agent_net_capacity_refusals",
    "Jobs refused (503 at_capacity) because every slot of their pool was taken: pool `jobs`"
    " (the job routes, CAPABILITY_CAPACITY) or `agent` (that agent's capacity).",
    POOL_LABELS,
    registry=REQUEST_REGISTRY,
)


def refusals(pool: str, agent: str = "") -> Counter:
    """The refusal counter of one pool, made (and so exported, from 0) when first asked."""
    return CAPACITY_REFUSALS.labels(pool, agent)


class PoolsCollector:
    """Capacity and slots in use per pool, and each agent's model on disk, per scrape."""

    def __init__(
        self,
        jobs: SlotLimiter,
        agents: tuple[Agent, ...],
        agent_slots: dict[str, SlotLimiter],
        readings: Readings,
    ) -> None:
        self._pools = [(JOBS_POOL, jobs)] + [
            (("agent", agent.name), agent_slots[agent.name])
            for agent in agents
            if agent.name in agent_slots
        ]
        self._agents = agents
        self._readings = readings

    def collect(self) -> Iterator[Metric]:
        capacity = GaugeMetricFamily(
            "agent_net_capacity_slots", "Jobs the pool runs at once.", labels=list(POOL_LABELS)
        )
        in_use = GaugeMetricFamily(
            "agent_net_capacity_slots_in_use",
            "Jobs running now in the pool (every process).",
            labels=list(POOL_LABELS),
        )
        for labels, limiter in self._pools:
            capacity.add_metric(list(labels), float(limiter.capacity))
            in_use.add_metric(list(labels), float(limiter.in_use()))
        yield capacity
        yield in_use
        catalogue = self._readings.views()[1].data
        if catalogue is None:
            return  # Ollama never read: agent_net_ollama_up says so
        on_disk = GaugeMetricFamily(
            "agent_net_agent_model_on_disk",
            "1 when the agent's model is on disk in Ollama (/api/tags), 0 when it is not.",
            labels=["agent", "model"],
        )
        for agent in self._agents:
            present = catalogue_entry(catalogue, agent.model) is not None
            on_disk.add_metric([agent.name, agent.model], 1.0 if present else 0.0)
        yield on_disk
