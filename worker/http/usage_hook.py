"""Usage recording for job routes: one call at the end of a job, two around it.

    job = job_started(agent, model)          # the residency loop never unloads it now
    try: ... stream the reply ...
    finally: job_finished(job)
    record_usage(agent, model, prompt_tokens, completion_tokens)

The store (worker/residency/usage.py, SQLite) opens lazily, once per process, at the
path `configure()` was given (create_app gives USAGE_DB); without one, at the path the
environment's settings name. Recording never fails a job: a database error is logged
(WARNING, once per kind of error) and the call returns.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

from worker.residency.usage import UsageStore

log = logging.getLogger("agent_net.usage")
_lock = threading.Lock()
_path: Path | None = None
_store: UsageStore | None = None
_logged: set[str] = set()


def configure(path: Path) -> None:
    """Use the database at `path` from the next call on (in this process)."""
    global _path, _store
    with _lock:
        if _path != Path(path):
            if _store is not None:
                _store.close()
            _path, _store = Path(path), None


def store() -> UsageStore:
    """This process's store, opened on first use."""
    global _path, _store
    with _lock:
        if _store is None:
            if _path is None:
                from worker.config import load_settings

                _path = load_settings(os.environ).usage_db_path
            _store = UsageStore(_path)
        return _store


def _failed(what: str, error: Exception) -> None:
    key = f"{what}:{type(error).__name__}"
    if key not in _logged:
        _logged.add(key)
        log.warning("usage_%s_failed error=%s detail=%r", what, type(error).__name__, str(error))


def record_usage(agent: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
    """One finished job of `agent` on `model` and its token counts."""
    try:
        store().record(agent, model, prompt_tokens, completion_tokens)
    except (sqlite3.Error, OSError) as error:
        _failed("record", error)


def job_started(agent: str, model: str) -> int | None:
    """Mark a job running on `model`; its id for job_finished (None if not recorded)."""
    try:
        return store().job_started(agent, model)
    except (sqlite3.Error, OSError) as error:
        _failed("job_started", error)
        return None


def job_finished(job_id: int | None) -> None:
    """The job `job_started` returned is over (its model may be unloaded again)."""
    if job_id is None:
        return
    try:
        store().job_finished(job_id)
    except (sqlite3.Error, OSError) as error:
        _failed("job_finished", error)
