"""Usage per agent and model in SQLite: requests, tokens, last use, and jobs running now.

Every gunicorn worker process writes here (through worker/http/usage_hook.py) and the
sampler's residency loop reads it, so it is a file on a volume (AGENT_NET_DATA_DIR) that
survives restarts. SQLite in WAL mode lets readers and one writer work at once; every
transaction is a few statements long and waits at most `busy_timeout` for another
process's write. A job's row carries its process id and that process's start time: rows
of a process that died (or whose pid was reused) are not counted and are swept away, and
rows older than `job_expiry` are ignored in any case.

One store (connection) per process: `UsageStore` notices a fork and reopens.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

WINDOWS: dict[str, float] = {"5m": 300.0, "1h": 3600.0, "1d": 86_400.0}
RETENTION_SECONDS = 7 * 86_400.0  # request rows kept for windows; totals are kept forever
DEFAULT_JOB_EXPIRY_SECONDS = 6 * 3600.0
BUSY_TIMEOUT_SECONDS = 2.0
SCHEMA_VERSION = 1

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS requests (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        agent TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL)""",
    # covering: the per-interval query reads the index alone
    "CREATE INDEX IF NOT EXISTS requests_at"
    " ON requests (at, model, prompt_tokens, completion_tokens)",
    """CREATE TABLE IF NOT EXISTS totals (
        agent TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        first_at REAL NOT NULL,
        last_at REAL NOT NULL,
        PRIMARY KEY (agent, model))""",
    """CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        model TEXT NOT NULL,
        pid INTEGER NOT NULL,
        pid_start TEXT,
        started_at REAL NOT NULL)""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def model_key(name: str) -> str:
    """Ollama's name for a model: a name without a tag means `:latest`."""
    name = name.strip()
    return name if ":" in name else f"{name}:latest"


class Tokens(NamedTuple):
    prompt: int
    completion: int


