"""What the residency loop publishes: per model hot/pinned/usage, the budget, the counts.

It crosses the process boundary like the readings (worker/sampling/readings.py): the
sampler writes `as_json()` into the readings document under "residency", the HTTP
workers rebuild it with `from_json()` (unknown keys are ignored). Plain values only:
importing this module loads no HTTP client and no database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ModelResidency:
    """One model the loop considered. Times are Unix seconds."""

    name: str
    hot: bool = False  # kept loaded: by usage (HOT_REQUESTS in HOT_WINDOW) or pinned
    pinned: bool = False
    managed: bool = False  # served by an agent (or RESIDENCY_MANAGE_ALL)
    requests_last_hour: int = 0
    requests_hot_window: int = 0
    last_used: float | None = None
    running_jobs: int = 0
    note: str | None = None  # why a hot model is not loaded, when it is not


@dataclass(frozen=True)
class ActionCount:
    """How many loads or unloads for one reason ended with one result."""

    action: str  # "load" | "unload"
    reason: str
    result: str  # "ok" | "failed"
    count: int


@dataclass(frozen=True)
class ResidencyReport:
    """The loop's last run: its settings, the budget it applied and its decisions."""

    enabled: bool
    interval_seconds: float
    hot_requests: int
    hot_window_seconds: float
    budget_setting: str
    budget_bytes: int | None = None
    vram_used_bytes: int | None = None
    vram_total_bytes: int | None = None
    runs: int = 0
    last_run_at: float | None = None
    last_run_seconds: float | None = None
    error: str | None = None
    models: tuple[ModelResidency, ...] = ()
    counts: tuple[ActionCount, ...] = ()

    def model(self, name: str) -> ModelResidency | None:
        return next((m for m in self.models if m.name == name), None)

    def as_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["models"] = [asdict(m) for m in self.models]
        document["counts"] = [asdict(c) for c in self.counts]
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResidencyReport:
        values = _known(cls, data)
        values["models"] = tuple(
            ModelResidency(**_known(ModelResidency, m)) for m in data.get("models") or ()
        )
        values["counts"] = tuple(
            ActionCount(**_known(ActionCount, c)) for c in data.get("counts") or ()
        )
        return cls(**values)


def _known(kind: Any, data: dict[str, Any]) -> dict[str, Any]:
    names = {field.name for field in fields(kind)}
    return {key: value for key, value in data.items() if key in names}
