"""scripts/probe.sh against the real worker, its settings read from .env as compose does."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT, WorkerProcess, free_port
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


def probe(checkout: Path, *args: str, **shell: str) -> subprocess.CompletedProcess[str]:
    """Run the probe with none of the worker's variables in its environment but `shell`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKER_", "CAPABILITY_"))}
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "probe.sh"), "--quiet", *args],
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
    result = probe(checkout)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"probe: the worker requires a token: set WORKER_TOKEN (in {dotenv} or in the"
        " environment) to the worker's WORKER_TOKEN, or pass --token"
    )
    assert "answered HTTP 401" in result.stderr

    dotenv.write_text(f"WORKER_PORT={worker.port}\nWORKER_TOKEN=stale\n")
    assert probe(checkout).stderr.splitlines()[-1] == (
        f"probe: the worker refused the token from WORKER_TOKEN in {dotenv}: it must equal"
        " the worker's WORKER_TOKEN (a changed .env takes effect with docker compose up -d)"
    )
    wrong = probe(checkout, WORKER_TOKEN="wrong")
    assert "refused the token from WORKER_TOKEN in the environment" in wrong.stderr
    assert "stale" not in wrong.stderr + wrong.stdout and TOKEN not in wrong.stderr
    assert probe(checkout, "--token", TOKEN).returncode == 0


def test_probe_refuses_a_dotenv_compose_would_refuse(checkout: Path) -> None:
    (checkout / ".env").write_text("WORKER_PORT=1\nWORKER TOKEN=x\n")
    result = probe(checkout)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"cannot read {checkout / '.env'}: line 2: unexpected character 'T' after 'WORKER'",
        f"probe: fix {checkout / '.env'} (docker compose would refuse it too)",
    ]
