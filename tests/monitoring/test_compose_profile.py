"""The compose `monitoring` profile, validated by the real Docker Compose (`config`), and the
files it mounts. No engine needed: `config` parses and interpolates only."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.processes import ROOT
from tests.monitoring.tools import DASHBOARD, PROMETHEUS_CONFIG, RULES

COMPOSE = str(Path(sys.executable).parent / "docker-compose")
ENV_EXAMPLE = ROOT / ".env.example"
STACK = {"ollama", "worker", "orchestrator"}
MONITORING = {"prometheus", "grafana"}


def config(*args: str, env_file: Path = ENV_EXAMPLE) -> dict[str, Any]:
    result = subprocess.run(
        [
            COMPOSE,
            "--env-file",
            str(env_file),
            "-f",
            "docker-compose.yml",
            *args,
            "config",
            "--format",
            "json",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_plain_up_is_unchanged_and_the_profile_adds_prometheus_and_grafana() -> None:
    plain = config()
    assert set(plain["services"]) == STACK
    with_profile = config("--profile", "monitoring")
    assert set(with_profile["services"]) == STACK | MONITORING
    for name in STACK:  # the stack's own services are the same with or without the profile
        assert with_profile["services"][name] == plain["services"][name]
    for name in MONITORING:
        assert with_profile["services"][name]["profiles"] == ["monitoring"]


def test_published_on_loopback_only_with_pinned_images() -> None:
    services = config("--profile", "monitoring")["services"]
    expected_ports = {"prometheus": (9090, "9090"), "grafana": (3000, "3000")}
    for name, (target, published) in expected_ports.items():
        ports = services[name]["ports"]
        assert [(p["host_ip"], p["target"], p["published"]) for p in ports] == [
            ("127.0.0.1", target, published)
        ], name
        image = services[name]["image"]
        repository, _, tag = image.rpartition(":")
        assert repository in ("prom/prometheus", "grafana/grafana"), image
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{image}: pin an exact version"


def test_no_password_in_compose_it_comes_from_env(tmp_path: Path) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:-}" in text
    example = ENV_EXAMPLE.read_text()
    assert re.search(r"^GRAFANA_ADMIN_PASSWORD=$", example, re.MULTILINE)  # the operator's own
    env_file = tmp_path / "with-password.env"
    env_file.write_text(
        example.replace("GRAFANA_ADMIN_PASSWORD=", "GRAFANA_ADMIN_PASSWORD=s3cr3t-pw")
    )
    grafana = config("--profile", "monitoring", env_file=env_file)["services"]["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "s3cr3t-pw"
    # without one the container refuses to start (checked when it starts, not by compose)
    script = grafana["entrypoint"][-1]
    assert '[ -n "$$GF_SECURITY_ADMIN_PASSWORD" ]' in script and "exit 1" in script
    assert script.rstrip().endswith("exec /run.sh")


def test_the_mounted_files_are_the_shipped_ones() -> None:
    services = config("--profile", "monitoring")["services"]
    binds = {
        (volume["source"], volume["target"])
        for name in MONITORING
        for volume in services[name]["volumes"]
        if volume["type"] == "bind"
    }
    assert binds == {
        (str(PROMETHEUS_CONFIG), "/etc/prometheus/prometheus.yml"),
        (str(RULES.parent), "/etc/prometheus/rules"),
        (str(ROOT / "monitoring/grafana/provisioning"), "/etc/grafana/provisioning"),
        (str(DASHBOARD.parent), "/etc/agent-net/dashboards"),
    }
    prometheus = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "agent-net"
    worker_port = services["worker"]["environment"]["WORKER_PORT"]
    assert job["static_configs"] == [{"targets": [f"worker:{worker_port}"]}]
    datasources = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert [(d["type"], d["url"], d["isDefault"]) for d in datasources] == [
        ("prometheus", "http://prometheus:9090", True)
    ]
    providers = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/agent-net.yml").read_text()
    )["providers"]
    assert [p["options"]["path"] for p in providers] == ["/etc/agent-net/dashboards"]
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"/etc/agent-net/dashboards/{DASHBOARD.name}"
