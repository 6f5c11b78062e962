"""Stops are clean: SIGINT or SIGTERM, to the whole process group or to the master alone.

systemd, `docker stop` and Ctrl-C in a terminal signal the whole process group; `kill`
signals the master alone. Either way every process (master, gunicorn workers, sampler,
registrar) ends, the master exits 0, no ERROR line and no traceback is written, no
WARNING line follows the signal, and one INFO line says that the worker stopped. Each stop
runs 10 times: the traceback this guards against came about one stop in five. Ollama
answers slowly, so a stop finds the sampler's Ollama read in flight.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import WorkerProcess, free_port, wait_for
from tests.registration.support import ORCH_SECRET, StandinProcess
from tests.standins.ollama_api import OllamaStandIn

ROUNDS = 10
# master, two gunicorn workers, the sampler and the registrar
PROCESSES = 5
STOPPED_LINE = re.compile(r"^\S+ INFO agent_net\.server worker_stopped$", re.MULTILINE)


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandinProcess]:
    """One stand-in orchestrator for every round, so each worker's registrar runs."""
    standin = StandinProcess(tmp_path_factory.mktemp("orchestrator"), live_runners=True).start()
    yield standin
    standin.stop()


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes in process group `pgid`, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended while we looked
            continue
        state, _ppid, group = stat.rpartition(")")[2].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


@pytest.fixture
def slow_ollama() -> Iterator[OllamaStandIn]:
    """Each answer takes 0.1 s: a stop most often finds the sampler's Ollama read (three
    calls) in flight, as it would with a busy Ollama."""
    server = OllamaStandIn().start()
    server.set_mode("slow", delay=0.1)
    yield server
    server.stop()


def start_in_own_group(
    orchestrator: StandinProcess, log_path: Path, no_nvml_dir: Path, ollama_url: str
) -> WorkerProcess:
    port = free_port()
    env = {
        "WORKER_PORT": str(port),
        "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        "ORCH_URL": orchestrator.url,
        "ORCH_SECRET": ORCH_SECRET,
        "REGISTER_INTERVAL_SECONDS": "1",
        "OLLAMA_HOST": ollama_url,
    }
    worker = WorkerProcess(env, log_path, no_nvml_dir).start(new_session=True)
    # Every registration done (BYOC and each live runner), so none is under way at the stop.
    wait_for(
        lambda: (
            worker.logs().count("registration_ok") == 2
            and worker.logs().count("live_runner_registered") == 2
        ),
        20,
        what="the registrar registering each capability and live runner",
    )
    assert worker.process is not None
    pgid = worker.process.pid
    wait_for(lambda: len(group_members(pgid)) == PROCESSES, 10, what="all five processes")
    return worker


@pytest.mark.parametrize("target", ["group", "master"])
def test_every_stop_is_clean(
    target: str,
    orchestrator: StandinProcess,
    no_nvml_dir: Path,
    slow_ollama: OllamaStandIn,
    tmp_path: Path,
) -> None:
    for round_ in range(ROUNDS):
        sig = (signal.SIGINT, signal.SIGTERM)[round_ % 2]
        log_path = tmp_path / f"worker-{round_}.log"
        worker = start_in_own_group(orchestrator, log_path, no_nvml_dir, slow_ollama.url)
        assert worker.process is not None
        pgid = worker.process.pid
        before = len(worker.logs())
        try:
            if target == "group":
                os.killpg(pgid, sig)
            else:
                worker.process.send_signal(sig)
            code = worker.process.wait(10)  # deadlock guard: Docker's stop grace period
            left = group_members(pgid)
        finally:
            if worker.process.poll() is None or group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)
        logs = worker.logs()
        where = f"round {round_}, {sig.name} to the {target}:\n{logs}"
        assert code == 0, where
        assert left == [], where
        assert " ERROR " not in logs, where
        # From the signal on, no process warns: the stop itself is not a problem.
        assert " WARNING " not in logs[before:], where
        assert "Traceback" not in logs, where
        assert len(STOPPED_LINE.findall(logs)) == 1, where
        assert "unregistered orchestrator=" in logs, where  # the registrar stopped its way