@dataclass(frozen=True)
class ModelUsage:
    """One model's usage as the residency loop and /gpu-check see it."""

    model: str
    requests: dict[str, int] = field(default_factory=dict)  # by window name, and "hot"
    tokens_last_hour: Tokens = field(default_factory=lambda: Tokens(0, 0))
    last_used: float | None = None  # Unix time of the last recorded request
    running_jobs: int = 0

    def requests_in(self, window: str) -> int:
        return self.requests.get(window, 0)


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (field 22 of /proc/PID/stat), None if unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = raw.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UsageStore:
    """The usage database at `path` (created with its directory if missing)."""

    def __init__(
        self,
        path: Path,
        *,
        job_expiry: float = DEFAULT_JOB_EXPIRY_SECONDS,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        clock: Any = time.time,
    ) -> None:
        self.path = Path(path)
        self.job_expiry = job_expiry
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._pid = -1
        self._pid_start: str | None = None
        self._connection: sqlite3.Connection | None = None
        self._open()

    # --- connection ----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,  # autocommit; writes take BEGIN IMMEDIATE themselves
            check_same_thread=False,  # guarded by self._lock
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        with _transaction(connection):
            for statement in _SCHEMA:
                connection.execute(statement)
        self._connection, self._pid = connection, os.getpid()
        self._pid_start = process_start(self._pid)  # constant for the process's life
        return connection

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._connection
            if connection is None or self._pid != os.getpid():  # closed, or a forked child
                connection = self._open()
            if write:
                with _transaction(connection):
                    yield connection
            else:
                yield connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    # --- writes --------------------------------------------------------------------------
    def record(
        self,
        agent: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        at: float | None = None,
    ) -> None:
        """One finished request of `agent` on `model` with its token counts."""
        when = self._clock() if at is None else float(at)
        model = model_key(model)
        prompt, completion = max(0, int(prompt_tokens)), max(0, int(completion_tokens))
        with self._db(write=True) as db:
            db.execute(
                "INSERT INTO requests (at, agent, model, prompt_tokens, completion_tokens)"
                " VALUES (?, ?, ?, ?, ?)",
                (when, agent, model, prompt, completion),
            )
            db.execute(
                "INSERT INTO totals VALUES (?, ?, 1, ?, ?, ?, ?) ON CONFLICT (agent, model) DO"
                " UPDATE SET requests = requests + 1,"
                " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                " completion_tokens = completion_tokens + excluded.completion_tokens,"
                " first_at = min(first_at, excluded.first_at),"
                " last_at = max(last_at, excluded.last_at)",
                (agent, model, prompt, completion, when, when),
            )

    def job_started(self, agent: str, model: str) -> int:
        """A job of `agent` on `model` runs in this process from now; its id."""
        # One statement, atomic on its own in autocommit mode: no explicit transaction.
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO jobs (agent, model, pid, pid_start, started_at) VALUES (?,?,?,?,?)",
                (agent, model_key(model), self._pid, self._pid_start, self._clock()),
            )
            return int(cursor.lastrowid or 0)

    def job_finished(self, job_id: int) -> None:
        with self._db() as db:  # one statement: atomic in autocommit mode
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def prune(self, now: float | None = None) -> int:
        """Forget request rows past the retention and jobs of dead processes; rows removed."""
        now = self._clock() if now is None else now
        dead = [row[0] for row in self._job_rows() if not self._job_live(row, now)]
        with self._db(write=True) as db:
            removed = db.execute(
                "DELETE FROM requests WHERE at < ?", (now - RETENTION_SECONDS,)
            ).rowcount
            db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id in dead])
        return removed + len(dead)

    # --- reads ---------------------------------------------------------------------------
    def requests(self, model: str, window_seconds: float, now: float | None = None) -> int:
        """Requests recorded for `model` in the last `window_seconds`."""
        since = (self._clock() if now is None else now) - window_seconds
        with self._db() as db:
            row = db.execute(
                "SELECT count(*) FROM requests WHERE model = ? AND at >= ?",
                (model_key(model), since),
            ).fetchone()
        return int(row[0])

    def tokens(self, model: str, window_seconds: float, now: float | None = None) -> Tokens:
        """Prompt and completion tokens for `model` in the last `window_seconds`."""
        since = (self._clock() if now is None else now) - window_seconds
        with self._db() as db:
            row = db.execute(
                "SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)"
                " FROM requests WHERE model = ? AND at >= ?",
                (model_key(model), since),
            ).fetchone()
        return Tokens(int(row[0]), int(row[1]))

    def last_used(self, model: str) -> float | None:
        """Unix time of the last request recorded for `model` (any agent), or None."""
        with self._db() as db:
            row = db.execute(
                "SELECT max(last_at) FROM totals WHERE model = ?", (model_key(model),)
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def running_jobs(self, now: float | None = None) -> dict[str, int]:
        """Jobs running now per model, counting only live processes' fresh rows."""
        now = self._clock() if now is None else now
        counts: dict[str, int] = {}
        for row in self._job_rows():
            if self._job_live(row, now):
                counts[row[1]] = counts.get(row[1], 0) + 1
        return counts

    def models(
        self,
        hot_window: float,
        now: float | None = None,
        windows: dict[str, float] | None = None,
    ) -> dict[str, ModelUsage]:
        """Every model with usage: requests per window (default WINDOWS) and in `hot_window`
        (as "hot"). Rows older than the longest window are not read."""
        now = self._clock() if now is None else now
        windows = {**(WINDOWS if windows is None else windows), "hot": hot_window}
        names = list(windows)
        since = now - max(windows.values())
        counts = ", ".join(f"sum(at >= {now - windows[name]!r})" for name in names)
        with self._db() as db:
            rows = db.execute(
                f"SELECT model, {counts},"  # noqa: S608 (numbers formatted here, no input)
                f" sum(CASE WHEN at >= {now - 3600.0!r} THEN prompt_tokens ELSE 0 END),"
                f" sum(CASE WHEN at >= {now - 3600.0!r} THEN completion_tokens ELSE 0 END)"
                " FROM requests WHERE at >= ? GROUP BY model",
                (since,),
            ).fetchall()
            last = db.execute("SELECT model, max(last_at) FROM totals GROUP BY model").fetchall()
        running = self.running_jobs(now)
        usage: dict[str, dict[str, Any]] = {}
        for row in rows:
            usage[row[0]] = {
                "requests": {name: int(row[1 + i] or 0) for i, name in enumerate(names)},
                "tokens_last_hour": Tokens(int(row[-2] or 0), int(row[-1] or 0)),
            }
        for model, last_at in last:
            usage.setdefault(model, {})["last_used"] = last_at
        for model, jobs in running.items():
            usage.setdefault(model, {})["running_jobs"] = jobs
        return {model: ModelUsage(model, **values) for model, values in usage.items()}

    def summary(self, hot_window: float = 900.0, now: float | None = None) -> dict[str, Any]:
        """Usage per model as plain JSON: requests per window, tokens, last use, jobs."""
        return {
            model: {
                "requests": {name: usage.requests_in(name) for name in WINDOWS},
                "tokens_last_hour": usage.tokens_last_hour._asdict(),
                "last_used": usage.last_used,
                "running_jobs": usage.running_jobs,
            }
            for model, usage in sorted(self.models(hot_window, now).items())
        }

    def _job_rows(self) -> list[tuple[int, str, int, str | None, float]]:
        with self._db() as db:
            return db.execute("SELECT id, model, pid, pid_start, started_at FROM jobs").fetchall()

    def _job_live(self, row: Iterable[Any], now: float) -> bool:
        _, _, pid, pid_start, started_at = row
        if now - started_at > self.job_expiry or not _pid_alive(pid):
            return False
        return pid_start is None or process_start(pid) in (None, pid_start)


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
