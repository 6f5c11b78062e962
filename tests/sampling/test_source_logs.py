"""A source's log lines: one WARNING per outage, whatever its reasons, then a recovery."""

from __future__ import annotations

import logging

import pytest

from worker.sampling.readings import SourceUnavailable
from worker.sampling.source import SourceSampler


def test_one_warning_per_outage_and_an_info_line_when_its_reason_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = iter(["reset", "refused", "refused", None, "refused"])

    def read() -> str:
        reason = next(outcomes)
        if reason is not None:
            raise SourceUnavailable(f"Ollama {reason}")
        return "catalogue"

    source = SourceSampler("ollama", read, interval=1, timeout=1)
    with caplog.at_level(logging.INFO, logger="agent_net.sampler"):
        for _ in range(5):
            source.sample_once()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "source_unavailable source=ollama reason='Ollama reset'"),
        ("INFO", "source_reason_changed source=ollama reason='Ollama refused'"),
        ("INFO", "source_recovered source=ollama"),
        ("WARNING", "source_unavailable source=ollama reason='Ollama refused'"),
    ]
    assert source.state.error == "Ollama refused"
