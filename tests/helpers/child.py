"""Run a snippet of Python in a fresh interpreter and read back the one result it emits,
or start one and talk to it through its pipes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

RESULT_PREFIX = "RESULT "


def result_of(stdout: str, stderr: str) -> dict:
    """The JSON a child printed on its `RESULT ` line."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise AssertionError(f"child printed no RESULT line\nstdout:\n{stdout}\nstderr:\n{stderr}")


def run_python(prelude: str, code: str, env: dict[str, str], timeout: float) -> dict:
    """Run `prelude` + `code` (dedented) in a fresh Python; return what it emitted."""
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return result_of(proc.stdout, proc.stderr)


def start_python(code: str, env: dict[str, str], stdin: bool = False) -> subprocess.Popen[str]:
    """Start `code` in a fresh Python, its output (and, with `stdin`, its input) in text
    pipes; the caller reads, writes and ends it."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """`proc`, killed and reaped on leaving the block if it still runs."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def finished(proc: subprocess.Popen[str], timeout: float) -> dict:
    """Wait (at most `timeout` s) for a child from `start_python` to exit with 0; return
    the result it emitted."""
    with reaped(proc):
        stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{stdout}\n{stderr}"
    return result_of(stdout, stderr)
