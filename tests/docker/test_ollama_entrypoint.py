"""The real ollama/ entrypoint and health check, run on the host against the stand-in
`ollama` command (tests/docker/images/ollama-standin/ollama). No engine needed; the
same scripts run inside the image in the live tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "ollama" / "entrypoint.sh"
HEALTHCHECK = ROOT / "ollama" / "healthcheck.sh"
STANDIN_DIR = Path(__file__).resolve().parent / "images" / "ollama-standin"
MODEL = "codellama:34b-instruct-q4_k_m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Entrypoint:
    """One run of the entrypoint with its own model store and port."""

    def __init__(self, models: Path, **env: str) -> None:
        self.env = {
            "PATH": f"{STANDIN_DIR}:{os.environ['PATH']}",
            "HOME": str(models.parent),
            "OLLAMA_HOST": f"127.0.0.1:{_free_port()}",
            "OLLAMA_MODELS": str(models),
            "OLLAMA_MODEL": MODEL,
            "FAKE_OLLAMA_PULL_SECONDS": "0.5",
            **env,
        }
        self.log_path = models.parent / f"entrypoint-{self.env['OLLAMA_HOST'][10:]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Entrypoint:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(ENTRYPOINT)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def healthy(self) -> bool:
        res = subprocess.run([str(HEALTHCHECK)], env=self.env, capture_output=True, timeout=20)
        return res.returncode == 0

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            assert self.proc is not None
            assert self.proc.poll() is None, f"entrypoint exited early:\n{self.log}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.log}"
            time.sleep(0.1)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture
def models(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "models"


def test_first_start_pulls_with_progress_then_later_starts_do_not(models: Path) -> None:
    first = Entrypoint(models).start()
    try:
        assert not first.healthy() or "pulled" in first.log
        first.wait_for_log("ready: serving")
        assert first.healthy()
    finally:
        assert first.stop() == 0
    log = first.log
    assert f"model {MODEL} is missing: pulling it now" in log
    progress = [line for line in log.splitlines() if "% " in line and "pulling " in line]
    assert any(" 50% " in line for line in progress), log
    assert any(" 100% " in line for line in progress), log
    assert len(progress) <= 12, "progress is throttled to one line per 10 %"
    assert "\x1b[" not in log and "\r" not in log, "no terminal escapes in the log"

    second = Entrypoint(models).start()
    try:
        second.wait_for_log("ready: serving")
        assert second.healthy()
    finally:
        assert second.stop() == 0
    assert "already present" in second.log
    assert "pulling it now" not in second.log and "POST /api/pull" not in second.log


def test_failed_pull_exits_nonzero_with_the_reason(models: Path) -> None:
    run = Entrypoint(models, FAKE_OLLAMA_PULL_FAIL="pull model manifest: file does not exist")
    run.start()
    assert run.proc is not None
    rc = run.proc.wait(timeout=30)
    assert rc != 0
    assert "Error: pull model manifest: file does not exist" in run.log
    assert f"ERROR: pulling model {MODEL} failed" in run.log
    assert not run.healthy()


def test_health_check_waits_for_the_model(models: Path) -> None:
    run = Entrypoint(models, FAKE_OLLAMA_PULL_SECONDS="4").start()
    try:
        run.wait_for_log("is missing: pulling it now")
        assert not run.healthy(), "healthy before the model was pulled"
        run.wait_for_log("ready: serving")
        assert run.healthy()
    finally:
        run.stop()


def test_sigterm_reaches_the_server_even_mid_pull(models: Path) -> None:
    run = Entrypoint(models, FAKE_OLLAMA_PULL_SECONDS="30").start()
    run.wait_for_log("pulling manifest")
    started = time.monotonic()
    rc = run.stop()
    assert time.monotonic() - started < 5
    assert rc == 0
    assert "received SIGTERM; stopping ollama serve" in run.log
    assert "shutting down" in run.log  # the server itself saw the signal
    assert not list(models.rglob("*.json")), "an interrupted pull must not leave a model"


def test_server_that_never_answers_fails_fast(models: Path, tmp_path: Path) -> None:
    broken = tmp_path / "bin"
    broken.mkdir()
    fake = broken / "ollama"
    fake.write_text("#!/usr/bin/env bash\n[[ $1 == serve ]] && exec sleep 30\nexit 1\n")
    fake.chmod(0o755)
    run = Entrypoint(models, OLLAMA_START_TIMEOUT_SECONDS="2")
    run.env["PATH"] = f"{broken}:{os.environ['PATH']}"
    run.start()
    assert run.proc is not None
    assert run.proc.wait(timeout=20) == 1
    assert "did not answer within 2s" in run.log


def test_every_agent_model_is_pulled_once_and_health_waits_for_all(
    models: Path, tmp_path: Path
) -> None:
    agents = tmp_path / "agents.toml"
    agents.write_text(
        '# model = "commented:out"\n'
        "[[agents]]\n"
        'name = "a"\n'
        f'model = "{MODEL}"  # the same as OLLAMA_MODEL\n'
        "[[agents]]\n"
        'name = "b"\n'
        "model = 'llama3.2:3b'\n"
        "[[agents]]\n"
        'name = "c"\n'
        '  model   =   "llama3.2:3b"\n'
    )
    first = Entrypoint(models, AGENTS_FILE=str(agents), FAKE_OLLAMA_PULL_SECONDS="2").start()
    try:
        first.wait_for_log(f"model {MODEL} pulled")
        assert not first.healthy(), "healthy before every agent's model was pulled"
        first.wait_for_log("ready: serving")
        assert first.healthy()
    finally:
        assert first.stop() == 0
    log = first.log
    assert log.count("is missing: pulling it now") == 2
    assert f"model {MODEL} is missing" in log and "model llama3.2:3b is missing" in log
    assert "commented:out" not in log
    assert f"ready: serving {MODEL} llama3.2:3b" in log

    second = Entrypoint(models, AGENTS_FILE=str(agents)).start()
    try:
        second.wait_for_log("ready: serving")
        assert second.healthy()
    finally:
        assert second.stop() == 0
    assert second.log.count("already present") == 2 and "pulling it now" not in second.log


def test_a_failed_agent_model_pull_exits_nonzero(models: Path, tmp_path: Path) -> None:
    agents = tmp_path / "agents.toml"
    agents.write_text('[[agents]]\nname = "a"\nmodel = "nosuch:1b"\n')
    run = Entrypoint(
        models,
        AGENTS_FILE=str(agents),
        FAKE_OLLAMA_PULL_FAIL="pull model manifest: file does not exist",
    ).start()
    assert run.proc is not None
    assert run.proc.wait(timeout=30) != 0
    assert f"ERROR: pulling model {MODEL} failed" in run.log
    assert not run.healthy()
