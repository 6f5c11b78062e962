"""Residency under the real worker: the Ollama stand-in's loaded set drives NVML's memory.

The sampler's residency loop reads the stand-in NVML (GPU 0's memory used follows the
stand-in Ollama's loaded set through `on_loaded_change`) and the usage database, which
the test writes from its own process as the gunicorn workers would (worker/http/
usage_hook.py). Every assertion is on what the stand-in saw (loads, unloads and their
keep_alive) and what the worker published; waits are generous deadlock guards only.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import ROOT, WorkerProcess, wait_for, worker_runtime_dir
from tests.metrics.scrape import scrape, value
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, ResidencyEvent
from worker.residency.usage import UsageStore

GIB = 2**30
MIB = 2**20
BASE_USED = 1 * GIB  # GPU 0 with nothing loaded; GPU 1 (L4) keeps its 1 GiB
L4_USED = 1 * GIB
WAIT = 20.0


def model(name: str, size: int = 10 * GIB, loaded: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-11-20T10:12:43Z",
        "size": size,
        "digest": name.encode().hex().ljust(64, "0")[:64],
        "details": {"family": "llama", "parameter_size": "7B", "quantization_level": "Q4_K_M"},
        "loaded": loaded,
        "size_vram": size,
        **extra,
    }


@pytest.fixture
def gpu(fake_nvml: FakeNvml) -> FakeNvml:
    fake_nvml.set_memory_used(0, BASE_USED)
    return fake_nvml


@pytest.fixture
def stand_in(gpu: FakeNvml) -> Iterator[OllamaStandIn]:
    """The Ollama stand-in; GPU 0's memory used is BASE_USED + what it has loaded."""
    server = OllamaStandIn(
        on_loaded_change=lambda loaded: gpu.set_memory_used(
            0, BASE_USED + sum(size for _, size in loaded)
        )
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def usage(data_dir: Path) -> Iterator[UsageStore]:
    """The worker's usage database, opened from the test process like a gunicorn worker."""
    store = UsageStore(data_dir / "usage.sqlite3")
    yield store
    store.close()


def env(ollama: OllamaStandIn, data_dir: Path, **settings: str) -> dict[str, str]:
    return {
        "OLLAMA_HOST": ollama.url,
        "AGENT_NET_DATA_DIR": str(data_dir),
        "RESIDENCY_INTERVAL_SECONDS": "0.3",
        "HOT_REQUESTS": "3",
        **settings,
    }


def report(worker: WorkerProcess) -> dict[str, Any]:
    readings = json.loads((worker_runtime_dir(worker) / "readings.json").read_text())
    return readings["residency"]


def runs_after(worker: WorkerProcess, runs: int) -> dict[str, Any]:
    """The report once the loop has run `runs` more intervals than it had."""
    start = report(worker)["runs"]
    return wait_for(
        lambda: (r := report(worker))["runs"] >= start + runs and r,
        WAIT,
        what=f"{runs} more residency runs",
    )


def gpu_check_model(worker: WorkerProcess, name: str) -> dict[str, Any]:
    status, body = worker.check()
    assert status == 200, body
    return next(m for m in body["models"] if m["name"] == name)


def events(ollama: OllamaStandIn, kind: str, name: str | None = None) -> list[ResidencyEvent]:
    return [e for e in ollama.residency() if e.kind == kind and name in (None, e.model)]


def generate(ollama: OllamaStandIn, name: str) -> None:
    """The next request an agent sends for `name` (a prompt, as the chat route would)."""
    body = json.dumps({"model": name, "prompt": "why is the sky blue", "stream": False})
    request = urllib.request.Request(
        f"{ollama.url}/api/generate", body.encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 200


def test_a_model_crossing_the_threshold_is_loaded_before_its_next_request(
    start_worker, gpu: FakeNvml, stand_in: OllamaStandIn, data_dir: Path, usage: UsageStore
) -> None:
    name = "coder:7b"
    stand_in.set_models([model(name, load_time=1.0)])
    worker = start_worker(env(stand_in, data_dir, OLLAMA_MODEL=name), nvml=gpu)
    for _ in range(2):
        usage.record("coder", name, 10, 20)
    runs_after(worker, 3)
    assert events(stand_in, "load") == []  # two requests: not hot yet
    shown = gpu_check_model(worker, name)
    assert (shown["hot"], shown["pinned"], shown["requests_last_hour"]) == (False, False, 2)
    assert shown["last_used"] == pytest.approx(usage.last_used(name))

    usage.record("coder", name, 10, 20)  # the third: hot
    (load,) = wait_for(lambda: events(stand_in, "load", name), WAIT, what="the hot model loads")
    assert load.keep_alive == math.inf  # RESIDENCY_KEEP_ALIVE=-1: kept until made room for
    wait_for(lambda: gpu_check_model(worker, name)["loaded"], WAIT, what="/gpu-check sees it")
    shown = gpu_check_model(worker, name)
    assert (shown["hot"], shown["requests_last_hour"]) == (True, 3)

    before = time.monotonic()
    generate(stand_in, name)
    (generation,) = stand_in.generations()[-1:]
    assert generation.started_at >= before
    assert events(stand_in, "load", name) == [load]  # no second load: it was resident
    assert load.at < generation.started_at
    assert "residency_load model=coder:7b reason=hot result=ok" in worker.logs()
    loads = "agent_net_residency_loads_total"

    def counted() -> object:
        got = scrape(worker.url)
        return value(got, loads, reason="hot", result="ok") and got

    samples = wait_for(counted, WAIT, what="the load counted in /metrics")
    assert value(samples, loads, reason="hot", result="ok") == 1
    unloads = "agent_net_residency_unloads_total"
    assert value(samples, unloads, reason="over_budget", result="ok") == 0
    budget = value(samples, "agent_net_residency_vram_budget_bytes")
    total = (81559 + 23034) * MIB  # the stand-in's H100 and L4
    assert budget == pytest.approx(0.9 * total, rel=1e-3)
    assert value(samples, "agent_net_residency_model_hot", model=name) == 1


def test_an_ollama_restart_rewarms_hot_models(
    start_worker, gpu: FakeNvml, stand_in: OllamaStandIn, data_dir: Path, usage: UsageStore
) -> None:
    hot, pinned, cold = "hot:1", "pinned:1", "cold:1"
    stand_in.set_models([model(hot), model(pinned), model(cold, loaded=True)])
    for _ in range(3):
        usage.record("a", hot, 1, 1)
    worker = start_worker(
        env(stand_in, data_dir, OLLAMA_MODEL=hot, RESIDENCY_PINNED=pinned), nvml=gpu
    )
    wait_for(lambda: {hot, pinned} <= {n for n, _ in stand_in.loaded_set()}, WAIT, what="warm")
    first = {e.model: e for e in events(stand_in, "load")}
    assert set(first) == {hot, pinned}

    stand_in.restart()  # forgets every loaded model, like a restarted `ollama serve`
    assert stand_in.loaded_set() == frozenset()
    restarted = time.monotonic()
    wait_for(
        lambda: {e.model for e in events(stand_in, "load") if e.at > restarted} == {hot, pinned},
        WAIT,
        what="hot and pinned models loaded again after the restart",
    )
    assert cold not in {n for n, _ in stand_in.loaded_set()}  # cold: not loaded again
    reasons = {e.model: e.reason for e in events(stand_in, "unload")}
    assert reasons == {hot: "restart", pinned: "restart", cold: "restart"}
    logs = worker.logs()
    assert "residency_load model=pinned:1 reason=pinned result=ok" in logs


def test_over_budget_unloads_the_coldest_idle_model_never_a_busy_or_pinned_one(
    start_worker, gpu: FakeNvml, stand_in: OllamaStandIn, data_dir: Path, usage: UsageStore
) -> None:
    names = ["pinned:1", "busy:1", "cold-old:1", "cold-new:1"]
    stand_in.set_models([model(name, loaded=True) for name in names])
    now = time.time()
    for age, name in zip((5000, 4000, 3000, 2000), names, strict=True):
        usage.record("a", name, 1, 1, at=now - age)  # pinned least recently used, then busy
    job = usage.job_started("a", "busy:1")  # this (live) process runs a job on it
    # 4 x 10 GiB loaded + 1 GiB + L4's 1 GiB = 43008 MiB; 35000 MiB fits once one leaves
    worker = start_worker(
        env(
            stand_in,
            data_dir,
            OLLAMA_MODEL="cold-new:1",
            RESIDENCY_PINNED="pinned:1",
            RESIDENCY_MANAGE_ALL="true",
            VRAM_BUDGET="35000",
        ),
        nvml=gpu,
    )
    wait_for(lambda: events(stand_in, "unload"), WAIT, what="an unload")
    runs_after(worker, 4)  # and then nothing more: it fits
    assert [(e.model, e.keep_alive) for e in events(stand_in, "unload")] == [("cold-old:1", 0.0)]
    published = report(worker)
    assert published["budget_bytes"] == 35000 * MIB
    assert published["vram_used_bytes"] <= published["budget_bytes"]
    assert "residency_unload model=cold-old:1 reason=over_budget result=ok" in worker.logs()

    # The busy model's job ends; now it is the coldest idle one when memory is short again.
    usage.job_finished(job)
    gpu_extra = 10 * GIB  # something else takes memory: over budget again
    stand_in.on_loaded_change = lambda loaded: gpu.set_memory_used(
        0, BASE_USED + gpu_extra + sum(size for _, size in loaded)
    )
    stand_in.on_loaded_change(stand_in.loaded_set())
    wait_for(lambda: len(events(stand_in, "unload")) >= 2, WAIT, what="a second unload")
    runs_after(worker, 4)
    assert [e.model for e in events(stand_in, "unload")] == ["cold-old:1", "busy:1"]
    assert "pinned:1" in {n for n, _ in stand_in.loaded_set()}
    unloads = "agent_net_residency_unloads_total"
    samples = scrape(worker.url)  # unloads are counted before the run that made them ends
    assert value(samples, unloads, reason="over_budget", result="ok") == 2


def test_models_no_agent_serves_are_left_alone(
    start_worker, gpu: FakeNvml, stand_in: OllamaStandIn, data_dir: Path, usage: UsageStore
) -> None:
    stand_in.set_models(
        [model("operator:1", loaded=True), model("served:1", loaded=True), model("mine:1")]
    )
    for _ in range(5):
        usage.record("a", "operator:1", 1, 1)  # hot, but no agent serves it here
    # 20 GiB loaded + 2 GiB: over a 10000 MiB budget even once served:1 leaves
    worker = start_worker(
        env(stand_in, data_dir, OLLAMA_MODEL="served:1", VRAM_BUDGET="10000"), nvml=gpu
    )
    wait_for(lambda: events(stand_in, "unload"), WAIT, what="an unload")
    runs_after(worker, 4)
    assert [e.model for e in events(stand_in, "unload")] == ["served:1"]
    assert events(stand_in, "load") == []
    assert "operator:1" in {n for n, _ in stand_in.loaded_set()}
    shown = gpu_check_model(worker, "operator:1")
    assert (shown["hot"], shown["requests_last_hour"]) == (True, 5)
    operator = next(m for m in report(worker)["models"] if m["name"] == "operator:1")
    assert operator["managed"] is False and "left alone" in operator["note"]


def test_usage_survives_a_worker_restart(
    start_worker, gpu: FakeNvml, stand_in: OllamaStandIn, data_dir: Path, tmp_path: Path
) -> None:
    name = "coder:7b"
    stand_in.set_models([model(name, loaded=True)])
    settings = env(stand_in, data_dir, OLLAMA_MODEL=name, HOT_REQUESTS="10")
    first = start_worker(settings, nvml=gpu)
    # A process with the worker's settings and no explicit path, as a gunicorn worker:
    # the hook finds the database under AGENT_NET_DATA_DIR by itself.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from worker.http.usage_hook import record_usage\n"
            "for _ in range(4): record_usage('coder', 'coder:7b', 3, 5)",
        ],
        cwd=ROOT,
        env={**first.env},
        check=True,
        timeout=60,
    )
    wait_for(lambda: gpu_check_model(first, name)["requests_last_hour"] == 4, WAIT, what="4")
    first.stop()
    assert (data_dir / "usage.sqlite3").is_file()

    second = start_worker(settings, nvml=gpu)
    wait_for(lambda: report(second)["runs"] >= 1, WAIT, what="a residency run")
    shown = gpu_check_model(second, name)
    assert shown["requests_last_hour"] == 4
    assert shown["last_used"] is not None
    assert worker_runtime_dir(second) != worker_runtime_dir(first)  # only the data dir stayed


def test_a_hot_embedding_model_is_loaded_through_the_embed_route(
    start_worker, gpu: FakeNvml, stand_in: OllamaStandIn, data_dir: Path, usage: UsageStore
) -> None:
    """Ollama's /api/generate refuses a model without `completion` (`"..." does not support
    generate`), so an embedding model is loaded through /api/embed with no input."""
    name = "nomic-embed-text:latest"
    stand_in.set_models([model(name, size=GIB, capabilities=["embedding"])])
    worker = start_worker(env(stand_in, data_dir, OLLAMA_MODEL=name), nvml=gpu)
    for _ in range(3):
        usage.record("embedder", name, 5, 0)
    (load,) = wait_for(lambda: events(stand_in, "load", name), WAIT, what="the hot model loads")
    assert load.keep_alive == math.inf
    assert {"model": name, "keep_alive": -1} in stand_in.bodies("/api/embed")
    assert [b for b in stand_in.bodies("/api/generate") if b.get("model") == name] == []
    assert "residency_load model=nomic-embed-text:latest reason=hot result=ok" in worker.logs()
