"""The whole capability under `docker compose`, on a real Docker engine.

Runs the production docker-compose.yml plus ONE test-only override
(tests/docker/compose.test.yml) that swaps only what cannot exist here: the Ollama and
orchestrator images (stand-ins; the Ollama one still runs the project's ollama/
Dockerfile, entrypoint and health check), the GPU reservations, and NVML (the C
stand-in library, mounted). The tests run in file order against one stack; each step
leaves it as the next expects. Everything is removed at the end, even on failure.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from provision_engine import CACHE_DIR, Engine

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE = str(Path(sys.executable).parent / "docker-compose")
OVERRIDE = HERE / "compose.test.yml"
MODEL = "codellama:34b-instruct-q4_k_m"
# OLLAMA_MODEL and every agent's model in the agents file compose mounts, each pulled once.
EXAMPLE_AGENTS = tomllib.loads((ROOT / "agents.example.toml").read_text())["agents"]
PULLED = {MODEL} | {
    a["model"] if ":" in a["model"] else f"{a['model']}:latest" for a in EXAMPLE_AGENTS
}
STANDIN_GPUS = {"NVIDIA H100 80GB HBM3", "NVIDIA L4"}
WORKER_CACHE_TAG = "agentnet-test-cache/worker:latest"
MAX_IMAGE_GROWTH_MB = 60

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last = exc
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Stack:
    """One compose project of the production file + the test override."""

    def __init__(
        self, engine: Engine, project: str, env_file: Path, say: Callable[[str], None]
    ) -> None:
        self.engine = engine
        self.project = project
        self.env_file = env_file
        self.say = say
        self.values = dict(
            line.split("=", 1)
            for line in env_file.read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        self.worker_url = f"http://127.0.0.1:{self.values['WORKER_PORT']}"
        self.token = self.values["WORKER_TOKEN"]
        self.orch_url = f"https://127.0.0.1:{self.values['ORCH_PUBLISHED_PORT']}"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in self.engine.env.items()
            if k in ("PATH", "HOME", "DOCKER_HOST", "LANG", "TMPDIR")
        }
        cmd = [
            COMPOSE,
            "--env-file",
            str(self.env_file),
            "-p",
            self.project,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(OVERRIDE),
            *args,
        ]
        res = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and res.returncode != 0:
            pytest.fail(
                f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n"
                f"{res.stderr}\n{self.logs()}"
            )
        return res

    def container(self, service: str) -> dict[str, Any]:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, got {ids}"
        return json.loads(self.engine.run("inspect", ids[0]).stdout)[0]

    def logs(self, *services: str) -> str:
        res = self.compose("logs", "--no-color", "--timestamps", *services, check=False)
        return res.stdout + res.stderr

    def gpu_check(self, token: str | None = None) -> tuple[int, dict[str, Any]]:
        """POST /gpu-check straight to the published port (with WORKER_TOKEN by default)."""
        body = json.dumps({"agent_id": "live-test"}).encode()
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.token if token is None else token}",
        }
        req = urllib.request.Request(f"{self.worker_url}/gpu-check", data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def orchestrator_view(self) -> dict[str, Any]:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(
            f"{self.orch_url}/_standin/capabilities", timeout=5, context=ctx
        ) as resp:
            return json.loads(resp.read())

    def registered(self, name: str = "agent-net") -> dict[str, Any] | None:
        caps = self.orchestrator_view()["capabilities"]
        return next((c for c in caps if c["name"] == name), None)

    def probe(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("WORKER_TOKEN", "WORKER_PORT", "CAPABILITY_NAME")
        }
        return subprocess.run(
            [str(ROOT / "scripts" / "probe.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )


def _build_context(files: dict[str, Path]) -> Path:
    ctx = Path(tempfile.mkdtemp(prefix="agentnet-ctx-"))
    for name, src in files.items():
        shutil.copy2(src, ctx / name)
    return ctx


def _write_env_file(path: Path, overrides: dict[str, str]) -> None:
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        if line and not line.startswith("#") and "=" in line and key not in overrides:
            lines.append(line)
    lines += [f"{k}={v}" for k, v in overrides.items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def stack(docker_engine: Engine, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """Build the images and `up -d --wait` the stack; tear everything down afterwards."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(msg: str) -> None:
        """Report a figure on the terminal, past pytest's output capture."""
        line = f"[live stack] {msg}"
        if reporter is None or capture is None:
            print(line, file=sys.stderr)
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    engine = docker_engine
    started = time.monotonic()
    tag = f"t{os.getpid()}{secrets.token_hex(3)}"
    project = f"agentnet-test-{tag}"
    run_dir = CACHE_DIR / project
    run_dir.mkdir(parents=True, mode=0o755)
    nvml_dir = run_dir / "nvml"
    from tests.standins.nvml.build import build_fake_nvml

    build_fake_nvml(nvml_dir)
    for path in (run_dir, nvml_dir):  # the worker runs as uid 10001: it must read these
        path.chmod(0o755)
    (nvml_dir / "libnvidia-ml.so.1").chmod(0o755)

    ollama_base = f"agentnet-test/ollama-standin:{tag}"
    orch_image = f"agentnet-test/orchestrator-standin:{tag}"
    env_file = run_dir / "run.env"
    _write_env_file(
        env_file,
        {
            "ORCH_SECRET": secrets.token_hex(16),
            "WORKER_TOKEN": secrets.token_hex(16),
            "WORKER_BIND": "127.0.0.1",
            "WORKER_PORT": str(_free_port()),
            "ORCH_BIND": "127.0.0.1",
            "ORCH_PUBLISHED_PORT": str(_free_port()),
            "AGENT_NET_IMAGE_TAG": tag,
            "TEST_OLLAMA_BASE_IMAGE": ollama_base,
            "TEST_ORCHESTRATOR_IMAGE": orch_image,
            "TEST_FAKE_NVML_DIR": str(nvml_dir),
        },
    )
    st = Stack(engine, project, env_file, say)
    contexts: list[Path] = []

    def cleanup() -> None:
        t0 = time.monotonic()
        if request.session.testsfailed:
            say("logs at failure:\n" + st.logs()[-20000:])
        st.compose("down", "-v", "--rmi", "all", "--remove-orphans", "--timeout", "5", check=False)
        engine.run("rmi", ollama_base, check=False)
        for ctx in contexts:
            shutil.rmtree(ctx, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
        say(
            f"cleanup {time.monotonic() - t0:.1f}s; whole live run "
            f"{time.monotonic() - started:.1f}s"
        )

    request.addfinalizer(cleanup)

    t0 = time.monotonic()
    images = HERE / "images"
    contexts.append(
        _build_context(
            {
                "Dockerfile": images / "ollama-standin" / "Dockerfile",
                "ollama": images / "ollama-standin" / "ollama",
            }
        )
    )
    contexts.append(
        _build_context(
            {
                "Dockerfile": images / "orchestrator-standin" / "Dockerfile",
                "livepeer": images / "orchestrator-standin" / "livepeer",
                "orchestrator.py": ROOT / "tests" / "standins" / "orchestrator.py",
            }
        )
    )
    engine.run("build", "-q", "-t", ollama_base, str(contexts[0]))
    engine.run("build", "-q", "-t", orch_image, str(contexts[1]))
    standins_s = time.monotonic() - t0
    t0 = time.monotonic()
    st.compose("build", "worker", "ollama", timeout=600)
    build_s = time.monotonic() - t0
    engine.run("tag", f"agent-net-worker:{tag}", WORKER_CACHE_TAG)  # layer cache for reruns
    say(f"stand-in images {standins_s:.1f}s; compose build worker+ollama {build_s:.1f}s")

    t0 = time.monotonic()
    st.compose("up", "-d", "--wait", "--wait-timeout", "120", timeout=200)
    say(f"up -d --wait {time.monotonic() - t0:.1f}s")
    yield st


def test_worker_image_is_small_non_root_and_runtime_only(stack: Stack) -> None:
    size = int(
        stack.engine.run(
            "image",
            "inspect",
            "-f",
            "{{.Size}}",
            f"agent-net-worker:{stack.values['AGENT_NET_IMAGE_TAG']}",
        ).stdout
    )
    base = int(stack.engine.run("image", "inspect", "-f", "{{.Size}}", "python:3.11-slim").stdout)
    growth_mb = (size - base) / 1e6
    stack.say(f"worker image adds {growth_mb:.1f} MB to python:3.11-slim")
    assert growth_mb <= MAX_IMAGE_GROWTH_MB
    probe = (
        "import importlib.util as u, os, shutil; print(os.getuid(), "
        "[m for m in ('web3', 'pytest', 'payments', 'tests') if u.find_spec(m)], "
        "[c for c in ('gcc', 'cc') if shutil.which(c)])"
    )
    out = stack.compose("exec", "-T", "worker", "python", "-c", probe).stdout.strip()
    assert out == "10001 [] []", out
    env = stack.container("worker")["Config"]["Env"]
    assert "NVIDIA_DRIVER_CAPABILITIES=utility" in env
    assert "OLLAMA_HOST=http://ollama:11434" in env


def test_worker_healthy_and_probe_passes_through_published_port(stack: Stack) -> None:
    worker = stack.container("worker")
    assert worker["State"]["Health"]["Status"] == "healthy"
    assert stack.gpu_check(token="wrong")[0] == 401, "WORKER_TOKEN must guard job routes"
    assert stack.probe("--url", stack.worker_url, "--quiet").returncode == 1  # no token
    res = stack.probe("--url", stack.worker_url, "--token", stack.token)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "success"
    # NVML, read inside the container from the stand-in library.
    assert {gpu["name"] for gpu in doc["gpus"]} == STANDIN_GPUS
    assert doc["gpu_count"] == 2
    assert doc["sources"]["nvml"]["status"] == "ok"
    # The catalogue, from the ollama service by name (OLLAMA_HOST=http://ollama:11434).
    assert doc["sources"]["ollama"]["status"] == "ok"
    assert MODEL in [m["name"] for m in doc["models"]]
    assert doc["model_name"] == MODEL and doc["total_models"] == len(PULLED)


def test_doctor_in_the_stack_runs_as_the_readme_says(stack: Stack) -> None:
    """`docker compose exec worker agent-net doctor` (README, operator-first-hour.md): run
    inside the worker container, it sees the stand-in GPUs, the ollama service and the
    orchestrator, and fails no link."""
    wait_until(stack.registered, 30, "agent-net registered with the orchestrator")
    res = stack.compose("exec", "-T", "worker", "agent-net", "doctor", "--json", check=False)
    report = json.loads(res.stdout)
    verdicts = {row["name"]: row["verdict"] for row in report["checks"]}
    failed = {name: v for name, v in verdicts.items() if v == "fail"}
    assert failed == {} and res.returncode == 0, res.stdout + res.stderr
    assert verdicts["nvml"] == verdicts["ollama"] == verdicts["worker"] == "ok", verdicts
    assert [n for n in verdicts if n.startswith("action gpu")] == ["action gpu 0", "action gpu 1"]
    assert any(n.startswith("registration ") and v == "ok" for n, v in verdicts.items())


def test_registers_and_a_job_through_the_orchestrator_reaches_the_worker(stack: Stack) -> None:
    cap = wait_until(stack.registered, 30, "agent-net registered with the orchestrator")
    assert cap["url"] == f"http://worker:{stack.values['WORKER_PORT']}"
    assert cap["has_token"] is True  # so the orchestrator forwards jobs with the token
    before = stack.orchestrator_view()["counts"].get("jobs", 0)
    res = stack.probe("--orchestrator", stack.orch_url)
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "success" and doc["agent_id"] == "probe"
    assert {gpu["name"] for gpu in doc["gpus"]} == STANDIN_GPUS
    assert stack.orchestrator_view()["counts"].get("jobs", 0) == before + 1


def test_the_live_runner_is_in_discovery_and_answers_through_the_orchestrator(
    stack: Stack,
) -> None:
    """orchestrator.conf turns live runners on: the worker's GPU-check runner is listed
    in GET /discovery with the stand-in's GPU, and /apps/<id>/app/gpu-check reaches it."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def runner() -> dict[str, Any] | None:
        with urllib.request.urlopen(f"{stack.orch_url}/discovery", timeout=5, context=ctx) as r:
            [entry] = json.loads(r.read())
        found = [x for x in entry.get("runners", []) if x["app"] == "agent-net/gpu-check"]
        return found[0] if found else None

    entry = wait_until(runner, 60, "the live runner in the orchestrator's discovery")
    assert entry["gpu"]["name"] in STANDIN_GPUS and entry["mode"] == "single-shot"
    path = entry["url"].split("://", 1)[1].split("/", 1)[1]  # apps/<id>/app
    req = urllib.request.Request(
        f"{stack.orch_url}/{path}/gpu-check",
        data=json.dumps({"agent_id": "live-runner"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10, context=ctx) as resp:
        assert resp.status == 200 and json.loads(resp.read())["agent_id"] == "live-runner"


def test_a_streamed_agent_job_goes_through_the_orchestrator(stack: Stack) -> None:
    """A gateway's job for an agent (agents.example.toml) through go-livepeer's relay: SSE
    chunks from the ollama service, the balance line, then [DONE]."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    agent = "agent-net-llm"
    wait_until(lambda: stack.registered(agent), 60, f"{agent} registered")
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": True, "max_tokens": 8}
    job = {
        "id": "stack-agent-job",
        "request": json.dumps(body),
        "parameters": "{}",
        "capability": agent,
        "sender": "",
        "sig": "",
        "timeout_seconds": 30,
    }
    req = urllib.request.Request(
        f"{stack.orch_url}/process/request/{agent}",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Livepeer": base64.b64encode(json.dumps(job).encode()).decode(),
            "Livepeer-Capability": agent,
        },
    )
    lines: list[str] = []
    with urllib.request.urlopen(req, timeout=40, context=ctx) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for raw in resp:
            line = raw.decode().strip()
            if line:
                lines.append(line)
            if "[DONE]" in line:
                break  # go-livepeer keeps the job open until the client leaves
    assert lines[-1] == "data: [DONE]" and lines[-2].startswith('data: {"balance"')
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-2]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Stand-in reply from the ollama image"


