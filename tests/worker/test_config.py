"""Settings from the environment: defaults, validation, one message naming every bad variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.processes import ROOT
from worker.config import ConfigError, OrchestratorTarget, load_settings


def test_defaults_with_an_empty_environment() -> None:
    settings = load_settings({})
    assert (settings.worker_host, settings.worker_port) == ("0.0.0.0", 9876)
    assert settings.ollama_host == "http://127.0.0.1:11434"
    assert settings.ollama_model == "codellama:34b-instruct-q4_k_m"
    assert settings.log_level == "INFO" and settings.log_format == "text"
    assert settings.sample_interval_seconds == 1.0
    assert settings.orchestrators == []
    assert settings.capability_capacity == 10
    assert (settings.capability_price_per_unit, settings.capability_price_scaling) == (0, 1)
    assert settings.capability_currency == "wei"
    assert settings.register_interval_seconds == 30
    assert settings.tls_verify is False
    assert settings.job_routes == ["gpu-check", "agent-net"]
    assert settings.worker_class == "gevent"


@pytest.mark.parametrize("value", ["gthread", "gevent", " GEVENT ", "GThread"])
def test_worker_class_is_one_of_two(value: str) -> None:
    assert load_settings({"WORKER_CLASS": value}).worker_class == value.strip().lower()


@pytest.mark.parametrize("value", ["sync", "eventlet", "gevent_pywsgi", ""])
def test_other_worker_classes_are_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"WORKER_CLASS": value})
    assert "WORKER_CLASS" in str(caught.value)


def test_every_bad_variable_is_named_in_one_message() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "WORKER_PORT": "70000",
                "WORKER_WORKERS": "0",
                "SAMPLE_INTERVAL_SECONDS": "fast",
                "LOG_LEVEL": "loud",
                "OLLAMA_HOST": "ftp://ollama",
                "CAPABILITY_CAPACITY": "10.5",
                "ORCH_TLS_VERIFY": "perhaps",
            }
        )
    message = str(caught.value)
    assert message.startswith("invalid configuration (7 problems):")
    for variable, shown in [
        ("WORKER_PORT", "'70000'"),
        ("WORKER_WORKERS", "'0'"),
        ("SAMPLE_INTERVAL_SECONDS", "'fast'"),
        ("LOG_LEVEL", "'LOUD'"),
        ("OLLAMA_HOST", "ftp"),
        ("CAPABILITY_CAPACITY", "'10.5'"),
        ("ORCH_TLS_VERIFY", "'perhaps'"),
    ]:
        line = next(line for line in message.splitlines() if line.strip().startswith(variable))
        assert shown in line, line


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ORCH_URL": "https://o:8935", "ORCH_SECRET": " "})
    assert "ORCH_SECRET (or ORCH_SECRET_FILE) is required" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings({"WORKER_TOKEN": "tok-123", "ORCH_SECRET": "sec-456", "WORKER_PORT": "x"})
    assert "tok-123" not in str(caught.value) and "sec-456" not in str(caught.value)
    settings = load_settings({"ORCH_SECRET": "sec-456", "WORKER_TOKEN": "tok-123"})
    assert "sec-456" not in repr(settings) and "tok-123" not in repr(settings)


def test_several_orchestrators_with_one_name_each() -> None:
    settings = load_settings(
        {
            "ORCH_URL": "https://nyc.example:8935, https://tokyo.example:8935/",
            "CAPABILITY_NAME": "agent-net-nyc,agent-net-tokyo",
            "ORCH_SECRET": "s",
        }
    )
    assert settings.orchestrators == [
        OrchestratorTarget(url="https://nyc.example:8935", capability_name="agent-net-nyc"),
        OrchestratorTarget(url="https://tokyo.example:8935", capability_name="agent-net-tokyo"),
    ]
    assert settings.job_routes == ["gpu-check", "agent-net", "agent-net-nyc", "agent-net-tokyo"]


def test_one_name_serves_every_orchestrator() -> None:
    settings = load_settings({"ORCH_URL": "https://a:8935,https://b:8935", "ORCH_SECRET": "s"})
    assert [t.capability_name for t in settings.orchestrators] == ["agent-net", "agent-net"]


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        (
            {"ORCH_URL": "https://a,https://b", "CAPABILITY_NAME": "x,y,z", "ORCH_SECRET": "s"},
            "give one name, or one per ORCH_URL entry (2), not 3",
        ),
        ({"ORCH_URL": "https://a"}, "ORCH_SECRET (or ORCH_SECRET_FILE) is required"),
        (
            {"ORCH_URL": "https://a", "ORCH_SECRET": "replace-me-with-openssl-rand-hex-32"},
            "ORCH_SECRET is still the placeholder from .env.example",
        ),
        ({"ORCH_URL": "https://a,https://a/", "ORCH_SECRET": "s"}, "listed twice"),
        ({"CAPABILITY_NAME": "bad name"}, "not a valid capability name"),
        ({"CAPABILITY_NAME": "healthz"}, "reserved"),
        ({"CAPABILITY_CURRENCY": "USD"}, "needs the orchestrator's price feed"),
        ({"CAPABILITY_PRICE_PER_UNIT": str(2**63)}, "CAPABILITY_PRICE_PER_UNIT"),
        ({"CAPABILITY_PRICE_SCALING": "0"}, "CAPABILITY_PRICE_SCALING"),
        ({"ORCH_CA_BUNDLE": "/nonexistent/ca.pem"}, "is not a readable file"),
        ({"OLLAMA_HOST": "http://user:pw@ollama:11434"}, "credentials in the URL"),
    ],
)
def test_bad_combinations_are_refused(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("currency", ["wei", "WEI", "eth", "Eth", ""])
def test_fixed_price_currencies_are_accepted(currency: str) -> None:
    assert load_settings({"CAPABILITY_CURRENCY": currency}).capability_currency == currency


def test_ollama_host_forms_are_normalised() -> None:
    assert load_settings({"OLLAMA_HOST": "http://ollama"}).ollama_host == "http://ollama:11434"
    assert load_settings({"OLLAMA_HOST": " http://10.0.0.5:8080/ "}).ollama_host == (
        "http://10.0.0.5:8080"
    )
    assert load_settings({"OLLAMA_HOST": "https://o.example/"}).ollama_host == (
        "https://o.example:11434"
    )


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"ORCH_URL": "orchestrator:8935", "ORCH_SECRET": "s"},
            "  ORCH_URL: 'orchestrator:8935' has no scheme (http:// or https://); write it in"
            " full, e.g. ORCH_URL=https://orchestrator:8935",
        ),
        (
            {"ORCH_URL": "https://a:8935, b:8935,c", "ORCH_SECRET": "s"},
            "  ORCH_URL: 'b:8935', 'c' have no scheme (http:// or https://); write it in full,"
            " e.g. ORCH_URL=https://a:8935,https://b:8935,https://c (got 'https://a:8935,"
            " b:8935,c')",
        ),
        (
            # Ollama's own server accepts this form; the worker does not guess a scheme.
            {"OLLAMA_HOST": "0.0.0.0:11434"},
            "  OLLAMA_HOST: '0.0.0.0:11434' has no scheme (http:// or https://); write it in"
            " full, e.g. OLLAMA_HOST=http://0.0.0.0:11434",
        ),
        (
            {"OLLAMA_HOST": "ollama"},
            "  OLLAMA_HOST: 'ollama' has no scheme (http:// or https://); write it in full,"
            " e.g. OLLAMA_HOST=http://ollama",
        ),
        (
            {"CAPABILITY_URL": "worker:9876"},
            "  CAPABILITY_URL: 'worker:9876' has no scheme (http:// or https://); write it in"
            " full, e.g. CAPABILITY_URL=http://worker:9876",
        ),
    ],
)
def test_a_url_without_scheme_is_refused_with_the_fix(environ: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert str(caught.value).splitlines() == ["invalid configuration (1 problem):", line]
    fixed = line.rsplit("e.g. ", 1)[1].split(" ")[0].split("=", 1)
    assert load_settings({**environ, fixed[0]: fixed[1]})  # the example given is accepted


def test_secrets_and_tls_from_files(tmp_path: Path) -> None:
    secret, token, bundle = tmp_path / "secret", tmp_path / "token", tmp_path / "ca.pem"
    secret.write_text("orch-secret\n")
    token.write_text("job-token\n")
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(
        {
            "ORCH_URL": "https://o:8935",
            "ORCH_SECRET_FILE": str(secret),
            "WORKER_TOKEN_FILE": str(token),
            "ORCH_CA_BUNDLE": str(bundle),
        }
    )
    assert settings.orchestrator_secret is not None
    assert settings.orchestrator_secret.get_secret_value() == "orch-secret"
    assert settings.job_token is not None and settings.job_token.get_secret_value() == "job-token"
    assert settings.tls_verify == str(bundle)
    assert load_settings({"ORCH_TLS_VERIFY": "true"}).tls_verify is True


def test_python_m_worker_refuses_bad_settings_with_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "WORKER_PORT": "0x",
            "ORCH_SECRET": "hunter2",
            "OLLAMA_TIMEOUT_SECONDS": "-1",
            "ORCH_URL": "https://o:8935",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("agent-net: invalid configuration (2 problems):")
    assert "WORKER_PORT" in result.stderr and "OLLAMA_TIMEOUT_SECONDS" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_python_m_worker_refuses_an_orch_url_without_scheme() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ORCH_SECRET": "s", "ORCH_URL": "orchestrator:8935"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "agent-net: invalid configuration (1 problem):\n"
        "  ORCH_URL: 'orchestrator:8935' has no scheme (http:// or https://); write it in full,"
        " e.g. ORCH_URL=https://orchestrator:8935\n"
    )
