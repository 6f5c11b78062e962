"""The /gpu-check document: every field name and unit of it, in this one module.

The seed's fields come first with their names unchanged (`status`, `agent_id`,
`model_name`, `vram_usage_mb`, `total_models`, `timestamp`, `gpu_count`), then the detail.
Memory is MiB (bytes / 2**20, as nvidia-smi shows it) in every `*_mb` field, power in
watts, times in Unix seconds. Each GPU carries its health readings (`health`), XID
statistics (`xid`) and verdict (`verdict`, `verdict_reasons`), docs/gpu-health.md; the
document is `degraded` while any GPU's verdict is not `ok`. `agents` lists the agents
(worker/agents.py) with their model's state and capabilities and the jobs each runs now.
The per-GPU and per-model parts change only when the sampler publishes a new reading, so
they are encoded once per reading and spliced into every response; a request encodes
only its own small fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from worker.agents import Agent
from worker.config import Settings
from worker.http.capacity import SlotLimiter
from worker.residency.report import ModelResidency, ResidencyReport
from worker.sampling.admission import catalogue_entry
from worker.sampling.published import Readings, SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry
from worker.units import MIB, to_mib


def gpu_fields(gpu: GpuReading) -> dict[str, Any]:
    """One GPU as the document shows it."""
    return {
        "index": gpu.index,
        "name": gpu.name,
        "uuid": gpu.uuid,
        "status": "ok" if gpu.error is None else "error",
        "error": gpu.error,
        "memory_used_mb": to_mib(gpu.memory_used_bytes),
        "memory_total_mb": to_mib(gpu.memory_total_bytes),
        "memory_used_bytes": gpu.memory_used_bytes,
        "memory_total_bytes": gpu.memory_total_bytes,
        "temperature_c": gpu.temperature_c,
        "power_draw_w": gpu.power_draw_w,
        "power_limit_w": gpu.power_limit_w,
        "utilization_gpu_pct": gpu.utilization_gpu_pct,
        "utilization_memory_pct": gpu.utilization_memory_pct,
        "verdict": gpu.verdict,
        "verdict_reasons": list(gpu.verdict_reasons),
        "action": gpu.action,
        "action_rule": gpu.action_rule,
        "action_reason": gpu.action_reason,
        "health": gpu.health,
        "xid": gpu.xid,
    }


def gpu_reasons(gpus: tuple[GpuReading, ...]) -> list[str]:
    """The document's reasons for its GPUs: NVML's error, then each verdict reason."""
    reasons = [f"nvml: GPU {gpu.index}: {gpu.error}" for gpu in gpus if gpu.error]
    reasons.extend(
        f"nvml: GPU {gpu.index}: {gpu.verdict}: {reason}"
        for gpu in gpus
        if gpu.verdict not in (None, "ok")
        for reason in gpu.verdict_reasons
    )
    return reasons


def model_fields(model: ModelEntry, residency: ModelResidency | None = None) -> dict[str, Any]:
    """One Ollama model as the document shows it, with the residency loop's view of it."""
    residency = residency or ModelResidency(model.name)
    return {
        "name": model.name,
        "size_bytes": model.size_bytes,
        "size_mb": to_mib(model.size_bytes),
        "parameter_size": model.parameter_size,
        "quantization": model.quantization,
        "family": model.family,
        "digest": model.digest,
        "modified_at": model.modified_at,
        "loaded": model.loaded,
        "vram_bytes": model.vram_bytes,
        "vram_mb": to_mib(model.vram_bytes),
        "expires_at": model.expires_at,
        "capabilities": None if model.capabilities is None else list(model.capabilities),
        "hot": residency.hot,
        "pinned": residency.pinned,
        "requests_last_hour": residency.requests_last_hour,
        "last_used": residency.last_used,
    }


