"""Agents: named LLM capabilities declared in a TOML file (`AGENTS_FILE`), or one default.

Each `[[agents]]` table names a capability (its BYOC name and this worker's route), the
Ollama model behind it, a system prompt, generation defaults and caps, its capacity, time
limit and price. With no file there is one agent, `agent-net-llm`, on `OLLAMA_MODEL`.
A bad file stops startup with one `ConfigError` that names every bad entry.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from worker.config import (
    FIXED_PRICE_CURRENCIES,
    INT64_MAX,
    RESERVED_ROUTES,
    ConfigError,
    Settings,
    capability_name_problem,
)

DEFAULT_AGENT_NAME = "agent-net-llm"
# Paths this worker serves itself: an agent may not take them.
OWN_ROUTES = RESERVED_ROUTES | {"gpu-check", "agent-net", "v1"}


class Agent(BaseModel):
    """One agent: its capability name, model, prompt, limits and price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model: str = Field(min_length=1, max_length=256)
    system: str = Field("", max_length=32_768)
    description: str = Field("", max_length=1024)
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int = Field(1024, ge=1, le=1_000_000)
    num_ctx: int | None = Field(None, ge=256, le=1_048_576)
    capacity: int = Field(4, ge=1, le=10_000)
    timeout_seconds: float = Field(120.0, gt=0, le=86_400)
    pinned: bool = False
    price_per_unit: int = Field(0, ge=0, le=INT64_MAX)
    price_scaling: int = Field(1, ge=1, le=INT64_MAX)
    currency: str = "wei"

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        problem = capability_name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        if name in OWN_ROUTES:
            raise ValueError(f"{name!r} is one of the worker's own routes")
        return name

    @field_validator("currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        currency = value.strip()
        if currency.lower() not in FIXED_PRICE_CURRENCIES:
            raise ValueError(f"{currency!r} needs a price feed; use 'wei' or 'eth'")
        return currency

    @property
    def summary(self) -> str:
        """The capability description: the agent's own, else one naming its model."""
        return self.description or f"Agent-Net LLM agent {self.name} on {self.model}"


def default_agents(settings: Settings) -> tuple[Agent, ...]:
    """The one agent served when no agents file is set."""
    return (Agent(name=DEFAULT_AGENT_NAME, model=settings.ollama_model),)


def load_agents(settings: Settings) -> tuple[Agent, ...]:
    """The agents of `settings.agents_file` (or the default one); ConfigError if bad."""
    path = settings.agents_file
    if path is None:
        return default_agents(settings)
    return parse_agents(_read(path), str(path), taken=set(settings.job_routes))


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"AGENTS_FILE: cannot read {str(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"AGENTS_FILE: {str(path)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"AGENTS_FILE: {str(path)!r} is not valid TOML: {exc}") from None


def parse_agents(document: dict[str, Any], source: str, taken: set[str]) -> tuple[Agent, ...]:
    """Validate `[[agents]]` tables; `taken` are route names the agents may not reuse."""
    problems: list[str] = []
    unknown = sorted(set(document) - {"agents"})
    if unknown:
        problems.append(f"unknown top-level key(s): {', '.join(unknown)} (expected [[agents]])")
    entries = document.get("agents", [])
    if not isinstance(entries, list):
        problems.append("'agents' must be an array of tables ([[agents]])")
        entries = []
    agents: list[Agent] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        label = _label(index, entry)
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a table")
            continue
        try:
            agent = Agent.model_validate(entry)
        except ValidationError as exc:
            problems.extend(f"{label}: {line}" for line in _describe(exc))
            continue
        if agent.name in seen:
            problems.append(f"{label}: name {agent.name!r} is already agents[{seen[agent.name]}]")
        elif agent.name in taken:
            problems.append(
                f"{label}: name {agent.name!r} is already a job route (CAPABILITY_NAME)"
            )
        seen.setdefault(agent.name, index)
        agents.append(agent)
    if problems:
        count = len(problems)
        header = f"invalid agents file {source} ({count} problem{'s' if count != 1 else ''}):"
        raise ConfigError("\n".join([header, *(f"  {line}" for line in problems)]))
    return tuple(agents)


def _label(index: int, entry: object) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"agents[{index}] ({name!r})" if isinstance(name, str) else f"agents[{index}]"


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "entry"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        shown = error.get("input")
        if isinstance(shown, str | int | float) and len(str(shown)) <= 100:
            message = f"{message} (got {shown!r})"
        lines.append(f"{where}: {message}")
    return lines
