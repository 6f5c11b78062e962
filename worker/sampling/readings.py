"""What the sampler reads: GPU and Ollama readings as plain immutable values.

These types cross the process boundary: the sampler publishes them as JSON
(`as_json()`), the HTTP workers rebuild them (`from_json()`). They carry raw units (bytes,
watts, percent); the /gpu-check document (worker/http/document.py) decides how to show them.
Importing this module loads neither NVML nor an HTTP client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal


class SourceUnavailable(Exception):
    """A source could not be read; `reason` is safe to show to operators and clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Verdict = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment: memory in bytes, power in watts, None = unsupported.

    `health` is `GpuHealth.as_dict()` (worker/sampling/gpu_health.py) and `xid` is
    `XidStats.as_dict()` (None: the GPU cannot report XID events); both are plain JSON
    so that this module needs no NVML binding. `verdict` and `verdict_reasons` come
    from worker/sampling/verdict.py, `action`, `action_rule` and `action_reason` from
    worker/sampling/recovery.py (docs/gpu-health.md); None only from a sampler that
    predates them. A GPU with `error` set (lost, unreadable) is `critical`.
    """

    index: int
    name: str | None = None
    uuid: str | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_c: int | None = None
    power_draw_w: float | None = None
    power_limit_w: float | None = None
    utilization_gpu_pct: int | None = None
    utilization_memory_pct: int | None = None
    error: str | None = None
    health: dict[str, Any] | None = None
    xid: dict[str, Any] | None = None
    verdict: Verdict | None = None
    verdict_reasons: tuple[str, ...] = ()
    action: str | None = None
    action_rule: str | None = None
    action_reason: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GpuReading:
        gpu: GpuReading = _build(cls, data)
        if not isinstance(gpu.verdict_reasons, tuple):
            gpu = replace(gpu, verdict_reasons=tuple(gpu.verdict_reasons or ()))
        return gpu


@dataclass(frozen=True)
class GpuReport:
    """Every GPU NVML sees, with the driver version."""

    driver_version: str | None
    gpus: tuple[GpuReading, ...]

    def as_json(self) -> dict[str, Any]:
        # Shallow: the fields are JSON values already (health and xid are plain dicts, and
        # json encodes tuples as lists); asdict's deep copy cost more than the NVML reads.
        return {"driver_version": self.driver_version, "gpus": [dict(vars(g)) for g in self.gpus]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GpuReport:
        gpus = tuple(GpuReading.from_json(g) for g in data["gpus"])
        return cls(data.get("driver_version"), gpus)


@dataclass(frozen=True)
class ModelEntry:
    """One model on disk, and whether (and how much of it) is loaded in GPU memory."""

    name: str
    size_bytes: int | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    family: str | None = None
    digest: str | None = None
    modified_at: str | None = None
    loaded: bool = False
    vram_bytes: int | None = None
    expires_at: str | None = None
    # What Ollama's /api/show says the model can do (`completion`, `tools`, `vision`,
    # `embedding`, `thinking`, ...); None until read (or an Ollama too old to say).
    capabilities: tuple[str, ...] | None = None


def embeds_only(capabilities: tuple[str, ...] | None) -> bool:
    """Whether a model with these capabilities embeds and cannot chat (an embedding
    agent's model); False when they are not known."""
    return (
        capabilities is not None
        and "embedding" in capabilities
        and "completion" not in capabilities
    )


@dataclass(frozen=True)
class Catalogue:
    """Every model Ollama has on disk, with the server's version."""

    version: str | None
    models: tuple[ModelEntry, ...]

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "models": [asdict(m) for m in self.models]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalogue:
        return cls(data.get("version"), tuple(_model_entry(m) for m in data["models"]))


def _model_entry(data: dict[str, Any]) -> ModelEntry:
    """A ModelEntry from its JSON (`capabilities` back to a tuple, as the sampler made it)."""
    entry: ModelEntry = _build(ModelEntry, data)
    capabilities = entry.capabilities
    if capabilities is not None and not isinstance(capabilities, tuple):
        entry = replace(entry, capabilities=tuple(capabilities))
    return entry


def _build(kind: Any, data: dict[str, Any]) -> Any:
    """`kind(**data)`, ignoring keys it does not know (a newer sampler may add fields)."""
    known = {field.name for field in fields(kind)}
    return kind(**{key: value for key, value in data.items() if key in known})