def residency_fields(report: ResidencyReport | None) -> dict[str, Any] | None:
    """The residency loop's settings and last run (docs/residency.md); None before one."""
    if report is None:
        return None
    return {
        "enabled": report.enabled,
        "vram_budget": report.budget_setting,
        "vram_budget_mb": to_mib(report.budget_bytes),
        "vram_used_mb": to_mib(report.vram_used_bytes),
        "hot_requests": report.hot_requests,
        "hot_window_seconds": report.hot_window_seconds,
        "interval_seconds": report.interval_seconds,
        "last_run_at": report.last_run_at,
        "error": report.error,
    }


def agent_fields(agent: Agent, catalogue: Catalogue | None) -> dict[str, Any]:
    """One agent as the document shows it, without `jobs_running` (filled per request)."""
    entry = catalogue_entry(catalogue, agent.model)
    capabilities = None if entry is None else entry.capabilities
    return {
        "name": agent.name,
        "model": agent.model,
        "on_disk": entry is not None,
        "loaded": entry is not None and entry.loaded,
        "vram_mb": to_mib(entry.vram_bytes) if entry is not None and entry.loaded else None,
        "capacity": agent.capacity,
        "capabilities": None if capabilities is None else list(capabilities),
    }


def vram_usage_mb(gpus: tuple[GpuReading, ...]) -> float:
    """The seed's `vram_usage_mb`: NVML's memory used, summed over GPUs, in MiB."""
    return round(sum(gpu.memory_used_bytes or 0 for gpu in gpus) / MIB, 1)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class _EncodedOnce:
    """Remembers the JSON of the last objects it encoded (readings are immutable)."""

    def __init__(self, encode: Callable[..., str]) -> None:
        self._encode = encode
        self._last: tuple[tuple[object, ...], str] | None = None

    def __call__(self, *data: object) -> str:
        last = self._last
        if (
            last is not None
            and len(last[0]) == len(data)
            and all(a is b for a, b in zip(last[0], data, strict=True))
        ):
            return last[1]
        encoded = self._encode(*data)
        self._last = (data, encoded)  # one atomic assignment: safe across greenlets
        return encoded


def _encode_gpus(report: GpuReport | None) -> str:
    return _compact([] if report is None else [gpu_fields(gpu) for gpu in report.gpus])


def _encode_models(catalogue: Catalogue | None, residency: ResidencyReport | None) -> str:
    if catalogue is None:
        return "[]"
    found = {} if residency is None else {m.name: m for m in residency.models}
    return _compact([model_fields(m, found.get(m.name)) for m in catalogue.models])


# `jobs_running` per agent is counted by probing its slot locks (one syscall per slot):
# at most this old, so a busy /gpu-check does not probe every slot on every request.
JOBS_RUNNING_MAX_AGE = 0.25


