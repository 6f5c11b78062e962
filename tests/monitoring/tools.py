"""The monitoring files and the real Prometheus tools the monitoring tests run.

`promtool` and `prometheus` come from Debian's `prometheus` package, which scripts/test.sh
installs; a missing one fails the test with that advice (never a skip).
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.helpers.processes import ROOT

MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "rules" / "agent-net.rules.yml"
RULE_TESTS = MONITORING / "prometheus" / "tests" / "agent-net.test.yml"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "agent-net.json"
DOC = ROOT / "docs" / "monitoring.md"
SEVERITIES = ("critical", "warning", "info")


def tool(name: str) -> str:
    """The path of `promtool` or `prometheus`, or fail saying how to get it."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: scripts/test.sh installs it (Debian's prometheus"
            " package: apt-get install --no-install-recommends prometheus)",
            pytrace=False,
        )
    return found


def run_tool(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool(name), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the shipped rule file, in file order."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]
