"""Fixtures for the live container tests: a real Docker engine (provisioned when needed)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from provision_engine import (
    Engine,
    EngineUnavailable,
    ensure_base_image,
    ensure_engine,
    stop_engine,
)


@pytest.fixture(scope="session")
def docker_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A Docker engine with `python:3.11-slim`; fails (never skips) when none can be had."""
    started = time.monotonic()
    try:
        engine = ensure_engine()
    except EngineUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        how = ensure_base_image(engine)
    except EngineUnavailable as exc:
        stop_engine(engine)
        pytest.fail(str(exc), pytrace=False)
    line = (
        f"[docker engine] {engine.env['DOCKER_HOST']} "
        f"({'started by this run' if engine.started_pid else 'already running'}), "
        f"python:3.11-slim {how}, ready in {time.monotonic() - started:.1f}s"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
    else:
        print(line, file=sys.stderr)
    yield engine
    stop_engine(engine)
