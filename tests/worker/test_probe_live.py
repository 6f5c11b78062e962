"""scripts/probe.sh against the real worker, its settings read from .env as compose does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT, WorkerProcess, free_port, post_json, wait_for
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn

TOKEN = "probe-token-51d2"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of scripts/ beside its own .env, as in a checkout (the real .env is not touched)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    for name in ("probe.sh", "compose_env.py"):
        shutil.copy(ROOT / "scripts" / name, root / "scripts" / name)
    return root


@pytest.fixture
def worker(start_worker, ollama: OllamaStandIn, fake_nvml: FakeNvml) -> WorkerProcess:
    """A healthy worker (both sources ok) that requires TOKEN, on a port only .env names."""
    return start_worker({"OLLAMA_HOST": ollama.url, "WORKER_TOKEN": TOKEN}, nvml=fake_nvml)


def probe(
    checkout: Path, *args: str, quiet: bool = True, **shell: str
) -> subprocess.CompletedProcess[str]:
    """Run the probe with none of the worker's variables in its environment but `shell`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "CAPABILITY_"))}
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "probe.sh"), *(["--quiet"] if quiet else []), *args],
        env={**env, **shell},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_probe_takes_port_and_token_from_dotenv(checkout: Path, worker: WorkerProcess) -> None:
    dotenv = checkout / ".env"
    dotenv.write_text(
        "# as copied from .env.example, then edited\n"
        "WORKER_BIND=127.0.0.1\n"
        f"WORKER_PORT={worker.port}   # edited\n"
        f"WORKER_TOKEN='{TOKEN}'\n"
    )
    result = probe(checkout)
    assert result.returncode == 0, result.stderr
    assert f"OK: {worker.url}/gpu-check answered status=success" in result.stderr

    # The shell wins over .env, as in compose.
    dotenv.write_text(f"WORKER_PORT={free_port()}\nWORKER_TOKEN={TOKEN}\n")
    assert probe(checkout, WORKER_PORT=str(worker.port)).returncode == 0
    assert probe(checkout).returncode == 1  # the port in .env: nothing listens there


def test_probe_401_names_worker_token_and_where_it_is_set(
    checkout: Path, worker: WorkerProcess
) -> None:
    dotenv = checkout / ".env"
    dotenv.write_text(f"WORKER_PORT={worker.port}\nWORKER_TOKEN=\n")
    hint = (
        f"the worker requires a token: set WORKER_TOKEN (in {dotenv} or in the"
        " environment) to the worker's WORKER_TOKEN, or pass --token"
    )
    result = probe(checkout, quiet=False)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == f"  {hint}"
    assert "answered HTTP 401" in result.stderr
    quiet = probe(checkout)
    assert (quiet.returncode, quiet.stdout) == (1, "")
    [line] = quiet.stderr.splitlines()
    assert line.startswith(f"probe: FAILED: {worker.url}/gpu-check answered HTTP 401")
    assert line.endswith(f"; {hint}")

    dotenv.write_text(f"WORKER_PORT={worker.port}\nWORKER_TOKEN=stale\n")
    assert (
        probe(checkout)
        .stderr.splitlines()[-1]
        .endswith(
            f"; the worker refused the token from WORKER_TOKEN in {dotenv}: it must equal"
            " the worker's WORKER_TOKEN (a changed .env takes effect with docker compose up -d)"
        )
    )
    wrong = probe(checkout, WORKER_TOKEN="wrong")
    assert "refused the token from WORKER_TOKEN in the environment" in wrong.stderr
    assert "stale" not in wrong.stderr + wrong.stdout and TOKEN not in wrong.stderr
    assert probe(checkout, "--token", TOKEN).returncode == 0


def test_probe_names_each_problem_once_and_quiet_prints_one_line(
    checkout: Path, worker: WorkerProcess, ollama: OllamaStandIn
) -> None:
    def status() -> str:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        return post_json(f"{worker.url}/gpu-check", {"agent_id": "t"}, bearer)[1]["status"]

    ollama.set_mode("error")
    wait_for(lambda: status() == "degraded", 10, what="Ollama failing")
    shell = {"WORKER_PORT": str(worker.port), "WORKER_TOKEN": TOKEN}
    reason = f"ollama: Ollama at {ollama.url} answered HTTP 500"

    loud = probe(checkout, quiet=False, **shell)
    assert loud.returncode == 1
    assert json.loads(loud.stdout)["status"] == "degraded"  # the whole answer, for reading
    assert loud.stderr.splitlines()[0] == (
        f"probe: FAILED: {worker.url}/gpu-check answered HTTP 200, status=degraded"
    )
    assert [line for line in loud.stderr.splitlines()[1:]] == [
        f"  {reason}: llama runner process has terminated: exit status 2"
    ]

    quiet = probe(checkout, **shell)
    assert (quiet.returncode, quiet.stdout) == (1, "")
    assert quiet.stderr.splitlines() == [
        f"probe: FAILED: {worker.url}/gpu-check answered HTTP 200, status=degraded:"
        f" {reason}: llama runner process has terminated: exit status 2"
    ]

    ollama.set_mode("ok")
    wait_for(lambda: status() == "success", 10, what="Ollama back")
    quiet = probe(checkout, **shell)
    assert (quiet.returncode, quiet.stdout) == (0, "")
    assert quiet.stderr.splitlines() == [
        f"probe: OK: {worker.url}/gpu-check answered status=success"
    ]
    gone = probe(checkout, WORKER_PORT=str(free_port()))
    assert gone.returncode == 1 and len(gone.stderr.splitlines()) == 1
    assert gone.stderr.startswith("probe: FAILED: no answer from http://127.0.0.1:")


def test_probe_refuses_a_dotenv_compose_would_refuse(checkout: Path) -> None:
    (checkout / ".env").write_text("WORKER_PORT=1\nWORKER TOKEN=x\n")
    reason = f"cannot read {checkout / '.env'}: line 2: unexpected character 'T' after 'WORKER'"
    result = probe(checkout, quiet=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        reason,
        f"probe: fix {checkout / '.env'} (docker compose would refuse it too)",
    ]
    assert probe(checkout).stderr.splitlines() == [
        f"probe: FAILED: fix {checkout / '.env'} (docker compose would refuse it too): {reason}"
    ]
