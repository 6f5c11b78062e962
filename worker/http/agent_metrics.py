"""Per-agent Prometheus series: requests by outcome, tokens, first-token time, speed, streams.

They live beside the request metrics (counted per process, summed at scrape time in
multiprocess mode); the running-streams gauge sums the live processes' values (`livesum`).
Labels are agent names from the agents file and a fixed set of outcomes: bounded.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from worker.http.capacity_metrics import refusals
from worker.http.metrics import REQUEST_REGISTRY

OUTCOMES = (
    "completed",  # Ollama finished (stop or max_tokens)
    "time_limit",  # the agent's time limit ended generation
    "upstream_error",  # Ollama failed, before or during the answer
    "client_gone",  # the client left; generation was stopped
    "refused",  # 503 before any stream: GPU unfit, Ollama down, model not on disk
    "at_capacity",  # 503: all of the agent's slots were taken
    "bad_request",  # 4xx: malformed body
)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPS_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 100.0, 150.0, 250.0, 500.0, 1000.0)

AGENT_REQUESTS = Counter(
    "agent_net_agent_requests",
    "Agent jobs by how they ended.",
    ("agent", "outcome"),
    registry=REQUEST_REGISTRY,
)
PROMPT_TOKENS = Counter(
    "agent_net_agent_prompt_tokens",
    "Prompt tokens Ollama evaluated for the agent's jobs.",
    ("agent",),
    registry=REQUEST_REGISTRY,
)
COMPLETION_TOKENS = Counter(
    "agent_net_agent_completion_tokens",
    "Tokens the agent generated.",
    ("agent",),
    registry=REQUEST_REGISTRY,
)
FIRST_TOKEN_SECONDS = Histogram(
    "agent_net_agent_time_to_first_token_seconds",
    "Time from the job's admission to its first generated token.",
    ("agent",),
    buckets=TTFT_BUCKETS,
    registry=REQUEST_REGISTRY,
)
TOKENS_PER_SECOND = Histogram(
    "agent_net_agent_tokens_per_second",
    "Generation speed of each job with two tokens or more (after the first token).",
    ("agent",),
    buckets=TPS_BUCKETS,
    registry=REQUEST_REGISTRY,
)
STREAMS_RUNNING = Gauge(
    "agent_net_agent_jobs_running",
    "Agent jobs generating now (streamed or not).",
    ("agent",),
    multiprocess_mode="livesum",
    registry=REQUEST_REGISTRY,
)


class AgentSeries:
    """One agent's label children, made once (a request touches no label lookup)."""

    def __init__(self, agent: str) -> None:
        self.outcomes: dict[str, Any] = {o: AGENT_REQUESTS.labels(agent, o) for o in OUTCOMES}
        self.prompt_tokens = PROMPT_TOKENS.labels(agent)
        self.completion_tokens = COMPLETION_TOKENS.labels(agent)
        self.first_token = FIRST_TOKEN_SECONDS.labels(agent)
        self.speed = TOKENS_PER_SECOND.labels(agent)
        self.running = STREAMS_RUNNING.labels(agent)
        self.refused_at_capacity = refusals("agent", agent)

    def ended(self, outcome: str) -> None:
        self.outcomes[outcome].inc()
        if outcome == "at_capacity":
            self.refused_at_capacity.inc()