class ReportBuilder:
    """Builds the /gpu-check JSON text for one app (one per gunicorn worker process).

    Between two readings only `agent_id`, `timestamp`, the sources' ages and the agents'
    running jobs (and order) change, so the rest is encoded once per state (readings and
    statuses) and cut into a template whose gaps each request fills: a request encodes a
    few small values, not a document. Each agent's fields but `jobs_running` are encoded
    once per state too; `jobs_running` is counted per request from the agent's slots.
    """

    def __init__(
        self,
        settings: Settings,
        readings: Readings,
        agents: tuple[Agent, ...] = (),
        limiters: dict[str, SlotLimiter] | None = None,
    ) -> None:
        self._model_name = settings.ollama_model
        self._readings = readings
        self._agents = agents
        self._limiters = limiters or {}
        self._gpus_json = _EncodedOnce(_encode_gpus)
        self._models_json = _EncodedOnce(_encode_models)
        self._template: tuple[object, tuple[str, ...], tuple[str, ...]] | None = None

    def render(self, agent_id: str) -> str:
        """The report as JSON text: the seed's fields first (same names), then the detail."""
        views = self._readings.views()
        residency = self._readings.residency(refresh=False)  # views() just refreshed
        key = (
            *((view.data, view.status, view.reason, view.read_at) for view in views),
            (residency,),
        )
        cached = self._template
        if cached is not None and _same_key(cached[0], key):
            parts, agents = cached[1], cached[2]
        else:
            parts = self._cut_template(views, residency)
            agents = tuple(_compact(agent_fields(a, views[1].data))[:-1] for a in self._agents)
            self._template = (key, parts, agents)
        gpu_view, ollama_view = views
        return "".join(
            (
                parts[0],
                _encode_string(agent_id),
                parts[1],
                repr(time.time()),
                parts[2],
                _age(gpu_view.age_seconds),
                parts[3],
                _age(ollama_view.age_seconds),
                parts[4],
                self._agents_json(agent_id, agents),
                parts[5],
            )
        )

    def _agents_json(self, agent_id: str, encoded: tuple[str, ...]) -> str:
        """The agents with their running jobs now; the one `agent_id` names comes first."""
        items = []
        for agent, head in zip(self._agents, encoded, strict=True):
            limiter = self._limiters.get(agent.name)
            running = limiter.in_use(JOBS_RUNNING_MAX_AGE) if limiter is not None else 0
            item = f'{head},"jobs_running":{running}}}'
            if agent.name == agent_id:
                items.insert(0, item)
            else:
                items.append(item)
        return "[" + ",".join(items) + "]"

    def _cut_template(
        self,
        views: tuple[SourceView[GpuReport], SourceView[Catalogue]],
        residency: ResidencyReport | None,
    ) -> tuple[str, ...]:
        """The document for `views` with gaps where the per-request values go."""
        gpu_view, ollama_view = views
        gpu_report, catalogue = gpu_view.data, ollama_view.data
        gpus = gpu_report.gpus if gpu_report is not None else ()
        models = catalogue.models if catalogue is not None else ()
        reasons = [f"{view.name}: {view.reason}" for view in views if view.status != "ok"]
        reasons.extend(gpu_reasons(gpus))
        head = _compact(
            {"status": "success" if not reasons else "degraded", "agent_id": _GAP}
        ).split(_GAP_JSON)[0]
        middle = _compact(
            {
                "model_name": self._model_name,
                "vram_usage_mb": vram_usage_mb(gpus),
                "total_models": len(models),
                "timestamp": _GAP,
            }
        )
        rest = {
            "gpu_count": len(gpus),
            "reasons": reasons,
            "gpus": _GAP_GPUS,
            "models": _GAP_MODELS,
            "driver_version": gpu_report.driver_version if gpu_report is not None else None,
            "model_present": any(model.name == self._model_name for model in models),
            "ollama_version": catalogue.version if catalogue is not None else None,
            "sources": {view.name: {**view.as_dict(), "age_seconds": _GAP} for view in views},
            "residency": residency_fields(residency),
            "agents": _GAP,
        }
        tail = (
            _compact(rest)
            .replace(_compact(_GAP_GPUS), self._gpus_json(gpu_report))
            .replace(_compact(_GAP_MODELS), self._models_json(catalogue, residency))
        )
        before_time, after_time = middle[1:].split(_GAP_JSON)
        pieces = tail[1:].split(_GAP_JSON)
        return (
            head,
            "," + before_time,
            after_time[:-1] + "," + pieces[0],
            pieces[1],
            pieces[2],
            pieces[3],
        )


# Placeholders in a template: strings no reading can contain (control characters).
_GAP = "\x00gap\x00"
_GAP_JSON = json.dumps(_GAP)
_GAP_GPUS = "\x00gpus\x00"
_GAP_MODELS = "\x00models\x00"
_encode_string: Callable[[str], str] = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def _age(seconds: float | None) -> str:
    return "null" if seconds is None else repr(round(seconds, 3))


def _same_key(left: object, right: tuple[tuple[object, ...], ...]) -> bool:
    """Keys match when the very same reading objects have the same statuses and times."""
    if not isinstance(left, tuple) or len(left) != len(right):
        return False
    return all(a[0] is b[0] and a[1:] == b[1:] for a, b in zip(left, right, strict=True))
