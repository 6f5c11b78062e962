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


def _hold_slots(path: str, capacity: int, count: int, ready, release) -> None:  # a child
    limiter = SlotLimiter(Path(path), capacity)
    slots = [limiter.take() for _ in range(count)]
    ready.put(slots)
    release.wait(30)


def test_the_count_asks_the_kernel_for_other_processes_locks_merged_or_not(
    tmp_path: Path,
) -> None:
    """Two children hold runs of adjacent slots (the kernel merges a process's adjacent
    locks into one range) and this process holds some too: the F_GETLK count matches
    the truth and the slot-by-slot probe, and falls when a child dies or lets go."""
    context = multiprocessing.get_context("fork")
    path, capacity = tmp_path / "slots", 64
    children, releases, held = [], [], []
    for count in (5, 3):
        ready, release = context.Queue(), context.Event()  # one Event each: one is killed
        child = context.Process(
            target=_hold_slots, args=(str(path), capacity, count, ready, release)
        )
        child.start()
        children.append(child)
        releases.append(release)
        held.append(ready.get(timeout=10))
    assert held == [[0, 1, 2, 3, 4], [5, 6, 7]]
    limiter = SlotLimiter(path, capacity)
    mine = [limiter.take() for _ in range(2)]
    assert mine == [8, 9]
    assert limiter.in_use() == 10
    assert len(limiter._held) + limiter._count_by_probing(limiter._file()) == 10
    limiter.give(8)  # a gap in this process's run: still counted right
    assert limiter.in_use() == 9
    os.kill(children[0].pid, signal.SIGKILL)
    children[0].join(10)
    assert limiter.in_use() == 4
    releases[1].set()
    children[1].join(10)
    assert limiter.in_use() == 1
