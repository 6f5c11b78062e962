"""gpu_fitness on hand-made views: fit only with a fresh reading and no lost or critical GPU."""

from __future__ import annotations

from typing import Any

import pytest

from worker.sampling.fitness import gpu_fitness
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport

XID_79 = "xid_79: XID 79 since start: GPU has fallen off the bus (XID 79 seen since start)"
THERMAL = "thermal_throttle: clocks slowed for temperature (hw_thermal_slowdown)"


def gpu(index: int, verdict: Any = "ok", reasons: tuple[str, ...] = (), **fields: Any):
    return GpuReading(index, name="NVIDIA L4", verdict=verdict, verdict_reasons=reasons, **fields)


def nvml(*gpus: GpuReading, status: Any = "ok", reason: str | None = None) -> SourceView[Any]:
    return SourceView("nvml", status, reason, GpuReport("560.35.03", gpus), 0.1, 1.0)


OLLAMA = SourceView("ollama", "ok", None, Catalogue("0.12.6", ()), 0.1, 1.0)


def test_fit_when_every_gpu_is_ok_or_only_warned() -> None:
    assert gpu_fitness(nvml(gpu(0), gpu(1, "warning", (THERMAL,)))) == (True, None)
    assert gpu_fitness((nvml(gpu(0)), OLLAMA)) == (True, None)  # Readings.views() as it is
    assert gpu_fitness([OLLAMA, nvml(gpu(0))]) == (True, None)


def test_a_critical_gpu_is_not_fit_and_named_with_its_first_rule() -> None:
    views = (nvml(gpu(0), gpu(1, "critical", (XID_79, THERMAL))), OLLAMA)
    assert gpu_fitness(views) == (False, f"nvml: GPU 1: critical: {XID_79}")


def test_a_lost_gpu_is_not_fit_even_from_a_sampler_without_verdicts() -> None:
    lost = "GPU is lost (fell off the bus or is not responding)"
    reason = f"gpu_lost: NVML cannot read the GPU ({lost})"
    assert gpu_fitness(nvml(gpu(0), gpu(1, "critical", (reason,), error=lost))) == (
        False,
        f"nvml: GPU 1: critical: {reason}",
    )
    assert gpu_fitness(nvml(gpu(0, None, (), error=lost))) == (False, f"nvml: GPU 0: {lost}")
    assert gpu_fitness(nvml(gpu(0, None))) == (True, None)  # no verdict, readable: fit


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("stale", "nvml has not answered for 3.0 s (timeout 2 s)"),
        ("unavailable", "NVIDIA driver not loaded"),
        ("pending", "no reading yet"),
    ],
)
def test_not_fit_unless_the_nvml_reading_is_ok(status: str, reason: str) -> None:
    view = nvml(gpu(0), status=status, reason=reason)
    assert gpu_fitness((view, OLLAMA)) == (False, f"nvml {status}: {reason}")


def test_no_gpu_or_no_nvml_view_is_not_fit() -> None:
    assert gpu_fitness(nvml()) == (False, "nvml: no GPU visible")
    empty = SourceView("nvml", "ok", None, None, None, None)
    assert gpu_fitness(empty) == (False, "nvml: no GPU visible")
    assert gpu_fitness([OLLAMA]) == (False, "nvml: no reading published")
    assert gpu_fitness(OLLAMA) == (False, "nvml: no reading published")


def test_only_the_gpus_asked_about_count() -> None:
    view = nvml(gpu(0), gpu(1, "critical", (XID_79,)))
    assert gpu_fitness(view, gpus=[0]) == (True, None)
    assert gpu_fitness(view, gpus=[1])[0] is False
    assert gpu_fitness(view, gpus=[2]) == (False, "nvml: GPU 2 not present")
    assert gpu_fitness(view, gpus=[]) == (True, None)
