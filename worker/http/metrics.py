"""Prometheus metrics: `GET /metrics`, correct under gunicorn's several worker processes.

Two kinds of series, collected differently:

- Request counters and latency histograms are counted in every gunicorn worker process
  and summed at scrape time: prometheus_client's multiprocess mode, with
  `PROMETHEUS_MULTIPROC_DIR` set by `python -m worker` before this module is imported.
  Without that variable (a test building the app in-process) they live in this process.
- GPU, Ollama, sampler and registration gauges are built at scrape time from the
  sampler's published readings and the registrar's state file, which every worker process
  reads alike: they come from one reading, never summed across processes.

A reading that is unsupported or unknown (None) is left out, never exported as 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Request, Response, request
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from worker.http.gpu_health_metrics import GPU_LABELS, health_metrics
from worker.registration.state import read_live_runner_state, read_registration_state
from worker.residency.report import ResidencyReport
from worker.sampling.published import Readings, SourceView
from worker.sampling.readings import Catalogue, GpuReading, GpuReport

METRICS_ROUTE = "/metrics"
UNMATCHED_ROUTE = "unmatched"  # the route label of every path no rule serves (bounded)
OTHER_METHOD = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The worker answers in well under a millisecond of work; the upper buckets catch stalls.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
SOURCE_STATUSES = ("ok", "stale", "unavailable", "pending")
REGISTRATION_LABELS = ("orchestrator", "capability")
LIVE_RUNNER_LABELS = ("orchestrator", "capability")
# Every reason the residency loop can give (worker/residency/decide.py), shown from 0.
RESIDENCY_REASONS = {"load": ("hot", "pinned", "keep_hot"), "unload": ("over_budget", "make_room")}
RESIDENCY_RESULTS = ("ok", "failed")

# Used directly only in single-process mode; in multiprocess mode the values go to files.
REQUEST_REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "agent_net_http_requests",
    "HTTP requests answered, by route rule, method and status.",
    ("route", "method", "status"),
    registry=REQUEST_REGISTRY,
)
REQUEST_DURATION = Histogram(
    "agent_net_http_request_duration_seconds",
    "Time from the request reaching the app to its response, by route rule, method and status.",
    ("route", "method", "status"),
    buckets=LATENCY_BUCKETS,
    registry=REQUEST_REGISTRY,
)


def multiprocess_mode() -> bool:
    """True when prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR's files."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def process_exited(pid: int) -> None:
    """gunicorn `child_exit`: drop a dead worker's live-gauge files (counters are kept)."""
    if multiprocess_mode() and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(pid)


# --- Gauges built at scrape time -----------------------------------------------------------
def _gauge(name: str, documentation: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels))


def _with_samples(*families: Metric) -> Iterator[Metric]:
    """Only families that have a sample: an empty one would list a name with no series."""
    return (family for family in families if family.samples)


def _label(value: object) -> str:
    return "" if value is None else str(value)


def _gpu_labels(gpu: GpuReading) -> list[str]:
    return [str(gpu.index), _label(gpu.uuid), _label(gpu.name)]


def gpu_metrics(view: SourceView[GpuReport]) -> Iterator[Metric]:
    """Per-GPU readings of the last NVML sample, labelled like NVIDIA's DCGM exporter.

    The health, XID and verdict series come from worker/http/gpu_health_metrics.py.
    """
    report = view.data
    if report is None:
        return
    up = _gauge("agent_net_gpu_up", "1 when every query of this GPU answered, else 0.", GPU_LABELS)
    used = _gauge("agent_net_gpu_memory_used_bytes", "GPU memory used (NVML).", GPU_LABELS)
    total = _gauge("agent_net_gpu_memory_total_bytes", "GPU memory in total (NVML).", GPU_LABELS)
    temperature = _gauge("agent_net_gpu_temperature_celsius", "GPU core temperature.", GPU_LABELS)
    power = _gauge("agent_net_gpu_power_watts", "Power drawn by the board.", GPU_LABELS)
    limit = _gauge("agent_net_gpu_power_limit_watts", "Enforced power limit.", GPU_LABELS)
    utilization = _gauge(
        "agent_net_gpu_utilization_ratio",
        "Share of the last sample period a kernel ran on the GPU (0-1).",
        GPU_LABELS,
    )
    memory_utilization = _gauge(
        "agent_net_gpu_memory_utilization_ratio",
        "Share of the last sample period device memory was read or written (0-1).",
        GPU_LABELS,
    )
    for gpu in report.gpus:
        labels = _gpu_labels(gpu)
        up.add_metric(labels, 0.0 if gpu.error else 1.0)
        readings = (
            (used, gpu.memory_used_bytes),
            (total, gpu.memory_total_bytes),
            (temperature, gpu.temperature_c),
            (power, gpu.power_draw_w),
            (limit, gpu.power_limit_w),
            (utilization, _ratio(gpu.utilization_gpu_pct)),
            (memory_utilization, _ratio(gpu.utilization_memory_pct)),
        )
        for family, value in readings:
            if value is not None:
                family.add_metric(labels, float(value))
    yield from _with_samples(
        up, used, total, temperature, power, limit, utilization, memory_utilization
    )
    yield from health_metrics(report.gpus, _gpu_labels)
    if report.driver_version is not None:
        driver = _gauge(
            "agent_net_gpu_driver_info", "The NVIDIA driver version (always 1).", ["version"]
        )
        driver.add_metric([report.driver_version], 1.0)
        yield driver


