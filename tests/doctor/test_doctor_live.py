"""`agent-net doctor` against stand-ins: each failure named with its fix, exit 1; healthy, exit 0.

The worker runs for real (gunicorn, sampler, registrar) over the NVML stand-in library,
the Ollama stand-in and stand-in orchestrator processes; the doctor runs as a
subprocess in a directory of its own, as an operator would run it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.doctor.support import clean_env, doctor_env, run_doctor
from tests.helpers.processes import ROOT, WorkerProcess, free_port, http, wait_for
from tests.registration.support import ORCH_SECRET, Blackhole, StandinProcess, leaked
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn

TOKEN = "doctor-token-123"
StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def orchestrators(tmp_path: Path) -> Iterator[Callable[..., StandinProcess]]:
    started: list[StandinProcess] = []

    def start(**options: object) -> StandinProcess:
        process = StandinProcess(tmp_path, **options).start()  # type: ignore[arg-type]
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def holes() -> Iterator[Callable[[], Blackhole]]:
    made: list[Blackhole] = []

    def make() -> Blackhole:
        made.append(Blackhole())
        return made[-1]

    yield make
    for hole in made:
        hole.close()


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """The directory the doctor runs in (no .env, no pricing files unless a test adds them)."""
    path = tmp_path / "operator"
    path.mkdir()
    return path


def worker_env(orch_url: str, **extra: str) -> dict[str, str]:
    port = free_port()
    return {
        "WORKER_PORT": str(port),
        "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        "ORCH_URL": orch_url,
        "ORCH_SECRET": ORCH_SECRET,
        "WORKER_TOKEN": TOKEN,
        "REGISTER_INTERVAL_SECONDS": "1",
        **extra,
    }


def registration(worker: WorkerProcess) -> list[dict[str, object]]:
    return json.loads(http("GET", f"{worker.url}/readyz")[2])["registration"]


def test_healthy_stack_exits_0_with_every_check_ok(
    start_worker: StartWorker,
    fake_nvml: FakeNvml,
    ollama: OllamaStandIn,
    orchestrators: Callable[..., StandinProcess],
    here: Path,
) -> None:
    orch = orchestrators(tls=True)
    env = worker_env(orch.url, OLLAMA_HOST=ollama.url, ORCH_CA_BUNDLE=str(orch.cert))
    worker = start_worker(env, nvml=fake_nvml)
    wait_for(lambda: registration(worker)[0]["registered"], 15, what="registration")
    # Settings in .env as compose reads them; the shell's WORKER_PORT wins over the file's.
    shell = {k: v for k, v in worker.env.items() if k != "OLLAMA_MODEL"}
    (here / ".env").write_text(
        "# from .env.example\nWORKER_PORT=1\nexport OLLAMA_MODEL='codellama:34b-instruct-q4_k_m'\n"
    )

    run = run_doctor(doctor_env(shell), here, console_script=True)

    assert run.code == 0, run.stdout + run.stderr
    for name in ("settings", "nvml", "gpu 0", "gpu 1", "ollama", "worker", "ready"):
        assert run.line(name).startswith("ok "), run.line(name)
    assert "GPU 0 (NVIDIA H100 80GB HBM3): none (rule none)" in run.line("action gpu 0")
    assert run.line("action gpu 1").startswith("ok ")
    assert run.line("model codellama:34b-instruct-q4_k_m").startswith("ok ")
    assert run.line(f"orchestrator {orch.url}").startswith("ok ")
    tls = run.line(f"tls {orch.url}")
    assert tls.startswith("ok ") and "ORCH_CA_BUNDLE" in tls
    assert run.line(f"registration {orch.url} agent-net").startswith("ok ")
    assert run.line("pricing").startswith("skip ")  # no config files in this directory
    assert "fix:" not in run.stdout
    assert leaked(run.stdout + run.stderr, {"secret": ORCH_SECRET, "token": TOKEN}) == []


def test_nothing_answers_each_failure_named_with_its_fix_within_the_budget(
    no_nvml_dir: Path, holes: Callable[[], Blackhole], here: Path
) -> None:
    """No NVML library, Ollama down, no worker, an orchestrator refusing, two that hang."""
    refused = f"http://127.0.0.1:{free_port()}"
    silent, silent_tls = holes(), holes()
    hung_tls = f"https://127.0.0.1:{silent_tls.port}"
    env = clean_env(
        LD_LIBRARY_PATH=str(no_nvml_dir),
        OLLAMA_HOST=f"http://127.0.0.1:{free_port()}",
        WORKER_PORT=str(free_port()),
        ORCH_URL=f"{refused},{silent.url},{hung_tls}",
        ORCH_SECRET=ORCH_SECRET,
    )

    run = run_doctor(env, here, "--json")

    assert run.code == 1
    document = run.document()
    assert document["exit_code"] == 1 and document["ok"] is False
    checks = run.checks()
    nvml = checks["nvml"]
    assert nvml["verdict"] == "fail" and "libnvidia-ml.so.1" in nvml["detail"]
    assert "NVIDIA Container Toolkit" in nvml["fix"]
    assert checks["ollama"]["verdict"] == "fail"
    assert "connection refused" in checks["ollama"]["detail"]
    assert "docker compose up -d ollama" in checks["ollama"]["fix"]
    assert checks["worker"]["verdict"] == "fail"
    assert "docker compose up -d worker" in checks["worker"]["fix"]
    down = checks[f"orchestrator {refused}"]
    assert down["verdict"] == "fail" and "nothing listens" in down["detail"]
    assert "ORCH_URL" in down["fix"]
    hung = checks[f"orchestrator {silent.url}"]
    assert hung["verdict"] == "fail" and "sent no HTTP answer" in hung["detail"]
    assert "not hung" in hung["fix"]
    handshake = checks[f"orchestrator {hung_tls}"]
    assert handshake["verdict"] == "fail" and "TLS handshake" in handshake["detail"]
    assert checks["registration"]["verdict"] == "skip"  # nothing to read it from
    # Every host was waited for in parallel and within the budget: the doctor says how long.
    print(f"measured: {run.seconds:.2f} s wall, {document['elapsed_seconds']} s in checks")


def test_lost_gpu_and_an_unloaded_driver_are_named(fake_nvml: FakeNvml, here: Path) -> None:
    fake_nvml.set_scenario("gpu_lost")
    env = clean_env(**fake_nvml.env({}))

    run = run_doctor(env, here)

    assert run.code == 1
    assert run.line("gpu 0").startswith("ok ")
    lost = run.line("gpu 1")
    assert lost.startswith("fail ") and "GPU 1 is lost" in lost
    assert "fix: drain the host and reboot it" in lost

    fake_nvml.set_scenario("driver_not_loaded")
    run = run_doctor(env, here)
    line = run.line("nvml")
    assert run.code == 1 and line.startswith("fail ") and "driver is not loaded" in line
    assert "modprobe nvidia" in line


def test_a_missing_model_is_named_with_the_pull_command(
    fake_nvml: FakeNvml, ollama: OllamaStandIn, here: Path
) -> None:
    env = clean_env(**fake_nvml.env({}), OLLAMA_HOST=ollama.url, OLLAMA_MODEL="qwen2.5:7b")

    run = run_doctor(env, here)

    assert run.code == 1
    assert run.line("ollama").startswith("ok ")
    line = run.line("model qwen2.5:7b")
    assert line.startswith("fail ") and "qwen2.5:7b is not pulled" in line
    assert f"fix: pull it: OLLAMA_HOST={ollama.url} ollama pull qwen2.5:7b" in line


def test_a_rejected_secret_is_named_a_secret_mismatch(
    start_worker: StartWorker,
    fake_nvml: FakeNvml,
    ollama: OllamaStandIn,
    orchestrators: Callable[..., StandinProcess],
    here: Path,
) -> None:
    orch = orchestrators(secret="the-orchestrators-own-secret")
    worker = start_worker(worker_env(orch.url, OLLAMA_HOST=ollama.url), nvml=fake_nvml)
    wait_for(lambda: registration(worker)[0]["last_error"], 15, what="a registration attempt")

    run = run_doctor(doctor_env(worker.env), here, "--json")

    assert run.code == 1
    checks = run.checks()
    assert checks[f"orchestrator {orch.url}"]["verdict"] == "ok"  # reachable: the secret is it
    assert checks[f"tls {orch.url}"]["verdict"] == "warning"  # plain http, noted
    rejected = checks[f"registration {orch.url} agent-net"]
    assert rejected["verdict"] == "fail" and rejected["detail"].startswith("secret mismatch")
    assert "-orchSecret" in rejected["fix"]
    secrets = {"secret": ORCH_SECRET, "orchestrator's": "the-orchestrators-own-secret"}
    assert leaked(run.stdout + run.stderr, {**secrets, "token": TOKEN}) == []


def test_each_gpus_recovery_action_is_said_in_words(
    start_worker: StartWorker, fake_nvml: FakeNvml, ollama: OllamaStandIn, here: Path
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url}, nvml=fake_nvml)
    fake_nvml.set_health(0, remap_pending=1)  # a row remap waits for a GPU reset
    fake_nvml.set_health(1, recovery_action=2)  # the driver asks for a node reboot
    wait_for(
        lambda: b'action="reboot"' in http("GET", f"{worker.url}/metrics")[2],
        15,
        what="the driver's action in /metrics",
    )

    run = run_doctor(doctor_env(worker.env), here)

    assert run.code == 1
    reset = run.line("action gpu 0")
    assert reset.startswith("fail ")
    assert "GPU 0 (NVIDIA H100 80GB HBM3): reset_gpu (rule row_remap_pending)" in reset
    assert "fix: stop its work and reset it: docker compose stop; sudo nvidia-smi -r -i 0" in reset
    reboot = run.line("action gpu 1")
    assert "reboot (rule driver)" in reboot and "and reboot it" in reboot


def test_pricing_files_that_disagree_fail_and_matching_ones_do_not(here: Path) -> None:
    for folder in ("orchestrator_config", "gateway_config"):
        shutil.copytree(ROOT / folder, here / folder)
    env = clean_env(WORKER_PORT=str(free_port()))

    # The repository's files: accepted, with two warnings whose fix names each setting and
    # the file to change it in.
    pricing = run_doctor(env, here, "--json").checks()["pricing"]
    assert pricing["verdict"] == "warning"
    assert pricing["fix"] == (
        "in orchestrator_config/orchestrator.conf, set maxGasPrice 833333333 or less, or"
        " maxFaceValue 1200000000000000 or more; in gateway_config/gateway.conf, remove the"
        " line maxFaceValue (line 53): only an orchestrator reads it; every row: python3"
        " scripts/check_pricing.py (the table; docs/pricing.md explains each row)"
    )

    # Both fixes made: the check passes with notes only (INFO rows), and the line is ok.
    orchestrator = here / "orchestrator_config" / "orchestrator.conf"
    orchestrator.write_text(
        orchestrator.read_text().replace("maxGasPrice 1000000000", "maxGasPrice 833333333")
    )
    gateway = here / "gateway_config" / "gateway.conf"
    gateway.write_text(gateway.read_text().replace("\nmaxFaceValue 1000000000000000", "\n"))
    pricing = run_doctor(env, here, "--json").checks()["pricing"]
    assert (pricing["verdict"], pricing["fix"]) == ("ok", None)
    assert pricing["detail"] == (
        "the gateway accepts the orchestrator's price and tickets (2 note(s))"
    )

    text = gateway.read_text().replace("maxTicketEV 300000000000000", "maxTicketEV 1000")
    assert text != gateway.read_text()
    gateway.write_text(text)
    run = run_doctor(env, here, "--json")
    pricing = run.checks()["pricing"]
    assert run.code == 1 and pricing["verdict"] == "fail"
    assert "ticketEV" in pricing["detail"] and "check_pricing.py" in pricing["fix"]


def test_invalid_settings_fail_with_the_message_and_json_shape(
    no_nvml_dir: Path, here: Path
) -> None:
    (here / ".env").write_text("ORCH_URL=https://orchestrator:8935\n")  # and no ORCH_SECRET
    env = clean_env(LD_LIBRARY_PATH=str(no_nvml_dir))

    run = run_doctor(env, here, "--json")

    assert run.code == 1
    document = run.document()
    assert document["dotenv"] == str(here / ".env")
    assert set(document) == {"ok", "exit_code", "elapsed_seconds", "dotenv", "counts", "checks"}
    assert sum(document["counts"].values()) == len(document["checks"])
    for check in document["checks"]:
        assert set(check) == {"name", "check", "subject", "verdict", "detail", "fix"}
        assert check["verdict"] in ("ok", "warning", "fail", "skip")
        assert (check["fix"] is not None) == (check["verdict"] in ("warning", "fail"))
    settings = run.checks()["settings"]
    assert settings["verdict"] == "fail" and "ORCH_SECRET" in settings["detail"]
    assert run.checks()["worker"]["verdict"] == "skip"


def test_a_self_signed_certificate_is_noted_and_fails_when_the_worker_verifies(
    orchestrators: Callable[..., StandinProcess], no_nvml_dir: Path, here: Path
) -> None:
    orch = orchestrators(tls=True)
    plain = orch.url.replace("https://", "http://")
    base = {"LD_LIBRARY_PATH": str(no_nvml_dir), "ORCH_SECRET": ORCH_SECRET}

    unverified = run_doctor(clean_env(**base, ORCH_URL=orch.url, ORCH_TLS_VERIFY="false"), here)
    line = unverified.line(f"tls {orch.url}")
    assert line.startswith("warning ") and "self-signed certificate" in line
    assert "set ORCH_CA_BUNDLE" in line

    verified = run_doctor(clean_env(**base, ORCH_URL=orch.url, ORCH_TLS_VERIFY="true"), here)
    line = verified.line(f"tls {orch.url}")
    assert line.startswith("fail ") and "set ORCH_CA_BUNDLE" in line

    wrong_scheme = run_doctor(clean_env(**base, ORCH_URL=plain), here)
    line = wrong_scheme.line(f"orchestrator {plain}")
    assert line.startswith("fail ") and "use https://" in line
