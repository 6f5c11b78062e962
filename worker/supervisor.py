"""The gunicorn master's own children: the sampler and the registrar, one of each.

Each is a separate Python process (no thread runs in the master when it forks its HTTP
workers). The master starts them once the server listens, restarts one that dies (an
ERROR line, then capped exponential backoff), and stops them on exit. gunicorn's
arbiter reaps every child with `waitpid(-1)`, so `SupervisingArbiter` reaps these
first, by pid, to keep their exit status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gunicorn.arbiter import Arbiter

import worker
from worker.runtime import PARENT_VARIABLE, RUNTIME_DIR_VARIABLE

log = logging.getLogger("agent_net.server")
RESTART_BACKOFF_SECONDS = (0.5, 30.0)  # first delay, cap
# A child found dead is judged only this long after: a signal to the whole process group
# reaches the master and its children together, and the master's own stop comes first.
JUDGE_AFTER_SECONDS = 0.5


class Child:
    """One supervised child process: `python -m <module>`, restarted when it dies."""

    def __init__(self, name: str, module: str, runtime_dir: Path) -> None:
        self.name = name
        self.module = module
        self.runtime_dir = runtime_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._died_at: float | None = None
        self._exit: str | None = None
        self._restart_at: float | None = None
        self._failures = 0

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        package_root = str(Path(worker.__file__).resolve().parent.parent)
        python_path = os.environ.get("PYTHONPATH")
        env = {
            **os.environ,
            RUNTIME_DIR_VARIABLE: str(self.runtime_dir),
            PARENT_VARIABLE: str(os.getpid()),
            "PYTHONPATH": package_root + (os.pathsep + python_path if python_path else ""),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=env, stdin=subprocess.DEVNULL
        )
        self._died_at = self._exit = self._restart_at = None
        log.info("%s_started pid=%d", self.name, self.process.pid)

    def reap(self) -> None:
        """Collect the exit status if the child has ended (never blocks)."""
        process = self.process
        if process is None or self._died_at is not None:
            return
        if process.returncode is not None:  # already waited for through Popen
            self._died(_describe_code(process.returncode))
            return
        try:
            pid, status = os.waitpid(process.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by gunicorn's waitpid(-1): status unknown
            process.returncode = -1
            self._died("code=unknown")
            return
        if pid == 0:
            return
        process.returncode = os.waitstatus_to_exitcode(status)
        self._died(_describe_code(process.returncode))

    def _died(self, how: str) -> None:
        self._died_at = time.monotonic()
        self._exit = how

    def supervise(self, stopping: bool) -> None:
        """Restart the child if it died while the master is not stopping (call often)."""
        if stopping or self._died_at is None:
            return
        now = time.monotonic()
        if self._restart_at is None:
            if now - self._died_at < JUDGE_AFTER_SECONDS:
                return
            self._failures += 1
            first, cap = RESTART_BACKOFF_SECONDS
            delay = min(cap, first * 2 ** min(self._failures - 1, 16))
            self._restart_at = self._died_at + delay
            log.error(
                "%s_exited pid=%s %s action=restart restart_in=%.1f",
                self.name,
                self.pid,
                self._exit,
                max(0.0, self._restart_at - now),
            )
            return
        if now >= self._restart_at:
            self.restarts += 1
            self.start()

    def ask_to_stop(self) -> None:
        """SIGTERM the child (it unregisters or closes NVML, then exits)."""
        process = self.process
        if process is not None and self._died_at is None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the child until `deadline` (monotonic), then kill it."""
        process, self.process = self.process, None
        if process is None or self._died_at is not None:
            return
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning('%s_killed pid=%d reason="it did not stop in time"', self.name, process.pid)
            process.kill()
            process.wait(2)
        except ChildProcessError:  # reaped by gunicorn's waitpid(-1) meanwhile
            pass


def stop_children(children: list[Child], timeout: float) -> None:
    """Ask every child to stop at once, then wait for all of them, `timeout` s in all."""
    for child in children:
        child.ask_to_stop()
    deadline = time.monotonic() + timeout
    for child in children:
        child.wait_stopped(deadline)


def _describe_code(returncode: int) -> str:
    """Popen's return code in words: `code=N`, or `signal=NAME` for a negative one."""
    if returncode < 0:
        return f"signal={signal.Signals(-returncode).name}"
    return f"code={returncode}"


class SupervisingArbiter(Arbiter):
    """gunicorn's arbiter, also reaping and restarting the container's own children."""

    def __init__(self, app: Any, children: list[Child]) -> None:
        self.children = children
        self.stopping = False
        super().__init__(app)

    def reap_workers(self) -> None:
        for child in self.children:
            child.reap()
        super().reap_workers()

    def manage_workers(self) -> None:
        super().manage_workers()
        for child in self.children:
            child.reap()
            child.supervise(self.stopping)

    def stop(self, graceful: bool = True) -> None:
        # The children stop in parallel with the HTTP workers (the registrar unregisters
        # while the workers finish their requests); the master's on_exit waits for them.
        if not self.stopping:
            self.stopping = True
            for child in self.children:
                child.ask_to_stop()
        super().stop(graceful)
