"""Static checks of the container files: real Compose validation, hadolint, the contract.

No engine needed: `docker-compose config` only parses and interpolates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = str(BIN / "docker-compose")
HADOLINT = str(BIN / "hadolint")
MAIN = "docker-compose.yml"
GATEWAY = "docker-compose-gateway.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Every variable the issue requires .env.example to document.
REQUIRED_VARIABLES = (
    "WORKER_HOST",
    "WORKER_PORT",
    "WORKER_WORKERS",
    "WORKER_THREADS",
    "OLLAMA_HOST",
    "OLLAMA_MODEL",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "SAMPLE_INTERVAL_SECONDS",
    "NVML_TIMEOUT_SECONDS",
    "OLLAMA_TIMEOUT_SECONDS",
    "ORCH_URL",
    "ORCH_SECRET",
    "ORCH_SECRET_FILE",
    "CAPABILITY_NAME",
    "CAPABILITY_URL",
    "CAPABILITY_DESCRIPTION",
    "CAPABILITY_CAPACITY",
    "CAPABILITY_PRICE_PER_UNIT",
    "CAPABILITY_PRICE_SCALING",
    "CAPABILITY_CURRENCY",
    "WORKER_TOKEN",
    "REGISTER_INTERVAL_SECONDS",
    "ORCH_CA_BUNDLE",
    "ORCH_TLS_VERIFY",
    "WORKER_BIND",
    "REGISTRATION_PROTOCOL",
    "LIVE_RUNNER_GPU_INDEX",
    "LIVE_RUNNER_PRICE_USD_PER_HOUR",
    "LIVE_RUNNER_PRICES",
    "LIVE_RUNNER_PRICE_UNIT",
    "LIVE_RUNNER_ONCHAIN",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would override the env file under test."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(extra)
    return env


def compose(
    *args: str, env_file: Path | None = ENV_EXAMPLE, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Run the real `docker-compose` (Compose v5) from the repository root."""
    cmd = [COMPOSE]
    if env_file is not None:
        cmd += ["--env-file", str(env_file)]
    return subprocess.run(
        [*cmd, *args], cwd=ROOT, env=_clean_env(**extra), capture_output=True, text=True, timeout=60
    )


