"""Tests and the benchmark leave nothing in the temp directory, also when cut short.

Each check gives the processes it starts a private TMPDIR and looks at it afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT, WorkerProcess, free_port, wait_for


def private_tmp(tmp_path: Path) -> Path:
    path = tmp_path / "tmp"
    path.mkdir()
    return path


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name: state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and _stat(entry.name)[1] == str(pid):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def gone(pid: int) -> bool:
    try:
        return _stat(pid)[0] == "Z"
    except OSError:
        return True


def survivors(pids: list[int], timeout: float) -> list[int]:
    """Those of `pids` still running after `timeout` s; each is sent SIGTERM, so that a
    failing check leaves no server behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(gone(pid) for pid in pids):
        time.sleep(0.1)
    left = [pid for pid in pids if not gone(pid)]
    for pid in left:
        os.kill(pid, signal.SIGTERM)
    return left


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM `process` and wait for it (SIGKILL after 60 s); its exit status."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(10)


def test_a_test_worker_killed_with_sigkill_leaves_nothing(tmp_path: Path) -> None:
    tmp = private_tmp(tmp_path)
    libs = tmp_path / "no-nvml"
    libs.mkdir()
    worker = WorkerProcess(
        {"TMPDIR": str(tmp), "OLLAMA_HOST": "http://127.0.0.1:9"}, tmp_path / "w.log", libs
    )
    try:
        worker.start()
        assert worker.process is not None
        pids = [worker.process.pid, *children(worker.process.pid)]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        worker.process.wait(10)
        assert survivors(pids, 10) == []
    finally:
        worker.stop()
    assert sorted(p.name for p in tmp.iterdir()) == []


def test_the_standin_orchestrator_removes_its_certificate_directory(tmp_path: Path) -> None:
    tmp = private_tmp(tmp_path)
    log = tmp_path / "standin.log"
    command = [sys.executable, "tests/standins/orchestrator.py", "--self-signed"]
    command += ["--host", "127.0.0.1", "--port", str(free_port()), "--secret", "s"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)}, stdout=out, stderr=out
        )
    try:
        wait_for(lambda: "listening url=" in log.read_text(), 20, what="the stand-in listening")
        assert [p.name[:12] for p in tmp.iterdir()] == ["standin-tls-"]  # made where we look
    finally:
        code = stop(process)
    assert code == 0, log.read_text()
    assert sorted(p.name for p in tmp.iterdir()) == []


def test_an_interrupted_benchmark_stops_its_servers_and_removes_its_directory(
    tmp_path: Path,
) -> None:
    tmp = private_tmp(tmp_path)
    command = [sys.executable, "bench/run.py", "--rounds", "1", "--duration", "0.2"]
    command += ["--warmup", "0.1", "--silent", "10", "--slow-bodies", "2"]
    log = tmp_path / "bench.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)}, stdout=out, stderr=out
        )
    servers: list[int] = []
    try:
        wait_for(lambda: "round 1 " in log.read_text(), 90, what="a first measured run")
        assert [p.name[:16] for p in tmp.iterdir()] == ["agent-net-bench-"]
        servers = children(process.pid)
        assert len(servers) >= 2, "the worker and the baseline run as child processes"
    finally:
        code = stop(process)
        left = survivors(servers, 20)
    assert code == 128 + signal.SIGTERM, log.read_text()
    assert left == [], "the benchmark left its servers running"
    assert sorted(p.name for p in tmp.iterdir()) == []


@pytest.mark.timeout(240)
def test_a_part_of_the_suite_leaves_only_pytests_own_directory(tmp_path: Path) -> None:
    """run.sh (the worker's own agent-net-* directory), start_worker, the probe, stand-ins."""
    tmp = private_tmp(tmp_path)
    tests = ["tests/worker/test_readme_commands.py", "tests/worker/test_probe_live.py"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("pytest-of-")] == []
