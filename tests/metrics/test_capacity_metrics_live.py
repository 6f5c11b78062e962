"""Capacity, refusals at capacity and the agents' models on disk in `/metrics`, from the
real worker (gunicorn, two processes) over the stand-ins."""

from __future__ import annotations

from tests.helpers.processes import capacity_slots_held, wait_for
from tests.metrics.scrape import scrape, value
from tests.standins.nvml.build import FakeNvml
from tests.standins.ollama_api import OllamaStandIn, default_models

MODEL = "codellama:34b-instruct-q4_k_m"
AGENT = "agent-net-llm"
JOBS = {"pool": "jobs", "agent": ""}
AGENT_POOL = {"pool": "agent", "agent": AGENT}


def test_pools_refusals_and_models_on_disk(
    start_worker, fake_nvml: FakeNvml, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url, "CAPABILITY_CAPACITY": "2"}, nvml=fake_nvml)
    samples = scrape(worker.url)
    assert value(samples, "agent_net_capacity_slots", **JOBS) == 2
    assert value(samples, "agent_net_capacity_slots", **AGENT_POOL) == 4  # the agent default
    assert value(samples, "agent_net_capacity_slots_in_use", **JOBS) == 0
    # every pool's refusal counter is there from 0, whichever process answers
    assert value(samples, "agent_net_capacity_refusals_total", **JOBS) == 0
    assert value(samples, "agent_net_capacity_refusals_total", **AGENT_POOL) == 0
    assert value(samples, "agent_net_agent_model_on_disk", agent=AGENT, model=MODEL) == 1

    with capacity_slots_held(worker, 2):
        assert value(scrape(worker.url), "agent_net_capacity_slots_in_use", **JOBS) == 2
        statuses = [worker.check()[0] for _ in range(3)]
    assert statuses == [503, 503, 503]
    samples = scrape(worker.url)
    assert value(samples, "agent_net_capacity_refusals_total", **JOBS) == 3  # both processes
    assert value(samples, "agent_net_capacity_slots_in_use", **JOBS) == 0

    ollama.set_models([m for m in default_models() if m["name"] != MODEL])
    wait_for(
        lambda: (
            value(scrape(worker.url), "agent_net_agent_model_on_disk", agent=AGENT, model=MODEL)
            == 0
        ),
        15,
        what="the model reported missing",
    )
