"""At most N job requests at once across every process of the container.

Each slot is one byte of a shared lock file, taken with a non-blocking `fcntl` lock. The
kernel drops a dead process's locks, so a crashed worker never leaks capacity. POSIX
locks belong to a process, not a thread, so each process also tracks the slots its own
threads hold. Counting the slots in use asks the kernel for other processes' locks
(`F_GETLK`), one call per lock found, so it costs the jobs running, not the capacity.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Linux's struct flock: l_type, l_whence (short), l_start, l_len (off_t), l_pid (pid_t).
_FLOCK = "hhqqi"


def other_locks(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The byte ranges in [start, end) write-locked by other processes, in order
    (clipped; a process's adjacent locks come as one range). Linux only."""
    position = start
    while position < end:
        query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, position, end - position, 0)
        kind, _, lock_start, length, _ = struct.unpack(
            _FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query)
        )
        if kind == fcntl.F_UNLCK:
            return
        lock_end = end if length == 0 else min(end, lock_start + length)
        yield max(lock_start, position), lock_end
        position = lock_end


class SlotLimiter:
    """`acquire()` yields a slot number, or None at once when all slots are taken."""

    def __init__(self, path: Path, capacity: int) -> None:
        self.capacity = capacity
        self._path = path
        self._fd: int | None = None
        self._pid: int | None = None
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._in_use: tuple[float, int] | None = None

    def _file(self) -> int:
        # Opened lazily and per process: a descriptor inherited across fork shares locks.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
            self._held = set()
        return self._fd

    @staticmethod
    def _try_lock(fd: int, slot: int) -> bool:
        """Take `slot` without waiting; False when another process holds it."""
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
        except OSError:
            return False
        return True

    def _take(self) -> int | None:
        with self._lock:
            fd = self._file()
            for slot in range(self.capacity):
                if slot not in self._held and self._try_lock(fd, slot):
                    self._held.add(slot)
                    return slot
            return None

    def _give(self, slot: int) -> None:
        with self._lock:
            fcntl.lockf(self._file(), fcntl.LOCK_UN, 1, slot)
            self._held.discard(slot)

    def take(self) -> int | None:
        """A slot, or None at once when all are taken; hand it back with `give`."""
        return self._take()

    def give(self, slot: int) -> None:
        """Free a slot from `take`."""
        self._give(slot)

    @contextmanager
    def acquire(self) -> Iterator[int | None]:
        slot = self._take()
        try:
            yield slot
        finally:
            if slot is not None:
                self._give(slot)

    def in_use(self, max_age: float = 0.0) -> int:
        """Slots held by any process (a lock-probing count), at most `max_age` s old."""
        cached = self._in_use
        if max_age > 0 and cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
        count = self._count_in_use()
        self._in_use = (time.monotonic(), count)
        return count

    def _count_in_use(self) -> int:
        with self._lock:
            fd = self._file()
            busy = len(self._held)  # this process's own locks: F_GETLK never reports them
            if sys.platform == "linux":
                return busy + sum(end - start for start, end in other_locks(fd, 0, self.capacity))
            return busy + self._count_by_probing(fd)

    def _count_by_probing(self, fd: int) -> int:
        """Other processes' slots, found by trying each free slot (any POSIX system)."""
        busy = 0
        for slot in range(self.capacity):
            if slot in self._held:
                continue
            if self._try_lock(fd, slot):
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, slot)
            else:
                busy += 1
        return busy
