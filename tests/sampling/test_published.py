"""A source's states as the HTTP workers see them through the published readings file.

The sampler side (`SourceSampler` + `Publisher`) and the worker side (`Readings`) run
here in one process over a real file, with one controllable clock for both.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.sampling.published import Publisher, Readings
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry, SourceUnavailable
from worker.sampling.source import SourceSampler

REPORT = GpuReport("550.1", (GpuReading(0, name="Stand-in", memory_used_bytes=2**30),))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pair:
    """An nvml source and a fixed ollama source, published to `tmp_path`."""

    def __init__(
        self,
        tmp_path: Path,
        read: Callable[[], GpuReport],
        clock: Callable[[], float] = time.monotonic,
        *,
        timeout: float = 2.0,
        stale_after: float = 3.0,
        alive: Callable[[int], bool] = lambda pid: True,
    ) -> None:
        self.publisher = Publisher(tmp_path, self._document)
        self.nvml: SourceSampler[GpuReport] = SourceSampler(
            "nvml",
            read,
            interval=0.01,
            timeout=timeout,
            on_change=self.publisher.publish,
            clock=clock,
        )
        self.ollama: SourceSampler[Catalogue] = SourceSampler(
            "ollama",
            lambda: Catalogue("0.12.6", (ModelEntry("m:1", 10),)),
            interval=0.01,
            timeout=timeout,
            on_change=self.publisher.publish,
            clock=clock,
        )
        self.readings = Readings(tmp_path, stale_after=stale_after, clock=clock, pid_alive=alive)

    def _document(self) -> dict[str, Any]:
        return {
            "sources": {
                "nvml": self.nvml.as_json(GpuReport.as_json),
                "ollama": self.ollama.as_json(Catalogue.as_json),
            }
        }

    def nvml_view(self):  # type: ignore[no-untyped-def]
        return self.readings.views()[0]


def test_pending_then_ok_then_stale_by_age(tmp_path: Path) -> None:
    clock = Clock()
    pair = Pair(tmp_path, lambda: REPORT, clock)
    assert pair.nvml_view().status == "pending" and not pair.readings.ready()
    pair.publisher.publish()
    assert pair.nvml_view().status == "pending"
    pair.nvml.sample_once()
    view = pair.nvml_view()
    assert (view.status, view.data, view.age_seconds, view.reason) == ("ok", REPORT, 0.0, None)
    assert not pair.readings.ready()  # ollama has not been read yet
    pair.ollama.sample_once()
    assert pair.readings.ready()
    clock.now += 3.5
    view = pair.nvml_view()
    assert view.status == "stale" and view.data == REPORT
    assert view.reason == "last reading is 3.5 s old"


def test_failure_hides_data_and_gives_the_reason_then_recovers(tmp_path: Path) -> None:
    clock = Clock()
    outcome: list[object] = [REPORT]

    def read() -> GpuReport:
        value = outcome[0]
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]

    pair = Pair(tmp_path, read, clock)
    pair.nvml.sample_once()
    outcome[0] = SourceUnavailable("NVIDIA driver not loaded")
    clock.now += 1
    pair.nvml.sample_once()
    view = pair.nvml_view()
    assert (view.status, view.reason, view.data) == (
        "unavailable",
        "NVIDIA driver not loaded",
        None,
    )
    outcome[0] = KeyError("surprise")
    pair.nvml.sample_once()
    assert pair.nvml_view().reason == "unexpected KeyError"
    second = GpuReport("550.2", ())
    outcome[0] = second
    pair.nvml.sample_once()
    assert (pair.nvml_view().status, pair.nvml_view().data) == ("ok", second)


def test_a_hung_read_is_stale_at_once_with_the_last_data(tmp_path: Path) -> None:
    release = threading.Event()
    calls = 0

    def read() -> GpuReport:
        nonlocal calls
        calls += 1
        if calls > 1:
            release.wait(10)
        return REPORT

    pair = Pair(tmp_path, read, timeout=0.2, stale_after=60)
    pair.nvml.start()
    deadline = time.monotonic() + 5
    while pair.nvml_view().status != "stale" and time.monotonic() < deadline:
        time.sleep(0.02)
    view = pair.nvml_view()
    assert view.status == "stale" and view.data == REPORT
    assert view.reason is not None and view.reason.startswith("nvml has not answered for")
    assert calls == 2  # one thread per source: no pile-up of stuck calls behind the first
    release.set()
    pair.nvml.stop()


def test_a_dead_sampler_makes_every_source_stale_at_once(tmp_path: Path) -> None:
    alive = [True]
    pair = Pair(tmp_path, lambda: REPORT, alive=lambda pid: alive[0])
    pair.nvml.sample_once()
    pair.ollama.sample_once()
    assert pair.readings.ready() and pair.readings.sampler_running()
    alive[0] = False
    nvml, ollama = pair.readings.views()
    assert (nvml.status, ollama.status) == ("stale", "stale")
    assert nvml.reason == "the sampler process is not running (it is restarted automatically)"
    assert nvml.data == REPORT  # the last reading is still shown, marked stale
    assert not pair.readings.ready()


def test_views_come_from_the_file_another_process_wrote(tmp_path: Path) -> None:
    """Two readers (two HTTP workers) see the very same reading, re-read only on change."""
    pair = Pair(tmp_path, lambda: REPORT)
    pair.nvml.sample_once()
    pair.ollama.sample_once()
    other = Readings(tmp_path, stale_after=3.0)
    first, again = other.views()[0], other.views()[0]
    assert first.data == pair.nvml_view().data == REPORT
    assert first.read_at == pair.nvml_view().read_at
    assert first.data is again.data  # unchanged file: decoded once, not per request
    (tmp_path / "readings.json").write_text("{half a docu")  # a torn write cannot be seen
    assert other.views()[0].data is first.data


def test_views_never_wait_for_the_source(tmp_path: Path) -> None:
    gate = threading.Event()

    def read() -> GpuReport:
        gate.wait(10)
        return REPORT

    pair = Pair(tmp_path, read, timeout=5, stale_after=60)
    pair.nvml.start()
    viewer = threading.Thread(target=lambda: [pair.readings.views() for _ in range(1000)])
    viewer.start()
    viewer.join(10)  # a view that waited on the source would still be blocked on the gate
    assert not viewer.is_alive() and not gate.is_set()
    gate.set()
    pair.nvml.stop()
