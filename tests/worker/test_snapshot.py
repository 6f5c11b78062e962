"""The sampler's view logic, with a controllable clock and a real background thread."""

from __future__ import annotations

import threading
import time

from worker.snapshot import SourceSampler
from worker.sources import SourceUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(read, clock: Clock, timeout: float = 2.0, stale_after: float = 3.0) -> SourceSampler:
    return SourceSampler(
        "src", read, interval=1.0, timeout=timeout, stale_after=stale_after, clock=clock
    )


def test_pending_then_ok_then_stale_by_age() -> None:
    clock = Clock()
    sampler = make(lambda: "reading", clock)
    assert sampler.view().status == "pending" and not sampler.has_answered
    sampler.sample_once()
    view = sampler.view()
    assert (view.status, view.data, view.age_seconds, view.reason) == ("ok", "reading", 0.0, None)
    clock.now += 3.5
    view = sampler.view()
    assert view.status == "stale" and view.data == "reading"
    assert view.reason == "last reading is 3.5 s old"


def test_failure_hides_data_and_gives_the_reason_then_recovers() -> None:
    clock = Clock()
    outcome: list[object] = ["first"]

    def read() -> object:
        value = outcome[0]
        if isinstance(value, Exception):
            raise value
        return value

    sampler = make(read, clock)
    sampler.sample_once()
    outcome[0] = SourceUnavailable("Ollama unreachable at http://x:1")
    clock.now += 1
    sampler.sample_once()
    view = sampler.view()
    assert (view.status, view.reason, view.data) == (
        "unavailable",
        "Ollama unreachable at http://x:1",
        None,
    )
    outcome[0] = KeyError("surprise")
    sampler.sample_once()
    assert sampler.view().reason == "unexpected KeyError"
    outcome[0] = "second"
    sampler.sample_once()
    assert (sampler.view().status, sampler.view().data) == ("ok", "second")


def test_a_hung_read_is_stale_at_once_with_the_last_data() -> None:
    release = threading.Event()
    calls = 0

    def read() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            release.wait(10)
        return f"reading-{calls}"

    sampler = SourceSampler("nvml", read, interval=0.01, timeout=0.2, stale_after=60)
    sampler.start()
    assert sampler.wait_first_answer(5)
    deadline = time.monotonic() + 5
    while sampler.view().status != "stale" and time.monotonic() < deadline:
        time.sleep(0.02)
    view = sampler.view()
    assert view.status == "stale" and view.data == "reading-1"
    assert view.reason is not None and view.reason.startswith("nvml has not answered for")
    assert calls == 2  # one thread per source: no pile-up of stuck calls behind the first
    release.set()
    sampler.stop()


def test_view_never_waits_for_the_source() -> None:
    gate = threading.Event()
    sampler = SourceSampler("slow", lambda: gate.wait(10), interval=1, timeout=5, stale_after=60)
    sampler.start()
    started = time.monotonic()
    for _ in range(1000):
        sampler.view()
    assert time.monotonic() - started < 2  # 1000 views while the read is blocked
    gate.set()
    sampler.stop()