def test_registers_again_after_an_orchestrator_restart(stack: Stack) -> None:
    first_start = stack.orchestrator_view()["started_at"]
    stack.compose("restart", "orchestrator")
    t0 = time.monotonic()
    view = wait_until(
        lambda: (v := stack.orchestrator_view())["started_at"] != first_start and v,
        30,
        "the restarted orchestrator",
    )
    assert view["started_at"] != first_start
    wait_until(stack.registered, 15, "re-registration after the restart")
    stack.say(f"re-registered {time.monotonic() - t0:.1f}s after `restart orchestrator`")
    assert stack.probe("--orchestrator", stack.orch_url).returncode == 0


def test_ollama_stop_degrades_and_start_recovers_without_restarting_worker(stack: Stack) -> None:
    before = stack.container("worker")["State"]["StartedAt"]
    stack.compose("stop", "ollama")

    def degraded() -> dict[str, Any] | None:
        # Each gunicorn process samples on its own and one answer speaks for one process:
        # several in a row must agree before the probe (which may reach either) runs.
        docs = [stack.gpu_check() for _ in range(6)]
        ok = all(status == 200 and doc["status"] == "degraded" for status, doc in docs)
        return docs[-1][1] if ok else None

    doc = wait_until(degraded, 20, "/gpu-check to turn degraded in every process")
    assert doc["sources"]["ollama"]["status"] != "ok"
    assert doc["sources"]["nvml"]["status"] == "ok"
    res = stack.probe("--url", stack.worker_url, "--quiet", "--token", stack.token)
    assert res.returncode == 1 and "ollama" in res.stderr, res.stderr

    stack.compose("start", "ollama")
    wait_until(
        lambda: stack.gpu_check()[1]["status"] == "success", 30, "/gpu-check back to success"
    )
    worker = stack.container("worker")
    assert worker["State"]["StartedAt"] == before, "the worker must not have restarted"
    assert worker["RestartCount"] == 0


