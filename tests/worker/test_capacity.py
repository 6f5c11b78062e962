"""The cross-process slot limiter behind CAPABILITY_CAPACITY."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

from worker.http.capacity import SlotLimiter


def test_slots_are_shared_by_threads_of_one_process(tmp_path: Path) -> None:
    limiter = SlotLimiter(tmp_path / "slots", 2)
    with limiter.acquire() as first, limiter.acquire() as second, limiter.acquire() as third:
        assert {first, second} == {0, 1} and third is None
        assert limiter.in_use() == 2
    assert limiter.in_use() == 0
    with limiter.acquire() as again:
        assert again == 0


def _hold_slot(path: str, ready, release) -> None:  # runs in a child process
    limiter = SlotLimiter(Path(path), 2)
    with limiter.acquire() as slot:
        ready.put(slot)
        release.wait(30)


def test_slots_are_shared_across_processes_and_freed_when_one_dies(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    ready, release = context.Queue(), context.Event()
    path = tmp_path / "slots"
    child = context.Process(target=_hold_slot, args=(str(path), ready, release))
    child.start()
    assert ready.get(timeout=10) == 0
    limiter = SlotLimiter(path, 2)
    with limiter.acquire() as mine, limiter.acquire() as none_left:
        assert mine == 1 and none_left is None
    assert limiter.in_use() == 1
    os.kill(child.pid, signal.SIGKILL)  # a crashed worker must not leak its slot
    child.join(10)
    assert limiter.in_use() == 0
    with limiter.acquire() as first, limiter.acquire() as second:
        assert {first, second} == {0, 1}