def _ratio(percent: int | None) -> float | None:
    return None if percent is None else percent / 100


def ollama_metrics(view: SourceView[Catalogue]) -> Iterator[Metric]:
    """Ollama reachability, and its catalogue when one has been read."""
    up = _gauge("agent_net_ollama_up", "1 when the last Ollama reading is fresh and ok, else 0.")
    up.add_metric([], 1.0 if view.status == "ok" else 0.0)
    yield up
    catalogue = view.data
    if catalogue is None:
        return
    on_disk = _gauge("agent_net_ollama_models", "Models on disk (/api/tags).")
    on_disk.add_metric([], float(len(catalogue.models)))
    loaded = _gauge("agent_net_ollama_models_loaded", "Models loaded now (/api/ps).")
    loaded.add_metric([], float(sum(1 for model in catalogue.models if model.loaded)))
    size = _gauge("agent_net_ollama_model_size_bytes", "Size of each model on disk.", ["model"])
    vram = _gauge(
        "agent_net_ollama_model_vram_bytes", "GPU memory held by each loaded model.", ["model"]
    )
    for model in catalogue.models:
        if model.size_bytes is not None:
            size.add_metric([model.name], float(model.size_bytes))
        if model.loaded and model.vram_bytes is not None:
            vram.add_metric([model.name], float(model.vram_bytes))
    yield from _with_samples(on_disk, loaded, size, vram)
    if catalogue.version is not None:
        info = _gauge("agent_net_ollama_info", "The Ollama server version (always 1).", ["version"])
        info.add_metric([catalogue.version], 1.0)
        yield info


def source_metrics(views: Iterable[SourceView[Any]]) -> Iterator[Metric]:
    """The background sampler's state per source: up, status and age of the reading."""
    up = _gauge("agent_net_source_up", "1 when the source's reading is fresh and ok.", ["source"])
    status = _gauge(
        "agent_net_source_status",
        "1 for the source's current status (ok, stale, unavailable, pending), else 0.",
        ["source", "status"],
    )
    age = _gauge(
        "agent_net_source_age_seconds",
        "Age of the last good reading of each source (absent before the first).",
        ["source"],
    )
    for view in views:
        up.add_metric([view.name], 1.0 if view.status == "ok" else 0.0)
        for name in SOURCE_STATUSES:
            status.add_metric([view.name, name], 1.0 if view.status == name else 0.0)
        if view.age_seconds is not None:
            age.add_metric([view.name], view.age_seconds)
    yield from _with_samples(up, status, age)


def registration_metrics(states: Iterable[Mapping[str, Any]]) -> Iterator[Metric]:
    """The registrar's state per orchestrator, from its state file."""
    registered = _gauge(
        "agent_net_registration_registered",
        "1 when the capability is registered with the orchestrator, else 0.",
        REGISTRATION_LABELS,
    )
    last_success = _gauge(
        "agent_net_registration_last_success_timestamp_seconds",
        "Unix time of the last successful registration.",
        REGISTRATION_LABELS,
    )
    last_attempt = _gauge(
        "agent_net_registration_last_attempt_timestamp_seconds",
        "Unix time of the last registration attempt.",
        REGISTRATION_LABELS,
    )
    failures = _gauge(
        "agent_net_registration_consecutive_failures",
        "Registration attempts that failed since the last success.",
        REGISTRATION_LABELS,
    )
    for state in states:
        labels = [_label(state.get("orchestrator")), _label(state.get("capability"))]
        registered.add_metric(labels, 1.0 if state.get("registered") is True else 0.0)
        for family, key in (
            (last_success, "last_success"),
            (last_attempt, "last_attempt"),
            (failures, "consecutive_failures"),
        ):
            value = state.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                family.add_metric(labels, float(value))
    yield from _with_samples(registered, last_success, last_attempt, failures)