def test_stop_worker_unregisters_within_the_grace_period(stack: Stack) -> None:
    wait_until(stack.registered, 15, "agent-net registered")
    t0 = time.monotonic()
    stack.compose("stop", "worker")
    elapsed = time.monotonic() - t0
    state = stack.container("worker")["State"]
    stack.say(f"`stop worker` took {elapsed:.1f}s, exit code {state['ExitCode']}")
    assert state["ExitCode"] == 0, "SIGTERM must end the worker cleanly, not SIGKILL (137)"
    assert elapsed < 20
    assert stack.registered() is None
    assert stack.orchestrator_view()["counts"].get("unregister", 0) >= 1


def test_down_then_up_reuses_the_model_volume_without_pulling(stack: Stack) -> None:
    first_logs = stack.logs("ollama")
    assert "pulling it now" in first_logs  # the first start did pull
    stack.compose("down", "--timeout", "5")
    t0 = time.monotonic()
    stack.compose("up", "-d", "--wait", "--wait-timeout", "120", timeout=200)
    stack.say(f"second up -d --wait {time.monotonic() - t0:.1f}s")
    logs = stack.logs("ollama")
    assert f"model {MODEL} already present" in logs
    assert "pulling it now" not in logs and "POST /api/pull" not in logs
    status, doc = stack.gpu_check()
    assert status == 200 and doc["status"] == "success"
    assert MODEL in [m["name"] for m in doc["models"]]


