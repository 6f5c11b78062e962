"""The residency decision: what to load and unload now, from usage, the catalogue and VRAM.

A pure function (`decide`), so every rule is tested without a server:

1. Over budget (VRAM used by NVML > budget): unload cold models, least recently used
   first, until the estimate fits (reason `over_budget`).
2. Hot models (pinned first, then by requests in the hot window) that are not loaded are
   loaded when they fit under the budget (`pinned` or `hot`); if they fit only once cold
   models leave, those are unloaded first (`make_room`); if not even then, nothing moves
   and the model's note says why.
3. A hot model Ollama will unload soon by itself (its keep_alive runs out within
   `refresh_within` seconds) is loaded again, which only renews its keep_alive (`keep_hot`).

Cold means: managed, loaded, not hot, not pinned, no job running and not being loaded.
A model that is not managed (served by no agent, unless manage_all) is never touched.
Without a VRAM reading nothing is unloaded and hot models load without a fit check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MIB = 2**20


@dataclass(frozen=True)
class ModelState:
    """One model as the loop sees it this interval. Times are Unix seconds."""

    name: str
    managed: bool
    pinned: bool = False
    on_disk: bool = True
    loaded: bool = False
    loading: bool = False  # a load the loop started has not finished yet
    size_bytes: int | None = None  # on disk: the estimate of its VRAM before it loads
    vram_bytes: int | None = None  # in VRAM now (/api/ps size_vram)
    expires_in: float | None = None  # seconds until Ollama unloads it; None: unknown
    requests: int = 0  # in the hot window
    last_used: float | None = None
    running_jobs: int = 0


@dataclass(frozen=True)
class Inputs:
    models: tuple[ModelState, ...]
    hot_requests: int
    vram_used_bytes: int | None = None
    budget_bytes: int | None = None
    refresh_within: float = 0.0


@dataclass(frozen=True)
class Action:
    kind: Literal["load", "unload"]
    model: str
    reason: Literal["hot", "pinned", "keep_hot", "over_budget", "make_room"]
    detail: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    notes: dict[str, str] = field(default_factory=dict)  # model -> why it was not loaded


def is_hot(model: ModelState, hot_requests: int) -> bool:
    """Kept loaded: pinned, or at least `hot_requests` requests in the hot window."""
    return model.pinned or model.requests >= hot_requests


def _mib(value: int) -> str:
    return f"{value / MIB:.0f} MiB"


def _footprint(model: ModelState) -> int:
    return model.vram_bytes or model.size_bytes or 0


def _idle(model: ModelState) -> str:
    return "never used" if model.last_used is None else f"last used at {model.last_used:.0f}"


def decide(inputs: Inputs) -> Plan:
    """The actions for this interval, in the order to run them, each with its reason."""
    hot_requests = inputs.hot_requests
    managed = [m for m in inputs.models if m.managed]
    cold = sorted(
        (
            m
            for m in managed
            if m.loaded and not m.loading and not is_hot(m, hot_requests) and m.running_jobs == 0
        ),
        key=lambda m: (m.last_used if m.last_used is not None else float("-inf"), m.name),
    )
    actions: list[Action] = []
    notes: dict[str, str] = {}
    used, budget = inputs.vram_used_bytes, inputs.budget_bytes
    known = used is not None and budget is not None

    def unload(model: ModelState, reason: Literal["over_budget", "make_room"], why: str) -> None:
        nonlocal used
        cold.remove(model)
        actions.append(Action("unload", model.name, reason, f"{why}; {_idle(model)}"))
        if used is not None:
            used -= _footprint(model)

    if known and used > budget:  # type: ignore[operator]
        for model in list(cold):
            if used <= budget:  # type: ignore[operator]
                break
            unload(model, "over_budget", f"VRAM {_mib(used)} > budget {_mib(budget)}")  # type: ignore[arg-type]

    pending = sum(m.size_bytes or 0 for m in managed if m.loading and not m.loaded)
    wanted = sorted(
        (
            m
            for m in managed
            if is_hot(m, hot_requests) and not m.loaded and not m.loading and m.on_disk
        ),
        key=lambda m: (not m.pinned, -m.requests, m.name),
    )
    for model in wanted:
        reason: Literal["hot", "pinned"] = "pinned" if model.pinned else "hot"
        why = "pinned" if model.pinned else f"{model.requests} requests in the hot window"
        need = model.size_bytes or 0
        if not known:
            actions.append(Action("load", model.name, reason, why))
            continue
        room = budget - used - pending  # type: ignore[operator]
        if need > room:
            freeable = sum(_footprint(m) for m in cold)
            if need > room + freeable:
                notes[model.name] = (
                    f"does not fit: needs {_mib(need)}, {_mib(max(0, room))} free under the"
                    f" budget and {_mib(freeable)} held by cold models"
                )
                continue
            for victim in list(cold):
                if need <= budget - used - pending:  # type: ignore[operator]
                    break
                unload(victim, "make_room", f"room for {model.name} ({_mib(need)})")
        actions.append(Action("load", model.name, reason, why))
        pending += need

    for model in managed:
        if (
            model.loaded
            and is_hot(model, hot_requests)
            and model.expires_in is not None
            and model.expires_in <= inputs.refresh_within
        ):
            actions.append(
                Action(
                    "load",
                    model.name,
                    "keep_hot",
                    f"Ollama would unload it in {max(0.0, model.expires_in):.0f} s",
                )
            )
    return Plan(tuple(actions), notes)
