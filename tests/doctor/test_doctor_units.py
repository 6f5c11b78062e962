"""The doctor's checks one by one, on documents and settings made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.registration.support import Blackhole
from worker import doctor
from worker.config import load_settings
from worker.dotenv import DotenvError, environ_with_dotenv, parse_dotenv
from worker.registration.keeper import AUTH_HINT

SECRET = "unit-secret-42"


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(env)


def test_the_doctor_knows_the_registrars_secret_hint() -> None:
    assert doctor.AUTH_HINT == AUTH_HINT


def test_registration_covers_every_entry_whatever_its_protocol() -> None:
    configured = settings(ORCH_URL="https://a:8935,https://b:8935", ORCH_SECRET=SECRET)
    readyz = {
        "registration": [
            {
                "orchestrator": "https://a:8935",
                "capability": "agent-net",
                "registered": True,
                "last_error": None,
            },
            {
                "orchestrator": "https://a:8935",
                "capability": "agent-net-chat",
                "registered": False,
                "last_error": None,
                "protocol": "live-runner",
            },
            {
                "orchestrator": "https://b:8935",
                "capability": "agent-net",
                "registered": False,
                "last_error": f"HTTP 400: invalid authorization ({AUTH_HINT})",
                "consecutive_failures": 3,
            },
            {
                "orchestrator": "https://b:8935",
                "capability": "agent-net-chat",
                "registered": False,
                "last_error": "Unreachable: ConnectTimeout",
                "consecutive_failures": 2,
                "protocol": "live-runner",
            },
        ]
    }
    checks = {c.name: c for c in doctor.check_registration(configured, readyz, True)}
    assert list(checks) == [
        "registration https://a:8935 agent-net",
        "registration https://a:8935 agent-net-chat (live-runner)",
        "registration https://b:8935 agent-net",
        "registration https://b:8935 agent-net-chat (live-runner)",
    ]
    verdicts = [c.verdict for c in checks.values()]
    assert verdicts == ["ok", "warning", "fail", "fail"]
    mismatch = checks["registration https://b:8935 agent-net"]
    assert mismatch.detail.startswith("secret mismatch") and "-orchSecret" in (mismatch.fix or "")
    other = checks["registration https://b:8935 agent-net-chat (live-runner)"]
    assert "after 2 attempt(s): Unreachable" in other.detail


def test_a_configured_orchestrator_the_worker_does_not_report_is_a_warning() -> None:
    configured = settings(ORCH_URL="https://a:8935", ORCH_SECRET=SECRET)
    [check] = doctor.check_registration(configured, {"registration": []}, True)
    assert check.verdict == "warning" and check.subject == "https://a:8935"
    assert "docker compose exec worker agent-net doctor" in (check.fix or "")


def test_no_orchestrator_or_no_worker_skips_registration() -> None:
    [alone] = doctor.check_registration(settings(), None, False)
    assert alone.verdict == "skip" and "ORCH_URL is not set" in alone.detail
    configured = settings(ORCH_URL="https://a:8935", ORCH_SECRET=SECRET)
    [down] = doctor.check_registration(configured, None, False)
    assert down.verdict == "skip" and "does not answer" in down.detail


def test_not_ready_says_which_part() -> None:
    starting = doctor._not_ready(
        {
            "status": "starting",
            "sampler": {"running": True, "pid": 7},
            "sources": {
                "nvml": {"status": "ok", "reason": None},
                "ollama": {"status": "pending", "reason": "no reading yet"},
            },
        }
    )
    assert starting.verdict == "warning" and "ollama pending (no reading yet)" in starting.detail
    assert "nvml" not in starting.detail
    down = doctor._not_ready({"status": "sampler_down", "sampler": {"running": False}})
    assert down.verdict == "fail" and "sampler process is not running" in down.detail


@pytest.mark.parametrize(
    ("host", "command"),
    [
        ("http://ollama:11434", "docker compose exec ollama ollama pull m:1b"),
        ("http://127.0.0.1:11434", "ollama pull m:1b"),
        ("http://10.0.0.5:11434", "OLLAMA_HOST=http://10.0.0.5:11434 ollama pull m:1b"),
    ],
)
def test_the_pull_command_fits_where_ollama_runs(host: str, command: str) -> None:
    assert doctor.pull_command(settings(OLLAMA_HOST=host), "m:1b") == command


def test_a_model_without_a_tag_is_latest() -> None:
    assert doctor._model_key("llama3") == doctor._model_key("llama3:latest")
    assert doctor._model_key("host:5000/ns/llama3") == "host:5000/ns/llama3:latest"
    assert doctor._model_key("llama3:8b") != doctor._model_key("llama3")


def test_a_host_that_never_answers_is_reported_when_the_budget_ends(tmp_path: Path) -> None:
    hole = Blackhole()
    try:
        environ = {"ORCH_URL": hole.url, "ORCH_SECRET": SECRET, "WORKER_PORT": "1"}
        report = doctor.run_doctor(environ, tmp_path, budget=0.2)
    finally:
        hole.close()
    [late] = [c for c in report.checks if c.check == "orchestrator"]
    assert late.verdict == "fail" and "0.2 s budget" in late.detail
    assert report.exit_code == 1


def test_no_secret_reaches_the_report_even_from_a_check(tmp_path: Path) -> None:
    report = doctor.Report(
        doctor._scrub(
            [doctor.Check("x", "", "fail", f"saw {SECRET}", f"not {SECRET}")],
            {"ORCH_SECRET": SECRET},
            None,
        ),
        0.0,
        None,
    )
    assert SECRET not in report.as_text() and "***" in report.as_text()


# --- .env as compose reads it -------------------------------------------------------------------
def test_dotenv_values_as_compose_reads_them() -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            "PLAIN=value  # inline comment",
            "export EXPORTED=yes",
            "SINGLE='a # b \\n'",
            'DOUBLE="line\\none \\"q\\""',
            "EMPTY=",
            "SPACED = spaced value ",
            "HASH=a#b",
            "PLAIN=later wins",
        ]
    )
    assert parse_dotenv(text) == {
        "PLAIN": "later wins",
        "EXPORTED": "yes",
        "SINGLE": "a # b \\n",
        "DOUBLE": 'line\none "q"',
        "EMPTY": "",
        "SPACED": "spaced value",
        "HASH": "a#b",
    }


@pytest.mark.parametrize("line", ["NOEQUALS", "1BAD=x", "Q='open", 'Q="open'])
def test_a_bad_dotenv_line_is_named(line: str) -> None:
    with pytest.raises(DotenvError, match=r"\.env:2:"):
        parse_dotenv(f"OK=1\n{line}\n")


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("WORKER_PORT=1\nOLLAMA_MODEL=from-file\n")
    merged = environ_with_dotenv({"WORKER_PORT": "9876", "EMPTY_IN_SHELL": ""}, path)
    assert merged["WORKER_PORT"] == "9876" and merged["OLLAMA_MODEL"] == "from-file"
    assert environ_with_dotenv({"A": "1"}, tmp_path / "missing") == {"A": "1"}
