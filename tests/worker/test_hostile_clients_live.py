"""Slow and silent clients must not starve a normal client of the real worker."""

from __future__ import annotations

from tests.helpers.hostile import HostileClients
from tests.helpers.processes import http, post_json
from tests.standins.ollama_api import OllamaStandIn

NORMAL_REQUESTS = 10
PROMPT_SECONDS = 5.0  # generous: a served request takes milliseconds


def test_normal_clients_are_served_while_hostile_clients_hold_connections(
    start_worker, ollama: OllamaStandIn
) -> None:
    worker = start_worker({"OLLAMA_HOST": ollama.url})
    hostile = HostileClients("127.0.0.1", worker.port, "/gpu-check", slow_bodies=40, silent=100)
    try:
        hostile.open()
        for number in range(NORMAL_REQUESTS):
            # A new connection each time; post_json gives up after PROMPT_SECONDS.
            status, document = post_json(
                f"{worker.url}/gpu-check",
                {"agent_id": f"normal-{number}"},
                timeout=PROMPT_SECONDS,
            )
            assert status == 200 and document["agent_id"] == f"normal-{number}"
        assert http("GET", f"{worker.url}/readyz", timeout=PROMPT_SECONDS)[0] == 200
    finally:
        hostile.close()
    assert worker.check()[0] == 200
