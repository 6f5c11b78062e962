"""Shared fixtures: the NVML stand-in library, the Ollama stand-in, the real worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.helpers.processes import WorkerProcess
from tests.standins.nvml.build import FakeNvml, build_fake_nvml
from tests.standins.ollama_api import OllamaStandIn


@pytest.fixture(scope="session")
def fake_nvml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in libnvidia-ml.so.1, compiled once per session with the machine's cc."""
    return build_fake_nvml(tmp_path_factory.mktemp("fake_nvml"))


@pytest.fixture
def fake_nvml(fake_nvml_dir: Path, tmp_path: Path) -> FakeNvml:
    """A stand-in NVML setup whose scenario the test can switch while the worker runs."""
    return FakeNvml.create(fake_nvml_dir, tmp_path / "nvml", scenario="two_gpus")


@pytest.fixture
def no_nvml_dir(tmp_path: Path) -> Path:
    """An empty directory for LD_LIBRARY_PATH: no NVIDIA library can be found."""
    path = tmp_path / "no-nvml"
    path.mkdir()
    return path


@pytest.fixture
def ollama() -> Iterator[OllamaStandIn]:
    """A stand-in Ollama server on a free loopback port, in mode `ok`."""
    server = OllamaStandIn().start()
    yield server
    server.stop()


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(
    tmp_path: Path, no_nvml_dir: Path, request: pytest.FixtureRequest
) -> Iterator[StartWorker]:
    """Start `python -m worker` (real gunicorn); stopped, and its log shown on failure."""
    started: list[WorkerProcess] = []

    def start(
        env: Mapping[str, str] | None = None,
        nvml: FakeNvml | None = None,
        wait_ready: bool = True,
    ) -> WorkerProcess:
        merged = dict(env or {})
        lib_dir = no_nvml_dir
        if nvml is not None:
            merged.update({k: v for k, v in nvml.env({}).items() if k != "LD_LIBRARY_PATH"})
            lib_dir = nvml.lib_dir
        worker = WorkerProcess(merged, tmp_path / f"worker-{len(started)}.log", lib_dir)
        started.append(worker)
        return worker.start(wait_ready=wait_ready)

    yield start
    for worker in started:
        worker.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for worker in started:
            print(f"--- worker log {worker.log_path} ---\n{worker.logs()}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
