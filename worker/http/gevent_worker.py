"""gunicorn's gevent worker, with a quick stop (SIGINT, SIGQUIT) that ends without a traceback.

gunicorn's `GeventWorker.handle_quit` spawns a greenlet that calls `sys.exit(0)`; gevent
throws that `SystemExit` into the main greenlet wherever it is. A signal to the whole
process group gives each worker two quick stops (SIGINT from the terminal or systemd,
then SIGQUIT from the master's own quick stop): the second greenlet then runs while the
main greenlet is already in the interpreter's shutdown, and gevent prints a `SystemExit`
traceback; or it arrives once the shutdown has put the default action back, which kills
the process (logged by the master as a warning). Here a worker leaves SIGINT to the master
and its quick stop exits once, never after the worker's loop has ended.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker


class QuietGeventWorker(GeventWorker):
    """`GeventWorker` whose quick stop runs once and only while the worker loop runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quitting = False
        self._finished = False

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._finished = True

    def init_signals(self) -> None:
        super().init_signals()
        # SIGINT from a terminal or systemd reaches the whole process group, and the master
        # answers it with its own quick stop, SIGQUIT, to each worker. A worker acting on
        # both may get the second during the interpreter's shutdown, which puts the
        # default action back: SIGQUIT then kills it, and the master logs a WARNING
        # ("Worker was sent SIGQUIT!"). So SIGINT is the master's alone: ignored here,
        # from the start (set later, a pending one raises "ignored due to race condition").
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        # In the signal handler: no blocking call here (gunicorn #1126), only a greenlet.
        if self._quitting:
            return
        self._quitting = True
        gevent.spawn(self._quit)

    def _quit(self) -> None:
        self.alive = False
        self.cfg.worker_int(self)
        if self._finished:  # the process is already on its way out: nothing to interrupt
            return
        # Greenlets are cooperative: nothing ran between the check above and this exit,
        # so the main greenlet is still inside run() and unwinds from there.
        sys.exit(0)
