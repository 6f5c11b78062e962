"""A clean stop of the sampler logs no warning, even with an Ollama read in flight.

The sampler used to close its Ollama client while the Ollama thread was still reading:
that read then failed with RuntimeError ("the client has been closed"), and a clean
SIGTERM logged `source_unavailable source=ollama reason='unexpected RuntimeError'`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.processes import wait_for
from tests.standins.ollama_api import OllamaStandIn
from worker.config import load_settings
from worker.sampling.process import Sampler


@pytest.fixture
def slow_ollama() -> Iterator[OllamaStandIn]:
    """Every API answer takes 0.3 s: one catalogue read (three calls) about 0.9 s."""
    server = OllamaStandIn().start()
    server.set_mode("slow", delay=0.3)
    yield server
    server.stop()


def test_a_stop_during_an_ollama_read_waits_for_it_and_logs_no_warning(
    slow_ollama: OllamaStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        {
            "OLLAMA_HOST": slow_ollama.url,
            "SAMPLE_INTERVAL_SECONDS": "0.05",
            "AGENT_NET_DATA_DIR": str(tmp_path / "data"),
        }
    )
    sampler = Sampler(settings, tmp_path)
    with caplog.at_level(logging.INFO, logger="agent_net"):
        sampler.start()
        try:
            wait_for(lambda: sampler.ollama.state.attempts >= 1, 10, what="a first read")
            wait_for(lambda: sampler.ollama.state.in_flight_since, 5, what="a read in flight")
            caplog.clear()  # NVML is missing here: its warning came at the start
        finally:
            sampler.stop()
        # The read in flight has ended (whether stop waited for it or not).
        wait_for(lambda: sampler.ollama.state.in_flight_since is None, 5, what="the read")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= 30] == []
    assert sampler.ollama.state.error is None  # the read in flight ended as a good read
    assert sampler.ollama.state.attempts >= 2
