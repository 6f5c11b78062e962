"""Whether the GPUs can take work now, from the published NVML view: one answer, one reason.

For admission (refuse an agent's job on a critical GPU) and readiness (a live runner on
it is not ready). Not fit while NVML's reading is not `ok` (unavailable, stale, pending),
while NVML sees no GPU, while any GPU asked about is lost or unreadable, or while any
such GPU's verdict is `critical` (docs/gpu-health.md). A `warning` verdict is still fit.
Cheap (no I/O) and free of NVML: HTTP workers call it per request.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from worker.sampling.published import SourceView
from worker.sampling.readings import GpuReading, GpuReport

NVML_SOURCE = "nvml"


def gpu_fitness(
    views: SourceView[Any] | Iterable[SourceView[Any]],
    gpus: Collection[int] | None = None,
) -> tuple[bool, str | None]:
    """(fit, reason): reason None when fit, else plain words naming GPU and rule.

    `views` is `Readings.views()` (or its NVML view alone). `gpus` limits the check to
    those GPU indexes (an agent pinned to GPU 1 need not wait on GPU 0); a GPU asked
    for that NVML does not see is not fit.
    """
    view = _nvml_view(views)
    if view is None:
        return False, "nvml: no reading published"
    if view.status != "ok":
        return False, f"nvml {view.status}: {view.reason}"
    report: GpuReport | None = view.data
    if report is None or not report.gpus:
        return False, "nvml: no GPU visible"
    by_index = {gpu.index: gpu for gpu in report.gpus}
    wanted = sorted(by_index) if gpus is None else sorted(gpus)
    for index in wanted:
        gpu = by_index.get(index)
        if gpu is None:
            return False, f"nvml: GPU {index} not present"
        unfit = _unfit(gpu)
        if unfit is not None:
            return False, unfit
    return True, None


def _unfit(gpu: GpuReading) -> str | None:
    if gpu.verdict == "critical":
        first = gpu.verdict_reasons[0] if gpu.verdict_reasons else "no reason given"
        return f"nvml: GPU {gpu.index}: critical: {first}"
    if gpu.error is not None:  # lost or unreadable, from a sampler without verdicts
        return f"nvml: GPU {gpu.index}: {gpu.error}"
    return None


def _nvml_view(views: SourceView[Any] | Iterable[SourceView[Any]]) -> SourceView[Any] | None:
    if isinstance(views, SourceView):
        return views if views.name == NVML_SOURCE else None
    return next((view for view in views if view.name == NVML_SOURCE), None)
