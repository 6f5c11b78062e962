"""Real OS threads and the primitives they share, even under gevent's monkey-patching.

gunicorn's gevent worker patches `threading` before the app is built, so there
`threading.Thread` starts a greenlet and `threading.Event` waits on the hub. A sampler
blocked in NVML (a C call) must not hold the hub: its thread has to be a real one, and
anything it waits on has to be a real lock. Without gevent's patches these helpers are
the plain `threading` ones.
"""

from __future__ import annotations

import _thread
import sys
import threading
from collections.abc import Callable
from typing import Any


def gevent_patched() -> bool:
    """True when gevent has monkey-patched `threading` in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _original(name: str) -> Any:
    """`_thread.<name>` as it was before any gevent patching."""
    if gevent_patched():
        return sys.modules["gevent.monkey"].get_original("_thread", name)
    return getattr(_thread, name)


def real_lock() -> Any:
    """A lock that blocks the calling OS thread, never a greenlet's hub."""
    return _original("allocate_lock")()


def start_real_thread(target: Callable[[], None], name: str) -> None:
    """Run `target` in a new daemon OS thread (a real one even under gevent)."""
    if not gevent_patched():
        threading.Thread(target=target, name=name, daemon=True).start()
        return
    _original("start_new_thread")(target, ())


class RealEvent:
    """A set-once flag that real threads can wait on with a timeout.

    `set()` and `is_set()` never block for long, so a greenlet may call them; `wait()`
    blocks the OS thread, so under gevent only a real thread (or a hub that serves
    nothing yet) should call it.
    """

    def __init__(self) -> None:
        self._guard = real_lock()
        self._gate = real_lock()
        self._gate.acquire()
        self._set = False

    def set(self) -> None:
        with self._guard:
            if not self._set:
                self._set = True
                self._gate.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Block until set or `timeout` seconds pass; True if set."""
        if self._set:
            return True
        if self._gate.acquire(True, max(0.0, timeout)):
            self._gate.release()
            return True
        return self._set
