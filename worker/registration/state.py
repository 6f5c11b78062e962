"""Registration state per orchestrator, shared by the registrar and the HTTP workers.

The registrar writes `<runtime_dir>/registration.json` atomically (temporary file, then
`os.replace`) on every change; `/readyz` and metrics read it. It never holds a secret:
only orchestrator URLs, capability names, times, counts and short error reasons.
BYOC entries are under `orchestrators`; live runners (one per orchestrator and runner
capability) under `live_runners`, with the runner id and the status last sent (never the
heartbeat secret, never runner_url).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from worker.runtime import write_json_atomically

STATE_FILE = "registration.json"
log = logging.getLogger("agent_net.registration")


@dataclass
class OrchestratorState:
    """What the registrar knows about one orchestrator."""

    orchestrator: str
    capability: str
    registered: bool = False
    last_success: float | None = None
    last_attempt: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


@dataclass
class LiveRunnerState:
    """What the registrar knows about one live runner at one orchestrator."""

    orchestrator: str
    capability: str
    app: str
    runner_id: str | None = None
    registered: bool = False
    supported: bool | None = None  # False: the orchestrator has no live runners (404)
    status_sent: str | None = None
    status_reason: str | None = None
    last_heartbeat: float | None = None  # Unix time of the last accepted heartbeat
    heartbeat_interval_seconds: float | None = None
    heartbeat_ttl_seconds: float | None = None  # the orchestrator drops it after this long
    last_attempt: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0


def _read_document(runtime_dir: Path) -> dict[str, Any]:
    try:
        text = (Path(runtime_dir) / STATE_FILE).read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _entries(document: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = document.get(key)
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict)]


def read_registration_state(runtime_dir: Path) -> list[dict[str, Any]]:
    """One dict per orchestrator (BYOC), in configuration order; [] when nothing was written."""
    return _entries(_read_document(runtime_dir), "orchestrators")


def read_live_runner_state(runtime_dir: Path) -> list[dict[str, Any]]:
    """One dict per (orchestrator, live runner); [] when none."""
    return _entries(_read_document(runtime_dir), "live_runners")


def write_registration_state(
    runtime_dir: Path,
    states: list[OrchestratorState],
    runners: list[LiveRunnerState] | None = None,
) -> None:
    """Replace the state file at once, so a reader never sees half a document."""
    document = {
        "orchestrators": [asdict(state) for state in states],
        "live_runners": [asdict(runner) for runner in runners or []],
    }
    write_json_atomically(Path(runtime_dir) / STATE_FILE, document)


@dataclass
class StateFile:
    """Thread-safe holder of every orchestrator's state, written through on each change."""

    runtime_dir: Path
    states: list[OrchestratorState]
    runners: list[LiveRunnerState] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._flush()

    def update(self, index: int, **changes: Any) -> OrchestratorState:
        """Apply `changes` to orchestrator `index`, write the file, return a copy."""
        with self._lock:
            state = self.states[index]
            for name, value in changes.items():
                if not hasattr(state, name):
                    raise AttributeError(name)
                setattr(state, name, value)
            self._flush()
            return OrchestratorState(**asdict(state))

    def update_runner(self, index: int, **changes: Any) -> LiveRunnerState:
        """Apply `changes` to live runner `index`, write the file, return a copy."""
        with self._lock:
            runner = self.runners[index]
            for name, value in changes.items():
                if not hasattr(runner, name):
                    raise AttributeError(name)
                setattr(runner, name, value)
            self._flush()
            return LiveRunnerState(**asdict(runner))

    def snapshot(self) -> list[OrchestratorState]:
        with self._lock:
            return [OrchestratorState(**asdict(state)) for state in self.states]

    def _flush(self) -> None:
        # Losing a state update must never stop registration itself.
        try:
            write_registration_state(self.runtime_dir, self.states, self.runners)
        except OSError as exc:
            log.warning(
                "registration_state_write_failed path=%s error=%s",
                self.runtime_dir / STATE_FILE,
                type(exc).__name__,
            )
