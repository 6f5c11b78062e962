"""One sampler per container, under real gunicorn: NVML once, one reading for all, restarts."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from tests.helpers.processes import http, wait_for
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn


def readyz(worker) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    status, _, raw = http("GET", f"{worker.url}/readyz")
    return status, json.loads(raw)


def answers_from_every_process(worker, processes: int) -> dict[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """One /readyz answer from each of the `processes` gunicorn worker processes."""
    seen: dict[int, dict[str, Any]] = {}

    def collect() -> bool:
        for _ in range(10):
            body = readyz(worker)[1]
            seen[body["worker_pid"]] = body
        return len(seen) == processes

    wait_for(collect, 15, what=f"answers from all {processes} worker processes")
    return seen


def nvml_init_pids(nvml: FakeNvml) -> list[int]:
    return [
        int(pid)
        for symbol, pid in (line.split() for line in nvml.calls())
        if symbol == "nvmlInitWithFlags"
    ]


def test_nvml_is_initialised_once_per_container_by_the_sampler_alone(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "FAKE_NVML_CALL_LOG_PID": "1", "WORKER_WORKERS": "3"},
        nvml=fake_nvml,
    )
    answers = answers_from_every_process(worker, 3)
    samplers = {body["sampler"]["pid"] for body in answers.values()}
    assert len(samplers) == 1 and None not in samplers
    sampler = samplers.pop()
    for _ in range(20):
        assert worker.check()[0] == 200
    assert nvml_init_pids(fake_nvml) == [sampler]  # once, in the sampler process
    assert worker.process is not None and sampler != worker.process.pid
    assert sampler not in answers  # not an HTTP worker either
    touched = {int(line.split()[1]) for line in fake_nvml.calls()}
    assert touched == {sampler}  # no other process made any NVML call at all


def test_every_process_answers_the_same_reading_and_a_frozen_sampler_shows_stale(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "WORKER_WORKERS": "3", "SAMPLE_INTERVAL_SECONDS": "0.2"},
        nvml=fake_nvml,
    )
    sampler = readyz(worker)[1]["sampler"]["pid"]
    os.kill(sampler, signal.SIGSTOP)  # the readings file stops changing
    try:
        answers = answers_from_every_process(worker, 3)
        read_at = {
            (body["sources"]["nvml"]["read_at"], body["sources"]["ollama"]["read_at"])
            for body in answers.values()
        }
        assert len(read_at) == 1, read_at  # every process serves the very same reading
        documents = set()
        for _ in range(30):
            status, body = worker.check()
            assert status == 200
            documents.add(json.dumps([body["gpus"], body["models"]], sort_keys=True))
        assert len(documents) == 1
        # stale_after is 2 s at this interval; the sampler is alive but publishes nothing.
        stale = wait_for(
            lambda: (doc := worker.check()[1])["sources"]["nvml"]["status"] == "stale" and doc,
            10,
            what="stale readings",
        )
        assert stale["status"] == "degraded" and stale["gpu_count"] == 2  # last data shown
        assert stale["sources"]["nvml"]["reason"].startswith("last reading is ")
    finally:
        os.kill(sampler, signal.SIGCONT)
    wait_for(lambda: worker.check()[1]["status"] == "success", 10, what="fresh again")


def test_a_killed_sampler_is_restarted_and_readyz_says_so_meanwhile(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker(
        {"OLLAMA_HOST": ollama.url, "FAKE_NVML_CALL_LOG_PID": "1"}, nvml=fake_nvml
    )
    first = readyz(worker)[1]["sampler"]["pid"]
    os.kill(first, signal.SIGKILL)
    down = wait_for(
        lambda: (answer := readyz(worker))[0] == 503 and answer[1], 10, what="readyz 503"
    )
    assert down["status"] == "sampler_down" and down["sampler"]["running"] is False
    assert down["sources"]["nvml"]["status"] == "stale"
    status, body = worker.check()
    assert status == 200 and body["status"] == "degraded"
    assert "the sampler process is not running" in " ".join(body["reasons"])
    back = wait_for(
        lambda: (answer := readyz(worker))[0] == 200 and answer[1], 15, what="readyz 200 again"
    )
    second = back["sampler"]["pid"]
    assert second not in (first, None)
    wait_for(lambda: worker.check()[1]["status"] == "success", 10, what="success again")
    logs = worker.logs()
    assert (
        f"ERROR agent_net.server sampler_exited pid={first} signal=SIGKILL action=restart" in logs
    )
    assert logs.count("sampler_exited") == 1
    assert sorted(set(nvml_init_pids(fake_nvml))) == sorted({first, second})
