"""The usage store: windows, tokens, last use, jobs of live processes only, across processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT
from worker.http import usage_hook
from worker.residency.usage import UsageStore, model_key

NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path):
    opened = UsageStore(tmp_path / "data" / "usage.sqlite3", clock=lambda: NOW)
    yield opened
    opened.close()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_model_names_without_a_tag_mean_latest() -> None:
    assert model_key("llama3") == "llama3:latest"
    assert model_key("llama3.2:3b") == "llama3.2:3b"


def test_requests_and_tokens_per_window(store: UsageStore) -> None:
    store.record("a", "m:1", 10, 100, at=NOW - 60)  # in every window
    store.record("b", "m:1", 20, 200, at=NOW - 1800)  # last hour and day
    store.record("a", "m:1", 30, 300, at=NOW - 7200)  # last day
    store.record("a", "other:1", 1, 1, at=NOW - 60)
    assert store.requests("m:1", 300) == 1
    assert store.requests("m:1", 3600) == 2
    assert store.requests("m:1", 86_400) == 3
    assert store.tokens("m:1", 3600) == (30, 300)
    assert store.last_used("m:1") == NOW - 60
    assert store.last_used("never:1") is None
    summary = store.summary()
    assert summary["m:1"]["requests"] == {"5m": 1, "1h": 2, "1d": 3}
    assert summary["m:1"]["tokens_last_hour"] == {"prompt": 30, "completion": 300}
    assert summary["other:1"]["requests"] == {"5m": 1, "1h": 1, "1d": 1}


def test_the_hot_window_is_counted_too(store: UsageStore) -> None:
    for age in (10, 100, 1000):
        store.record("a", "m:1", 1, 1, at=NOW - age)
    assert store.models(hot_window=500)["m:1"].requests_in("hot") == 2


def test_the_database_is_in_wal_mode_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    first = UsageStore(path, clock=lambda: NOW)
    first.record("a", "m:1", 1, 2)
    first.close()
    again = UsageStore(path, clock=lambda: NOW)
    assert again.requests("m:1", 60) == 1
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again.close()


def test_a_running_job_counts_until_it_finishes(store: UsageStore) -> None:
    job = store.job_started("a", "m:1")
    assert store.running_jobs() == {"m:1": 1}
    assert store.models(900)["m:1"].running_jobs == 1
    store.job_finished(job)
    assert store.running_jobs() == {}


def test_jobs_of_a_process_that_died_do_not_count(store: UsageStore) -> None:
    run_python(
        f"""
        from worker.residency.usage import UsageStore
        UsageStore({str(store.path)!r}).job_started("a", "m:1")  # and exits without finishing
        """
    )
    assert store.running_jobs() == {}
    store.job_started("b", "m:1")  # this live process's job does
    assert store.running_jobs() == {"m:1": 1}
    assert store.prune() == 1  # the dead process's row is gone
    assert store.running_jobs() == {"m:1": 1}


def test_old_jobs_expire_even_when_their_process_lives(tmp_path: Path) -> None:
    clock = [NOW]
    store = UsageStore(tmp_path / "u.sqlite3", job_expiry=60.0, clock=lambda: clock[0])
    store.job_started("a", "m:1")
    clock[0] += 61
    assert store.running_jobs() == {}


def test_another_process_writes_what_this_one_reads(store: UsageStore) -> None:
    run_python(
        f"""
        from worker.http import usage_hook
        usage_hook.configure({str(store.path)!r})
        for _ in range(4):
            usage_hook.record_usage("agent-x", "llama3", 5, 7)
        """
    )
    assert store.requests("llama3:latest", 86_400 * 365 * 100) == 4
    assert store.tokens("llama3", 86_400 * 365 * 100) == (20, 28)


def test_the_hook_never_raises_when_the_database_cannot_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    usage_hook.configure(blocker / "usage.sqlite3")
    try:
        usage_hook.record_usage("a", "m", 1, 1)
        assert usage_hook.job_started("a", "m") is None
        usage_hook.job_finished(None)
    finally:
        usage_hook.configure(tmp_path / "fine.sqlite3")
    assert "usage_record_failed" in caplog.text


def test_the_hook_records_jobs_and_usage(tmp_path: Path) -> None:
    usage_hook.configure(tmp_path / "hook.sqlite3")
    job = usage_hook.job_started("a", "m:1")
    assert usage_hook.store().running_jobs() == {"m:1": 1}
    usage_hook.job_finished(job)
    usage_hook.record_usage("a", "m:1", 3, 4)
    assert usage_hook.store().running_jobs() == {}
    assert usage_hook.store().tokens("m:1", 60) == (3, 4)
