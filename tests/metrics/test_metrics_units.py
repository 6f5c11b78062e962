"""The metric builders on hand-made readings, and the Flask wiring in one process."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from tests.metrics.scrape import Samples, parse, series, value
from worker.config import load_settings
from worker.http.metrics import (
    gpu_metrics,
    multiprocess_mode,
    ollama_metrics,
    registration_metrics,
    source_metrics,
)
from worker.sampling.published import SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport, ModelEntry


def _samples(*families) -> Samples:
    class Fixed:
        def collect(self):
            yield from families

    registry = CollectorRegistry()
    registry.register(Fixed())
    return parse(generate_latest(registry).decode())


def _gpu(index: int, **overrides) -> GpuReading:
    fields = {
        "index": index,
        "name": "NVIDIA L4",
        "uuid": f"GPU-{index}",
        "memory_used_bytes": 1024,
        "memory_total_bytes": 4096,
        "temperature_c": 50,
        "power_draw_w": 30.5,
        "power_limit_w": 72.0,
        "utilization_gpu_pct": 50,
        "utilization_memory_pct": 5,
    }
    return GpuReading(**{**fields, **overrides})


def _model(name: str, loaded: bool, vram: int | None) -> ModelEntry:
    return ModelEntry(name, 1000, "7B", "Q4_0", "llama", None, None, loaded, vram, None)


def test_unsupported_gpu_readings_are_absent_and_a_lost_gpu_is_down() -> None:
    report = GpuReport(
        None,
        (
            _gpu(0, power_draw_w=None, power_limit_w=None, utilization_gpu_pct=None),
            GpuReading(1, None, None, None, None, None, None, None, None, None, error="lost"),
        ),
    )
    view = SourceView("nvml", "ok", None, report, 0.1, 1.0)
    samples = _samples(*gpu_metrics(view))
    first = {"gpu": "0", "uuid": "GPU-0", "name": "NVIDIA L4"}
    assert value(samples, "agent_net_gpu_up", **first) == 1
    assert value(samples, "agent_net_gpu_up", gpu="1", uuid="", name="") == 0
    assert value(samples, "agent_net_gpu_memory_utilization_ratio", **first) == 0.05
    assert series(samples, "agent_net_gpu_power_watts") == {}
    assert series(samples, "agent_net_gpu_utilization_ratio") == {}
    assert list(series(samples, "agent_net_gpu_temperature_celsius")) == [frozenset(first.items())]
    assert series(samples, "agent_net_gpu_driver_info") == {}


def test_no_gpu_report_means_no_gpu_series() -> None:
    view: SourceView[GpuReport] = SourceView("nvml", "unavailable", "gone", None, None, None)
    assert list(gpu_metrics(view)) == []


def test_a_stale_catalogue_is_still_shown_but_ollama_is_not_up() -> None:
    catalogue = Catalogue(
        "0.12.6", (_model("a:1b", True, 500), _model("b:2b", False, None), _model("c", True, None))
    )
    view = SourceView("ollama", "stale", "slow", catalogue, 9.0, 1.0)
    samples = _samples(*ollama_metrics(view))
    assert value(samples, "agent_net_ollama_up") == 0
    assert value(samples, "agent_net_ollama_models") == 3
    assert value(samples, "agent_net_ollama_models_loaded") == 2
    assert series(samples, "agent_net_ollama_model_vram_bytes") == {
        frozenset({("model", "a:1b")}): 500.0
    }


def test_source_status_is_one_hot_and_age_absent_before_a_reading() -> None:
    views = [
        SourceView("nvml", "pending", "no reading yet", None, None, None),
        SourceView("ollama", "stale", "old", None, 12.5, 1.0),
    ]
    samples = _samples(*source_metrics(views))
    assert value(samples, "agent_net_source_status", source="nvml", status="pending") == 1
    assert sum(v for labels, v in series(samples, "agent_net_source_status").items()) == 2
    assert value(samples, "agent_net_source_age_seconds", source="nvml") is None
    assert value(samples, "agent_net_source_age_seconds", source="ollama") == 12.5
    assert value(samples, "agent_net_source_up", source="ollama") == 0


def test_registration_state_takes_only_well_typed_fields() -> None:
    states = [
        {
            "orchestrator": "https://o1:8935",
            "capability": "agent-net",
            "registered": True,
            "last_success": 1.8e9,
            "last_attempt": 1.8e9,
            "consecutive_failures": 0,
        },
        {
            "orchestrator": "https://o2:8935",
            "capability": "other",
            "registered": "yes",
            "last_success": None,
            "consecutive_failures": True,
        },
    ]
    samples = _samples(*registration_metrics(states))
    first = {"orchestrator": "https://o1:8935", "capability": "agent-net"}
    second = {"orchestrator": "https://o2:8935", "capability": "other"}
    assert value(samples, "agent_net_registration_registered", **first) == 1
    assert value(samples, "agent_net_registration_registered", **second) == 0
    assert value(samples, "agent_net_registration_last_success_timestamp_seconds", **first) == 1.8e9
    assert value(samples, "agent_net_registration_last_success_timestamp_seconds", **second) is None
    assert value(samples, "agent_net_registration_consecutive_failures", **second) is None
    assert list(registration_metrics([])) == []


def test_in_one_process_the_app_counts_its_own_requests(tmp_path: Path) -> None:
    from worker.http.app import create_app

    assert not multiprocess_mode()  # the test process never sets PROMETHEUS_MULTIPROC_DIR
    settings = load_settings({"OLLAMA_HOST": "http://127.0.0.1:9"})
    client = create_app(settings, tmp_path).test_client()  # no sampler has published
    labels = {"route": "/healthz", "method": "GET", "status": "200"}

    def count() -> float:
        samples = parse(client.get("/metrics").get_data(as_text=True))
        return value(samples, "agent_net_http_requests_total", **labels) or 0.0

    before = count()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert count() == before + 3
    samples = parse(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "agent_net_source_status", source="nvml", status="pending") == 1
    assert value(samples, "agent_net_ollama_up") == 0