def resolved(*files: str) -> dict[str, Any]:
    """The fully interpolated model of the given compose files with .env.example."""
    args = [a for f in files for a in ("-f", f)]
    res = compose(*args, "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def example_values() -> dict[str, str]:
    """KEY=value assignments in .env.example (commented examples excluded)."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if m := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            values[m.group(1)] = m.group(2)
    return values


@pytest.mark.parametrize(
    "files", [(MAIN,), (GATEWAY,), (MAIN, GATEWAY)], ids=["main", "gateway", "both"]
)
def test_compose_files_validate_with_env_example(files: tuple[str, ...]) -> None:
    args = [a for f in files for a in ("-f", f)]
    res = compose(*args, "config", "-q")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("files", [(MAIN,), (GATEWAY,)], ids=["main", "gateway"])
def test_compose_files_validate_without_env_file_given_the_secret(files: tuple[str, ...]) -> None:
    args = [a for f in files for a in ("-f", f)]
    res = compose(*args, "config", "-q", env_file=Path(os.devnull), ORCH_SECRET="s3cret")
    assert res.returncode == 0, res.stderr


def test_missing_secret_is_refused_by_name(tmp_path: Path) -> None:
    env_file = tmp_path / "no-secret.env"
    env_file.write_text(
        "\n".join(f"{k}={v}" for k, v in example_values().items() if k != "ORCH_SECRET")
    )
    res = compose("-f", MAIN, "config", "-q", env_file=env_file)
    assert res.returncode != 0
    assert "ORCH_SECRET" in res.stderr


def test_env_example_documents_every_variable() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    missing = [v for v in REQUIRED_VARIABLES if v not in documented]
    assert not missing, f".env.example lacks {missing}"
    used = set()
    for name in (MAIN, GATEWAY):
        text = "\n".join(
            line.split(" #")[0]
            for line in (ROOT / name).read_text().splitlines()
            if not line.lstrip().startswith("#")
        )
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    undocumented = sorted(used - documented)
    assert not undocumented, f"compose uses undocumented variables {undocumented}"
    values = example_values()
    assert values["CAPABILITY_CAPACITY"] == "10"
    assert values["CAPABILITY_PRICE_PER_UNIT"] == "0"
    assert values["CAPABILITY_PRICE_SCALING"] == "1"
    assert values["CAPABILITY_CURRENCY"] == "wei"
    assert values["REGISTER_INTERVAL_SECONDS"] == "30"
    assert values["ORCH_TLS_VERIFY"] == "false"


def test_dot_env_is_git_ignored_and_secret_only_in_env() -> None:
    res = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT)
    assert res.returncode == 0, ".env must be git-ignored"
    placeholder = example_values()["ORCH_SECRET"]
    assert "replace" in placeholder, "the example secret must be an obvious placeholder"
    for name in (MAIN, GATEWAY, "Dockerfile", "ollama/Dockerfile"):
        text = (ROOT / name).read_text()
        assert "LP_ORCHSECRET: ${ORCH_SECRET" in text or "ORCHSECRET" not in text
        assert not re.search(r"orchSecret\s+\S", text), f"{name} must not carry a secret"


def test_main_stack_wiring() -> None:
    model = resolved(MAIN)
    services = model["services"]
    assert set(services) == {"ollama", "worker", "orchestrator"}
    ollama, worker, orch = services["ollama"], services["worker"], services["orchestrator"]

    # ollama: GPU, model volume, health check by CLI.
    for svc in (ollama, worker):
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert any(
        v["source"] == "ollama_data" and v["target"] == "/root/.ollama" for v in ollama["volumes"]
    )
    assert "agent-net-ollama-healthcheck" in " ".join(ollama["healthcheck"]["test"])

    # worker: loopback port, settings, order, restart.
    (port,) = worker["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "9876", 9876)
    env = worker["environment"]
    assert env["OLLAMA_HOST"] == "http://ollama:11434"
    assert env["ORCH_URL"] == "https://orchestrator:8935"
    assert env["CAPABILITY_URL"] == "http://worker:9876"
    assert env["ORCH_TLS_VERIFY"] == "false"
    assert env["ORCH_SECRET"] == example_values()["ORCH_SECRET"]
    for key in REQUIRED_VARIABLES:
        if key != "WORKER_BIND":
            assert key in env, f"worker does not receive {key}"
    assert worker["depends_on"]["ollama"]["condition"] == "service_healthy"

    # agents: one file, read-only in the worker (served) and in ollama (models pulled).
    for svc in (ollama, worker):
        assert svc["environment"]["AGENTS_FILE"] == "/etc/agent-net/agents.toml"
        mount = next(v for v in svc["volumes"] if v["target"] == "/etc/agent-net/agents.toml")
        assert mount["read_only"] is True
        assert mount["source"] == str(ROOT / "agents.example.toml")
    assert worker["restart"] == "unless-stopped"

    # orchestrator: pinned go-livepeer, read-only config, secret via LP_ORCHSECRET.
    image = orch["image"]
    assert re.fullmatch(r"livepeer/go-livepeer:v?\d+\.\d+\.\d+", image), image
    assert orch["command"][:2] == ["-config", "/config/orchestrator.conf"]
    assert orch["environment"]["LP_ORCHSECRET"] == env["ORCH_SECRET"]
    config_mount = next(v for v in orch["volumes"] if v["target"] == "/config")
    assert config_mount["read_only"] is True
    assert config_mount["source"] == str(ROOT / "orchestrator_config")


def test_live_runners_are_on_and_each_side_reaches_the_other() -> None:
    """The orchestrator runs with live runners; the worker heartbeats to ORCH_URL and the
    orchestrator proxies to CAPABILITY_URL, both compose service names on one network."""
    from urllib.parse import urlsplit

    from payments.config_files import read_config_file

    model = resolved(MAIN)
    worker, orch = model["services"]["worker"], model["services"]["orchestrator"]
    env = worker["environment"]
    assert env["REGISTRATION_PROTOCOL"] == "both"
    assert env["LIVE_RUNNER_ONCHAIN"] == "false"
    config = read_config_file(ROOT / "orchestrator_config" / "orchestrator.conf")
    assert config.get("useLiveRunners").value == "true"
    network = config.get("network").value
    assert (network == "offchain") == (env["LIVE_RUNNER_ONCHAIN"] == "false")
    runner_addr = urlsplit(config.get("liveRunnerAddr").value)
    assert runner_addr.scheme == "https" and runner_addr.hostname == "orchestrator"
    assert runner_addr.port == 8935 == int(config.get("serviceAddr").value.split(":")[1])
    assert "orchestrator" in model["services"] and "worker" in model["services"]
    assert urlsplit(env["CAPABILITY_URL"]).hostname == "worker"  # the worker service name
    assert urlsplit(env["ORCH_URL"]).hostname == "orchestrator"
    assert worker.get("networks", {}).keys() == orch.get("networks", {}).keys()
    assert "LP_ORCHSECRET" in orch["environment"]  # -useLiveRunners requires -orchSecret


def test_worker_bind_and_port_follow_env(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    values = example_values() | {"WORKER_BIND": "0.0.0.0", "WORKER_PORT": "9900"}
    env_file.write_text("\n".join(f"{k}={v}" for k, v in values.items()))
    res = compose("-f", MAIN, "config", "--format", "json", env_file=env_file)
    assert res.returncode == 0, res.stderr
    worker = json.loads(res.stdout)["services"]["worker"]
    (port,) = worker["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("0.0.0.0", "9900", 9900)
    assert worker["environment"]["WORKER_PORT"] == "9900"
    assert worker["environment"]["CAPABILITY_URL"] == "http://worker:9900"


def test_gateway_alone_and_together() -> None:
    alone = resolved(GATEWAY)["services"]
    assert set(alone) == {"gateway"}
    gateway = alone["gateway"]
    assert re.fullmatch(r"livepeer/go-livepeer:v?\d+\.\d+\.\d+", gateway["image"])
    assert gateway["command"][:2] == ["-config", "/config/gateway.conf"]
    assert gateway["environment"]["LP_ORCHADDR"] == "https://orchestrator:8935"
    mount = next(v for v in gateway["volumes"] if v["target"] == "/config")
    assert mount["read_only"] is True and mount["source"] == str(ROOT / "gateway_config")
    both = resolved(MAIN, GATEWAY)
    assert set(both["services"]) == {"ollama", "worker", "orchestrator", "gateway"}
    assert both["services"]["gateway"]["networks"] == both["services"]["orchestrator"]["networks"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "ollama/Dockerfile"])
def test_hadolint_passes(dockerfile: str) -> None:
    res = subprocess.run(
        [HADOLINT, dockerfile], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for line in (ROOT / dockerfile).read_text().splitlines():
        if "hadolint ignore" in line:
            reason = line.split("hadolint ignore", 1)[1]
            assert re.search(r"[a-z]{4,}.*[a-z]{4,}", reason.split("=", 1)[-1]), (
                f"unjustified ignore in {dockerfile}: {line}"
            )


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_worker_dockerfile_contract() -> None:
    ins = _instructions("Dockerfile")
    froms = [rest for word, rest in ins if word == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert "[payments" not in runs and "[test" not in runs and "[" not in runs.split("install")[-1]
    assert "'dependencies'" in runs, "dependencies must come from pyproject's metadata"
    user = [rest for word, rest in runtime if word == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    cmd = [rest for word, rest in runtime if word == "CMD"][-1]
    assert json.loads(cmd) == ["python", "-m", "worker"], "exec-form CMD"
    health = [rest for word, rest in runtime if word == "HEALTHCHECK"][-1]
    health_cmd = json.loads(health[health.index("CMD") + 3 :].strip())
    assert health_cmd[:2] == ["python", "-c"] and "urllib" in health_cmd[2]
    assert "/readyz" in health_cmd[2] or "/healthz" in health_cmd[2]
    envs = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "NVIDIA_DRIVER_CAPABILITIES=utility" in envs
    assert "NVIDIA_VISIBLE_DEVICES=all" in envs
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignored[0] == "*" and "!worker/" in ignored and "!tests/" not in ignored


def test_the_image_installs_the_agent_net_console_script() -> None:
    """`docker compose exec worker agent-net doctor`: pip writes the script into the venv
    that the runtime stage copies, and that venv's bin is on PATH."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["agent-net"] == "worker.cli:main"
    ins = _instructions("Dockerfile")
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    build, runtime = ins[:last_from], ins[last_from:]
    copied = [i for i, (w, rest) in enumerate(build) if w == "COPY" and "worker/" in rest.split()]
    installs = [
        i
        for i, (w, rest) in enumerate(build)
        if w == "RUN"
        and "--python /opt/agent-net/bin/python install" in rest
        and "-e" not in rest
        and rest.rstrip().endswith(" .")
    ]
    assert copied and installs and installs[-1] > copied[-1], "the package is installed (not -e)"
    assert ("COPY", "--from=build /opt/agent-net /opt/agent-net") in runtime
    envs = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "PATH=/opt/agent-net/bin:$PATH" in envs


def test_ollama_dockerfile_contract() -> None:
    ins = _instructions("ollama/Dockerfile")
    arg = next(rest for word, rest in ins if word == "ARG" and "OLLAMA_BASE_IMAGE" in rest)
    assert re.fullmatch(r"OLLAMA_BASE_IMAGE=ollama/ollama:\d+\.\d+\.\d+", arg), arg
    entry = json.loads(next(rest for word, rest in ins if word == "ENTRYPOINT"))
    assert entry == ["/usr/local/bin/agent-net-ollama-entrypoint"]
    health = next(rest for word, rest in ins if word == "HEALTHCHECK")
    assert "agent-net-ollama-healthcheck" in health
    for script in ("ollama/entrypoint.sh", "ollama/healthcheck.sh", "scripts/probe.sh"):
        path = ROOT / script
        assert os.access(path, os.X_OK), f"{script} must be executable"
        assert "set -euo pipefail" in path.read_text()
        res = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