def live_runner_metrics(
    runners: Iterable[Mapping[str, Any]], now: float | None = None
) -> Iterator[Metric]:
    """The registrar's live runners per orchestrator and capability, from its state file."""
    now = time.time() if now is None else now
    registered = _gauge(
        "agent_net_live_runner_registered",
        "1 while the live runner holds a heartbeat secret from the orchestrator, else 0.",
        LIVE_RUNNER_LABELS,
    )
    ready = _gauge(
        "agent_net_live_runner_ready",
        "1 when the last heartbeat accepted said status ready, else 0.",
        LIVE_RUNNER_LABELS,
    )
    info = _gauge(
        "agent_net_live_runner_info",
        "The live runner's current id and the status it last sent (always 1).",
        (*LIVE_RUNNER_LABELS, "runner_id", "status"),
    )
    last = _gauge(
        "agent_net_live_runner_last_heartbeat_timestamp_seconds",
        "Unix time of the last heartbeat the orchestrator accepted.",
        LIVE_RUNNER_LABELS,
    )
    age = _gauge(
        "agent_net_live_runner_heartbeat_age_seconds",
        "Seconds since the last heartbeat the orchestrator accepted.",
        LIVE_RUNNER_LABELS,
    )
    failures = _gauge(
        "agent_net_live_runner_consecutive_failures",
        "Heartbeats or bootstraps that failed since the last success.",
        LIVE_RUNNER_LABELS,
    )
    ttl = _gauge(
        "agent_net_live_runner_heartbeat_ttl_seconds",
        "How long the orchestrator keeps the runner without a heartbeat (its last answer).",
        LIVE_RUNNER_LABELS,
    )
    for runner in runners:
        labels = [_label(runner.get("orchestrator")), _label(runner.get("capability"))]
        is_registered = runner.get("registered") is True
        registered.add_metric(labels, 1.0 if is_registered else 0.0)
        status = runner.get("status_sent")
        ready.add_metric(labels, 1.0 if is_registered and status == "ready" else 0.0)
        if is_registered and runner.get("runner_id"):
            info.add_metric([*labels, _label(runner.get("runner_id")), _label(status)], 1.0)
        stamp = runner.get("last_heartbeat")
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            last.add_metric(labels, float(stamp))
            age.add_metric(labels, max(0.0, now - float(stamp)))
        count = runner.get("consecutive_failures")
        if isinstance(count, int) and not isinstance(count, bool):
            failures.add_metric(labels, float(count))
        held = runner.get("heartbeat_ttl_seconds")
        if isinstance(held, int | float) and not isinstance(held, bool):
            ttl.add_metric(labels, float(held))
    yield from _with_samples(registered, ready, info, last, age, failures, ttl)


def residency_metrics(report: ResidencyReport | None) -> Iterator[Metric]:
    """The residency loop's loads and unloads by reason, its budget and its view per model."""
    if report is None:
        return
    families = {
        kind: CounterMetricFamily(
            f"agent_net_residency_{kind}s",
            f"Model {kind}s the residency loop asked Ollama for, by reason and result"
            " (counted by the sampler process since it started).",
            labels=["reason", "result"],
        )
        for kind in RESIDENCY_REASONS
    }
    counts = {(c.action, c.reason, c.result): c.count for c in report.counts}
    for kind, reasons in RESIDENCY_REASONS.items():
        known = {(kind, reason, result) for reason in reasons for result in RESIDENCY_RESULTS}
        extra = {key for key in counts if key[0] == kind} - known
        for key in sorted(known | extra):
            families[kind].add_metric([key[1], key[2]], float(counts.get(key, 0)))
    yield from families.values()
    runs = CounterMetricFamily("agent_net_residency_runs", "Residency loop intervals run.")
    runs.add_metric([], float(report.runs))
    yield runs
    budget = _gauge(
        "agent_net_residency_vram_budget_bytes",
        "VRAM the residency loop keeps models within (VRAM_BUDGET over every GPU).",
    )
    if report.budget_bytes is not None:
        budget.add_metric([], float(report.budget_bytes))
    duration = _gauge(
        "agent_net_residency_last_run_seconds", "How long the last residency interval took."
    )
    if report.last_run_seconds is not None:
        duration.add_metric([], report.last_run_seconds)
    hot = _gauge(
        "agent_net_residency_model_hot",
        "1 when the model is kept loaded (hot or pinned).",
        ["model"],
    )
    pinned = _gauge("agent_net_residency_model_pinned", "1 when the model is pinned.", ["model"])
    requests = _gauge(
        "agent_net_residency_model_requests_last_hour",
        "Requests recorded for the model in the last hour.",
        ["model"],
    )
    jobs = _gauge(
        "agent_net_residency_model_running_jobs", "Jobs running on the model now.", ["model"]
    )
    for model in report.models:
        hot.add_metric([model.name], 1.0 if model.hot else 0.0)
        pinned.add_metric([model.name], 1.0 if model.pinned else 0.0)
        requests.add_metric([model.name], float(model.requests_last_hour))
        jobs.add_metric([model.name], float(model.running_jobs))
    yield from _with_samples(budget, duration, hot, pinned, requests, jobs)


