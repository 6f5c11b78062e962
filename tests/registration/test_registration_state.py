"""The registration state file: atomic, complete, shaped for /readyz."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from worker.registration.state import (
    STATE_FILE,
    OrchestratorState,
    StateFile,
    read_registration_state,
)

KEYS = {
    "orchestrator",
    "capability",
    "registered",
    "last_success",
    "last_attempt",
    "last_error",
    "consecutive_failures",
}


def test_no_file_reads_as_no_orchestrators(tmp_path: Path) -> None:
    assert read_registration_state(tmp_path) == []
    assert read_registration_state(tmp_path / "missing-dir") == []


def test_a_damaged_file_reads_as_no_orchestrators(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text('{"orchestrators": [')
    assert read_registration_state(tmp_path) == []


def test_state_is_written_at_once_and_on_every_change(tmp_path: Path) -> None:
    state = StateFile(
        tmp_path,
        [
            OrchestratorState("https://a:8935", "agent-net-a"),
            OrchestratorState("https://b:8935", "agent-net-b"),
        ],
    )
    first = read_registration_state(tmp_path)
    assert [entry["orchestrator"] for entry in first] == ["https://a:8935", "https://b:8935"]
    assert all(set(entry) == KEYS for entry in first)
    assert first[0]["registered"] is False and first[0]["consecutive_failures"] == 0

    state.update(1, registered=True, last_success=123.5, last_error=None)
    second = read_registration_state(tmp_path)
    assert second[1]["registered"] is True and second[1]["last_success"] == 123.5
    assert second[0] == first[0]
    assert list(tmp_path.iterdir()) == [tmp_path / STATE_FILE]  # no temporary left behind


def test_unknown_fields_are_refused(tmp_path: Path) -> None:
    state = StateFile(tmp_path, [OrchestratorState("https://a:8935", "agent-net")])
    with pytest.raises(AttributeError):
        state.update(0, secret="x")


def test_readers_never_see_a_partial_document(tmp_path: Path) -> None:
    states = [OrchestratorState(f"https://orch-{i}:8935", "agent-net") for i in range(20)]
    state = StateFile(tmp_path, states)
    done = threading.Event()
    bad: list[int] = []

    def read_forever() -> None:
        while not done.is_set():
            entries = read_registration_state(tmp_path)
            if len(entries) != 20:
                bad.append(len(entries))

    readers = [threading.Thread(target=read_forever) for _ in range(2)]
    for reader in readers:
        reader.start()
    for round_ in range(300):
        state.update(round_ % 20, consecutive_failures=round_, last_error="x" * (round_ % 97))
    done.set()
    for reader in readers:
        reader.join()
    assert bad == []
    assert read_registration_state(tmp_path)[19]["consecutive_failures"] == 299
