"""The Grafana dashboard JSON: provisionable, with a data source and a GPU variable, every
panel on that data source, and the panels the operators asked for. (Its queries are run
against a real Prometheus in test_prometheus_live.py.)"""

from __future__ import annotations

import json

from tests.monitoring.tools import DASHBOARD

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_variables_datasource_worker_and_gpu() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert set(variables) == {"datasource", "instance", "gpu"}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    gpu = variables["gpu"]
    assert gpu["type"] == "query" and gpu["includeAll"] and gpu["allValue"] == ".*"
    assert gpu["query"]["query"] == 'label_values(agent_net_gpu_up{instance=~"$instance"}, gpu)'
    assert gpu["datasource"] == DATASOURCE and variables["instance"]["datasource"] == DATASOURCE


def test_provisionable_and_every_panel_on_the_chosen_datasource() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "agent-net" and dashboard["title"] == "Agent-Net"
    assert "id" not in dashboard  # provisioning assigns it
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert "$__rate_interval" in target["expr"] or "rate(" not in target["expr"]


def test_the_panels_cover_what_operators_watch() -> None:
    exprs = " ".join(
        target["expr"] for panel in _dashboard()["panels"] for target in panel.get("targets", ())
    )
    for metric in (
        "agent_net_gpu_memory_used_bytes",
        "agent_net_gpu_slowdown_temperature_celsius",
        "agent_net_gpu_power_limit_watts",
        "agent_net_gpu_utilization_ratio",
        "agent_net_gpu_throttle_reason",
        "agent_net_gpu_health_level",
        "agent_net_gpu_recovery_action",
        "agent_net_gpu_xid_errors_total",
        "agent_net_ollama_up",
        "agent_net_ollama_models_loaded",
        "agent_net_ollama_model_vram_bytes",
        "agent_net_agent_requests_total",
        "agent_net_agent_time_to_first_token_seconds_bucket",
        "agent_net_agent_tokens_per_second_bucket",
        "agent_net_capacity_slots_in_use",
        "agent_net_capacity_slots",
        "agent_net_registration_registered",
        "agent_net_live_runner_registered",
        "agent_net_residency_loads_total",
        "agent_net_residency_unloads_total",
    ):
        assert metric in exprs, metric
