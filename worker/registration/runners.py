"""The live runners this worker offers, and the secret path orchestrators reach them on.

The HTTP workers import it to serve `/lr/<prefix>/...`.
One runner per capability (`runner_capabilities`); each is registered with every
orchestrator as app `agent-net/<capability>`. The orchestrator proxies
`/apps/<runner_id>/app/<path>` to `<runner_url>/<path>`, and `runner_url` is
`<CAPABILITY_URL>/lr/<prefix>/<capability>`: the last segment tells the worker which runner
a request came through (an agent's runner serves the OpenAI API for that agent alone), and
the prefix is the only credential of a proxied request (go-livepeer sends no bearer
token), so it is unguessable and never logged or shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from worker.config import GPU_CHECK_ROUTE, Settings

if TYPE_CHECKING:
    from worker.agents import Agent

ROUTE_ROOT = "lr"
# The master sets this (a fresh random prefix per start) when no WORKER_TOKEN is set, so
# every HTTP worker and the registrar share it; with a token the prefix is derived from it.
PREFIX_VARIABLE = "AGENT_NET_LIVE_RUNNER_PREFIX"
PREFIX_PATTERN = re.compile(r"[a-z2-7]{32}")
_PREFIX_LABEL = b"agent-net live-runner route prefix v1"
APP_PREFIX = "agent-net/"
GPU_CHECK = GPU_CHECK_ROUTE


@dataclass(frozen=True)
class RunnerSpec:
    """One live runner: a capability, its app name, mode, price and app path."""

    name: str  # the capability, e.g. "gpu-check"
    path: str  # the route under runner_url that serves it, e.g. "gpu-check"
    price: Decimal  # USD per LIVE_RUNNER_PRICE_UNIT
    mode: str = "single-shot"
    model: str | None = None  # an agent's Ollama model: ready only while it is on disk
    capacity: int | None = None  # an agent's own capacity (else CAPABILITY_CAPACITY)

    @property
    def app(self) -> str:
        return APP_PREFIX + self.name


def runner_capabilities(settings: Settings, agents: Sequence[Agent] = ()) -> list[RunnerSpec]:
    """Every live runner this worker registers: the GPU check, then one per agent."""
    price = settings.live_runner_price
    return [
        RunnerSpec(name=GPU_CHECK, path=GPU_CHECK, price=price(GPU_CHECK)),
        *(
            RunnerSpec(
                name=agent.name,
                path=agent.name,
                price=price(agent.name),
                model=agent.model,
                capacity=agent.capacity,
            )
            for agent in agents
        ),
    ]


def new_route_prefix() -> str:
    """A fresh random prefix: 160 bits as 32 lower-case base32 characters."""
    return _encode(secrets.token_bytes(20))


def route_prefix(settings: Settings, environ: Mapping[str, str] = os.environ) -> str | None:
    """The secret path segment of runner_url: derived from WORKER_TOKEN with HMAC (stable
    across restarts), else the per-start one the master put in the environment; None
    when neither is there (then no proxied route answers)."""
    token = settings.job_token
    if token is not None:
        digest = hmac.new(token.get_secret_value().encode(), _PREFIX_LABEL, hashlib.sha256)
        return _encode(digest.digest()[:20])
    given = environ.get(PREFIX_VARIABLE, "")
    return given if PREFIX_PATTERN.fullmatch(given) else None


def runner_url(settings: Settings, prefix: str, capability: str) -> str:
    """The runner_url of `capability`'s runner (a credential: never log it)."""
    return f"{settings.advertised_url}/{ROUTE_ROOT}/{prefix}/{capability}"


def shown_runner_url(settings: Settings, capability: str) -> str:
    """runner_url as logs and /readyz may show it: the prefix masked."""
    return f"{settings.advertised_url}/{ROUTE_ROOT}/***/{capability}"


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=").lower()