def test_failed_pull_leaves_ollama_unhealthy_with_the_reason(stack: Stack) -> None:
    reason = "pull model manifest: file does not exist"
    env_file = stack.env_file.with_name("pullfail.env")
    env_file.write_text(
        stack.env_file.read_text()
        .replace(f"WORKER_PORT={stack.values['WORKER_PORT']}", f"WORKER_PORT={_free_port()}")
        .replace(
            f"ORCH_PUBLISHED_PORT={stack.values['ORCH_PUBLISHED_PORT']}",
            f"ORCH_PUBLISHED_PORT={_free_port()}",
        )
        + f"TEST_OLLAMA_PULL_FAIL={reason}\n"
    )
    failing = Stack(stack.engine, stack.project + "-pullfail", env_file, stack.say)
    try:
        res = failing.compose(
            "up", "-d", "--wait", "--wait-timeout", "20", check=False, timeout=120
        )
        assert res.returncode != 0, "up --wait must fail when the model cannot be pulled"
        complaint = (res.stdout + res.stderr).strip().splitlines()[-1]
        stack.say(f"failed pull: up --wait said: {complaint}")
        assert "ollama" in complaint
        ollama = failing.container("ollama")
        assert (ollama["State"].get("Health") or {}).get("Status") != "healthy"
        logs = failing.logs("ollama")
        assert f"Error: {reason}" in logs
        assert f"ERROR: pulling model {MODEL} failed" in logs
        worker_ids = failing.compose("ps", "-a", "-q", "worker").stdout.split()
        if worker_ids:  # created but never started: it waits for a healthy ollama
            worker = json.loads(stack.engine.run("inspect", worker_ids[0]).stdout)[0]
            assert worker["State"]["StartedAt"].startswith("0001-"), worker["State"]
    finally:
        failing.compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