class ReadingsCollector:
    """Collects the published readings and the registration state per scrape."""

    def __init__(self, readings: Readings, runtime_dir: Path) -> None:
        self._readings = readings
        self._runtime_dir = runtime_dir

    def collect(self) -> Iterator[Metric]:
        gpu_view, ollama_view = self._readings.views()
        yield from gpu_metrics(gpu_view)
        yield from ollama_metrics(ollama_view)
        yield from source_metrics((gpu_view, ollama_view))
        yield from residency_metrics(self._readings.residency(refresh=False))
        yield from registration_metrics(read_registration_state(self._runtime_dir))
        yield from live_runner_metrics(read_live_runner_state(self._runtime_dir))


def scrape_registry(readings: ReadingsCollector, *extra: Any) -> CollectorRegistry:
    """A registry for one scrape: every process's request metrics plus this process's gauges
    (`extra`: more collectors built at scrape time)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_REGISTRY)
    registry.register(readings)
    for collector in extra:
        registry.register(collector)
    return registry


# --- Flask wiring ----------------------------------------------------------------------------
STARTED_KEY = "agent_net.started"


def route_label(app: Flask, req: Request) -> str:
    """The URL rule that served this request; a path no rule serves becomes `unmatched`."""
    if req.url_rule is not None:
        return req.url_rule.rule
    # A 405 has no url_rule, but its path is a known (variable-free) rule: keep it.
    if any(rule.rule == req.path for rule in app.url_map.iter_rules()):
        return req.path
    return UNMATCHED_ROUTE


def method_label(req: Request) -> str:
    method = req.method
    return method if method in KNOWN_METHODS else OTHER_METHOD


class RequestRecorder:
    """Counts and times each answered request; label children are cached (bounded labels)."""

    def __init__(self, app: Flask) -> None:
        self._app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def record(self, req: Request, status: int) -> None:
        route = req.url_rule.rule if req.url_rule is not None else route_label(self._app, req)
        self.record_route(route, method_label(req), status, req.environ.get(STARTED_KEY))

    def record_route(self, route: str, method: str, status: int, started: float | None) -> None:
        """One answer of `route` (a rule), timed from `started` (perf_counter) if given."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = (REQUESTS.labels(*labels), REQUEST_DURATION.labels(*labels))
            self._children[key] = children
        children[0].inc()
        if started is not None:
            children[1].observe(time.perf_counter() - started)


def instrument(app: Flask, readings: Readings, runtime_dir: Path, *extra: Any) -> RequestRecorder:
    """Count and time every request the app answers, and serve `GET /metrics` (with the
    `extra` collectors); the recorder is returned for the routes answered outside Flask
    (worker/http/lean.py)."""
    collector = ReadingsCollector(readings, runtime_dir)
    recorder = RequestRecorder(app)
    inner = app.wsgi_app

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        # The clock starts before Flask builds its request context: that time counts too.
        environ[STARTED_KEY] = time.perf_counter()
        return inner(environ, start_response)

    app.wsgi_app = timed  # type: ignore[method-assign]

    @app.after_request
    def _record(response: Response) -> Response:
        recorder.record(request._get_current_object(), response.status_code)  # type: ignore[attr-defined]
        return response

    @app.get(METRICS_ROUTE)
    def metrics() -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(encoder(scrape_registry(collector, *extra)), content_type=content_type)

    return recorder
