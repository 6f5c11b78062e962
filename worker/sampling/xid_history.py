"""Serious XIDs per GPU over the last day, kept in a file so that they outlive a restart.

The recovery rule `xid_recurring` (worker/sampling/recovery.py) counts the same reset- or
reboot-class XID over RECURRENCE_WINDOW_S. Curing such an error means stopping the stack
(a GPU reset needs every process off the GPU) or rebooting, which restarts the sampler, so
the events are kept in a small JSON file in the data directory, keyed by GPU UUID (an index
only while the UUID is unknown). Written only when such an XID arrives, atomically.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from worker.sampling.recovery import RECURRENCE_WINDOW_S

log = logging.getLogger("agent_net.sampler")
XID_HISTORY_FILE = "xid_history.json"  # in AGENT_NET_DATA_DIR
MAX_EVENTS_PER_GPU = 256  # a storm of XIDs cannot grow the file without bound


class XidHistory:
    """`record` an XID of a GPU; `counts` gives code -> times in the window, per GPU."""

    def __init__(
        self,
        path: Path | None,
        *,
        window_s: float = RECURRENCE_WINDOW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._path = path
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[str, list[tuple[int, float]]] = self._load()
        self._write_failed = False

    def _load(self) -> dict[str, list[tuple[int, float]]]:
        if self._path is None:
            return {}
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            log.warning("xid_history_unreadable path=%s error=%s", self._path, type(error).__name__)
            return {}
        events: dict[str, list[tuple[int, float]]] = {}
        if isinstance(data, dict):
            for key, items in data.items():
                if isinstance(key, str) and isinstance(items, list):
                    events[key] = [
                        (int(item[0]), float(item[1]))
                        for item in items
                        if isinstance(item, list) and len(item) == 2
                    ]
        return events

    def record(self, gpu: str, code: int, when: float | None = None) -> None:
        """Keep XID `code` of GPU `gpu` (a UUID) seen at `when` (now by default)."""
        moment = self._clock() if when is None else when
        with self._lock:
            kept = self._prune(self._events.get(gpu, []), self._clock())
            kept.append((int(code), moment))
            self._events[gpu] = kept[-MAX_EVENTS_PER_GPU:]
            self._save()

    def counts(self, gpu: str) -> dict[int, int]:
        """XID code -> times GPU `gpu` had it within the window."""
        with self._lock:
            kept = self._prune(self._events.get(gpu, []), self._clock())
        counts: dict[int, int] = {}
        for code, _ in kept:
            counts[code] = counts.get(code, 0) + 1
        return counts

    def _prune(self, events: list[tuple[int, float]], now: float) -> list[tuple[int, float]]:
        return [(code, at) for code, at in events if at >= now - self._window_s]

    def _save(self) -> None:
        if self._path is None:
            return
        now = self._clock()
        document = {
            key: [[code, at] for code, at in self._prune(items, now)]
            for key, items in self._events.items()
        }
        tmp: str | None = None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".xid_history.", dir=self._path.parent)
            with os.fdopen(fd, "w") as out:
                json.dump({k: v for k, v in document.items() if v}, out)
            os.replace(tmp, self._path)
            tmp = None
        except OSError as error:
            if not self._write_failed:
                log.warning("xid_history_write_failed path=%s error=%s", self._path, error)
            self._write_failed = True
            return
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        self._write_failed = False
