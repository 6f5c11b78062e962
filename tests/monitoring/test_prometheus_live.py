"""A real Prometheus (Debian's package) loads the shipped rules and scrapes a real worker
(gunicorn, its sampler and registrar) over the stand-ins: a healthy stack raises no critical
alert, every dashboard query evaluates, and each fault raises its own alert: Ollama
stopped, a GPU lost in the NVML stand-in, the orchestrator stand-in stopped.

Prometheus scrapes and evaluates every second here (the shipped rules unchanged); the test
polls /api/v1/alerts until the alert is there (pending or firing), within a deadline.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.faults.support import OllamaProcess
from tests.helpers.processes import WorkerProcess, free_port, http, spawn_logged, wait_for
from tests.metrics.scrape import scrape, series
from tests.monitoring.tools import DASHBOARD, RULES, tool
from tests.standins.nvml.build import FakeNvml, build_fake_nvml
from tests.standins.orchestrator import StandinOrchestrator

SECRET = "monitoring-orch-secret"
DEADLINE = 45.0  # seconds for an alert to show after its fault: scrape 1 s, evaluation 1 s


@dataclass
class Stack:
    worker: WorkerProcess
    nvml: FakeNvml
    ollama: OllamaProcess
    orchestrator: StandinOrchestrator
    prometheus: str  # base URL

    def query(self, expr: str) -> dict[str, Any]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, _, body = http("GET", url)
        document = json.loads(body)
        assert status == 200 and document["status"] == "success", (expr, document)
        return document["data"]

    def alerts(self) -> list[dict[str, Any]]:
        status, _, body = http("GET", f"{self.prometheus}/api/v1/alerts")
        assert status == 200
        return json.loads(body)["data"]["alerts"]

    def wait_alert(self, name: str, **labels: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for alert in self.alerts():
                got = alert["labels"]
                if got["alertname"] == name and all(got.get(k) == v for k, v in labels.items()):
                    return alert
            return None

        return wait_for(found, DEADLINE, interval=0.5, what=f"alert {name} {labels}")


def _prometheus_config(directory: Path, worker_port: int) -> Path:
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "agent-net",
                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
            }
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    here = tmp_path_factory.mktemp("monitoring")
    nvml = FakeNvml.create(build_fake_nvml(here / "lib"), here / "nvml")
    ollama = OllamaProcess(free_port(), here / "ollama.log").start()
    orchestrator = StandinOrchestrator(SECRET, live_runners=True).start()
    port = free_port()
    env = {
        **{k: v for k, v in nvml.env({}).items() if k != "LD_LIBRARY_PATH"},
        "WORKER_PORT": str(port),
        "OLLAMA_HOST": ollama.url,
        "OLLAMA_TIMEOUT_SECONDS": "0.5",
        "ORCH_URL": orchestrator.url,
        "ORCH_SECRET": SECRET,
        "CAPABILITY_URL": f"http://127.0.0.1:{port}",
        "REGISTRATION_PROTOCOL": "both",
        "REGISTER_INTERVAL_SECONDS": "1",
    }
    worker = WorkerProcess(env, here / "worker.log", nvml.lib_dir).start()
    prometheus = None
    try:
        wait_for(lambda: _registered(worker), 20, what="registered: BYOC and live runners")
        web = f"127.0.0.1:{free_port()}"
        prometheus = spawn_logged(
            [
                tool("prometheus"),
                f"--config.file={_prometheus_config(here, port)}",
                f"--storage.tsdb.path={here / 'tsdb'}",
                f"--web.listen-address={web}",
                "--log.level=warn",
            ],
            here / "prometheus.log",
        )
        url = f"http://{web}"
        wait_for(lambda: http("GET", f"{url}/-/ready")[0] == 200, 30, what="Prometheus ready")
        stack = Stack(worker, nvml, ollama, orchestrator, url)
        yield stack
        ollama = stack.ollama  # a test may have replaced it with a restarted one
    finally:
        if prometheus is not None:
            prometheus.send_signal(signal.SIGTERM)
            try:
                prometheus.wait(15)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait(5)
        worker.stop()
        orchestrator.stop()
        ollama.kill()


def _registered(worker: WorkerProcess) -> bool:
    samples = scrape(worker.url)
    names = ("agent_net_registration_registered", "agent_net_live_runner_registered")
    found = [series(samples, name) for name in names]
    return all(found) and all(v == 1 for each in found for v in each.values())


def _settled(stack: Stack) -> None:
    """Prometheus has scraped the ready worker and evaluated every rule group since."""
    wait_for(
        lambda: stack.query('count(agent_net_gpu_up{job="agent-net"} == 1)')["result"],
        30,
        what="the worker scraped",
    )
    scraped_at = time.time()

    def evaluated_since() -> bool:
        _, _, body = http("GET", f"{stack.prometheus}/api/v1/rules")
        groups = json.loads(body)["data"]["groups"]
        return len(groups) == 3 and all(
            _timestamp(group["lastEvaluation"]) > scraped_at + 1 for group in groups
        )

    wait_for(evaluated_since, 30, what="every rule group evaluated after the first scrape")


def _timestamp(rfc3339: str) -> float:
    # "2026-12-06T03:43:33.123456789Z": seconds since the epoch (to the microsecond)
    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    moment = time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return moment + float("0." + (fraction or "0")[:6])


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]
    queries += [(f"annotation {a['name']}", a["expr"]) for a in dashboard["annotations"]["list"]]
    queries += [
        (f"variable {v['name']}", v["query"]["query"])
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return queries


def _as_promql(expr: str) -> str:
    """What Grafana sends with every variable at All and a 15 s scrape interval."""
    expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$gpu", ".*")
    labels = re.fullmatch(r"label_values\((.*), (\w+)\)", expr)
    return f"group by ({labels[2]}) ({labels[1]})" if labels else expr


def test_a_healthy_stack_raises_no_critical_alert(stack: Stack) -> None:
    _settled(stack)
    alerts = stack.alerts()
    critical = [a["labels"] for a in alerts if a["labels"]["severity"] == "critical"]
    assert critical == []
    print("alerts on the healthy stack:", [a["labels"]["alertname"] for a in alerts])


def test_every_dashboard_query_evaluates_on_the_scraped_worker(stack: Stack) -> None:
    _settled(stack)
    queries = _dashboard_queries()
    assert len(queries) >= 30
    empty = []
    for title, expr in queries:
        data = stack.query(_as_promql(expr))  # fails on any error
        if not data["result"]:
            empty.append(title)
    # Only the alerts annotation is empty on a healthy stack: every panel has its series.
    assert empty == ["annotation Alerts"]


def test_ollama_stopped_raises_ollama_down(stack: Stack, tmp_path: Path) -> None:
    _settled(stack)
    stack.ollama.kill()
    try:
        alert = stack.wait_alert("AgentNetOllamaDown")
        assert alert["labels"]["severity"] == "critical"
        assert alert["state"] in ("pending", "firing")
    finally:
        stack.ollama = OllamaProcess(stack.ollama.port, tmp_path / "ollama.log").start()


def test_a_lost_gpu_raises_gpu_lost(stack: Stack) -> None:
    _settled(stack)
    stack.nvml.set_scenario("gpu_lost")
    try:
        alert = stack.wait_alert("AgentNetGpuLost", gpu="1")
        assert alert["state"] == "firing"  # for: 0m
        assert alert["labels"]["severity"] == "critical"
        critical = stack.wait_alert("AgentNetGpuCritical", gpu="1")
        assert (critical["labels"]["action"], critical["labels"]["rule"]) == ("reboot", "gpu_lost")
    finally:
        stack.nvml.set_scenario("two_gpus")


def test_the_orchestrator_stopped_raises_registration_lost_for_both_protocols(
    stack: Stack,
) -> None:
    _settled(stack)
    orchestrator = stack.orchestrator.url
    stack.orchestrator.stop()
    byoc = stack.wait_alert("AgentNetRegistrationLost", protocol="byoc")
    runner = stack.wait_alert("AgentNetRegistrationLost", protocol="live-runner")
    assert byoc["labels"]["capability"] in ("agent-net", "agent-net-llm")  # job route, agent
    assert runner["labels"]["capability"] in ("gpu-check", "agent-net-llm")
    for alert in (byoc, runner):
        assert alert["labels"]["orchestrator"] == orchestrator
        assert alert["labels"]["severity"] == "critical"
        assert alert["state"] in ("pending", "firing")
