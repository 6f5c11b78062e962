"""gunicorn's gevent worker, with a quick stop (SIGINT, SIGQUIT) that ends without a traceback.

gunicorn's `GeventWorker.handle_quit` spawns a greenlet that calls `sys.exit(0)`; gevent
throws that `SystemExit` into the main greenlet wherever it is. A signal to the whole
process group gives each worker two quick stops (SIGINT from the terminal or systemd,
then SIGQUIT from the master's own quick stop): the second greenlet then runs while the
main greenlet is already in the interpreter's shutdown, and gevent prints a `SystemExit`
traceback. Here a quick stop exits once, and never after the worker's loop has ended.
"""

from __future__ import annotations

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
