"""Settings from the environment: defaults, validation, one message naming every bad variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ollama._client import _parse_host
from pydantic.fields import FieldInfo

from tests.helpers.processes import ROOT
from worker.config import ConfigError, OrchestratorTarget, Settings, expected_form, load_settings


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
                "WORKER_CLASS": "",
            }
        )
    assert str(caught.value).splitlines() == [
        "invalid configuration (8 problems):",
        "  WORKER_PORT: '70000' is out of range; expected a whole number from 1 to 65535,"
        " e.g. WORKER_PORT=9876",
        "  WORKER_WORKERS: '0' is out of range; expected a whole number from 1 to 64,"
        " e.g. WORKER_WORKERS=2",
        "  WORKER_CLASS: empty; expected gthread or gevent, e.g. WORKER_CLASS=gevent",
        "  LOG_LEVEL: 'loud' is not one of the choices; expected DEBUG, INFO, WARNING, ERROR"
        " or CRITICAL, e.g. LOG_LEVEL=INFO",
        "  OLLAMA_HOST: the scheme 'ftp' is not http or https (got 'ftp://ollama'); expected"
        " Ollama's address as Ollama itself takes it: host, host:port or an http(s) URL"
        " (no scheme: http, port 11434), e.g. OLLAMA_HOST=127.0.0.1:11434",
        "  SAMPLE_INTERVAL_SECONDS: 'fast' is not a number; expected a number of seconds"
        " above 0, at most 86400, e.g. SAMPLE_INTERVAL_SECONDS=1",
        "  CAPABILITY_CAPACITY: '10.5' is not a whole number; expected a whole number from 1"
        " to 10000, e.g. CAPABILITY_CAPACITY=10",
        "  ORCH_TLS_VERIFY: 'perhaps' is neither true nor false; expected true or false,"
        " e.g. ORCH_TLS_VERIFY=false",
    ]


def test_problems_between_variables_come_with_the_others_in_one_start(tmp_path: Path) -> None:
    """ORCH_URL without a scheme still counts as set: its missing secret is named too."""
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "ORCH_URL": "orch:8935",
                "CAPABILITY_CAPACITY": "0",
                "AGENTS_FILE": str(tmp_path / "nonexistent.toml"),
            }
        )
    assert str(caught.value).splitlines() == [
        "invalid configuration (4 problems):",
        f"  AGENTS_FILE: '{tmp_path / 'nonexistent.toml'}' is not a readable file; expected"
        " the path of an agents file (TOML, docs/agents.md), e.g."
        " AGENTS_FILE=agents.example.toml, or unset it for the one default agent"
        " (agent-net-llm on OLLAMA_MODEL)",
        "  ORCH_URL: 'orch:8935' has no scheme (http:// or https://); write it in full, e.g."
        " ORCH_URL=https://orch:8935",
        "  CAPABILITY_CAPACITY: '0' is out of range; expected a whole number from 1 to 10000,"
        " e.g. CAPABILITY_CAPACITY=10",
        "  ORCH_SECRET: required when ORCH_URL is set; expected the orchestrator's"
        " -orchSecret, e.g. ORCH_SECRET=<its value> (for a new one: openssl rand -hex 32),"
        " or ORCH_SECRET_FILE=/run/secrets/orch_secret",
    ]


def test_every_problem_between_variables_at_once(tmp_path: Path) -> None:
    secret_file, token_file = tmp_path / "secret", tmp_path / "token"
    secret_file.write_text("s\n")
    token_file.write_text("t\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "ORCH_URL": "https://a:8935,https://b:8935",
                "CAPABILITY_NAME": "x,y,z",
                "ORCH_SECRET": "replace-me-with-openssl-rand-hex-32",
                "ORCH_SECRET_FILE": str(secret_file),
                "WORKER_TOKEN": "tok",
                "WORKER_TOKEN_FILE": str(token_file),
                "LIVE_RUNNER_PRICES": "nope=1",
                "LIVE_RUNNER_ONCHAIN": "true",
            }
        )
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid configuration (6 problems):"
    assert [line.split(":")[0].strip() for line in lines[1:]] == [
        "CAPABILITY_NAME",
        "ORCH_SECRET",
        "ORCH_SECRET_FILE",
        "WORKER_TOKEN_FILE",
        "LIVE_RUNNER_PRICES",
        "LIVE_RUNNER_ONCHAIN",
    ]
    assert "3 names for 2 ORCH_URL entries" in lines[1]
    assert "still the placeholder from .env.example" in lines[2]
    assert "set ORCH_SECRET or ORCH_SECRET_FILE, not both" in lines[3]
    assert "e.g. LIVE_RUNNER_PRICES=gpu-check=0.5" in lines[5]
    assert "e.g. LIVE_RUNNER_PRICE_USD_PER_HOUR=0.5" in lines[6]


def example_of(alias: str) -> str:
    """The value in the `e.g. ALIAS=value` that ends the form of `alias`."""
    return expected_form(alias).split(f"e.g. {alias}=", 1)[1].split(" ")[0].rstrip(",;").strip("'")


# The examples that name files elsewhere (/run/secrets/..., /etc/...): their form only.
FILE_SETTINGS = {"ORCH_SECRET_FILE", "WORKER_TOKEN_FILE", "ORCH_CA_BUNDLE"}
# What an example needs beside it to load.
COMPANIONS = {"ORCH_URL": {"ORCH_SECRET": "s"}, "LIVE_RUNNER_ONCHAIN": {}}


@pytest.mark.parametrize("alias", [field.alias for field in Settings.model_fields.values()])
def test_every_setting_has_a_form_and_an_example_that_is_accepted(
    alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # AGENTS_FILE=agents.example.toml, as from the repository root
    form = expected_form(alias)
    assert f"e.g. {alias}=" in form
    if alias in FILE_SETTINGS:
        assert example_of(alias).startswith("/")
        return
    value = example_of(alias)
    if value.startswith("<"):  # a secret: the example names what to put there
        value = "an-example-secret"
    load_settings({alias: value, **COMPANIONS.get(alias, {})})


# A word where a number or true/false is expected, and what each kind says of it.
NOT_A_VALUE = {int: "not a whole number", bool: "neither true nor false"}


@pytest.mark.parametrize(
    "field",
    [f for f in Settings.model_fields.values() if f.annotation in (int, float, bool, bool | None)],
    ids=lambda field: field.alias,
)
def test_a_bad_value_is_answered_with_the_form_and_an_example(field: FieldInfo) -> None:
    alias = field.alias or ""
    with pytest.raises(ConfigError) as caught:
        load_settings({alias: "lots"})
    kind = bool if field.annotation in (bool, bool | None) else field.annotation
    assert str(caught.value).splitlines() == [
        "invalid configuration (1 problem):",
        f"  {alias}: 'lots' is {NOT_A_VALUE.get(kind, 'not a number')};"
        f" expected {expected_form(alias)}",
    ]


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ORCH_URL": "https://o:8935", "ORCH_SECRET": " "})
    assert "ORCH_SECRET: required when ORCH_URL is set" in str(caught.value)
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
            "CAPABILITY_NAME: 3 names for 2 ORCH_URL entries",
        ),
        ({"ORCH_URL": "https://a"}, "ORCH_SECRET: required when ORCH_URL is set"),
        (
            {"ORCH_URL": "https://a", "ORCH_SECRET": "replace-me-with-openssl-rand-hex-32"},
            "ORCH_SECRET: still the placeholder from .env.example",
        ),
        ({"ORCH_URL": "https://a,https://a/", "ORCH_SECRET": "s"}, "listed twice"),
        ({"CAPABILITY_NAME": "bad name"}, "not a valid capability name"),
        ({"CAPABILITY_NAME": "healthz"}, "reserved"),
        ({"CAPABILITY_CURRENCY": "USD"}, "needs the orchestrator's price feed"),
        ({"CAPABILITY_PRICE_PER_UNIT": str(2**63)}, "CAPABILITY_PRICE_PER_UNIT"),
        ({"CAPABILITY_PRICE_SCALING": "0"}, "CAPABILITY_PRICE_SCALING"),
        ({"ORCH_CA_BUNDLE": "/nonexistent/ca.pem"}, "is not a readable file"),
        ({"OLLAMA_HOST": "http://user:pw@ollama:11434"}, "credentials (user:password@)"),
    ],
)
def test_bad_combinations_are_refused(environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("currency", ["wei", "WEI", "eth", "Eth", ""])
def test_fixed_price_currencies_are_accepted(currency: str) -> None:
    assert load_settings({"CAPABILITY_CURRENCY": currency}).capability_currency == currency


# The ollama client's own doctests (ollama/_client.py `_parse_host`), and more.
OLLAMA_FORMS = {
    "": "http://127.0.0.1:11434",
    "1.2.3.4": "http://1.2.3.4:11434",
    ":56789": "http://127.0.0.1:56789",
    "1.2.3.4:56789": "http://1.2.3.4:56789",
    "http://1.2.3.4": "http://1.2.3.4:80",
    "https://1.2.3.4": "https://1.2.3.4:443",
    "https://1.2.3.4:56789": "https://1.2.3.4:56789",
    "example.com": "http://example.com:11434",
    "example.com:56789": "http://example.com:56789",
    "http://example.com": "http://example.com:80",
    "https://example.com:56789": "https://example.com:56789",
    "example.com/": "http://example.com:11434",
    "example.com/path": "http://example.com:11434/path",
    "example.com:56789/path/": "http://example.com:56789/path",
    "[0001:002:003:0004::1]": "http://[0001:002:003:0004::1]:11434",
    "[0001:002:003:0004::1]:56789/path": "http://[0001:002:003:0004::1]:56789/path",
    "https://[0001:002:003:0004::1]": "https://[0001:002:003:0004::1]:443",
    "127.0.0.1:11434": "http://127.0.0.1:11434",
    "0.0.0.0:11434": "http://0.0.0.0:11434",
    "ollama": "http://ollama:11434",
    " Ollama:11434 ": "http://ollama:11434",
    "http://ollama:11434/": "http://ollama:11434",
}


@pytest.mark.parametrize(("value", "url"), OLLAMA_FORMS.items())
def test_ollama_host_takes_what_ollama_takes(value: str, url: str) -> None:
    assert load_settings({"OLLAMA_HOST": value}).ollama_host == url
    assert ollama_client_url(value) == url


def ollama_client_url(value: str) -> str:
    """Where the official `ollama` client connects for OLLAMA_HOST=`value`."""
    return _parse_host(value.strip())


hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
    st.just(""),
)


@given(
    scheme=st.sampled_from(["", "http://", "https://"]),
    host=hosts,
    port=st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}")),
    path=st.sampled_from(["", "/", "/api", "/ollama/v1/"]),
)
def test_ollama_host_agrees_with_the_ollama_client(
    scheme: str, host: str, port: str, path: str
) -> None:
    value = f"{scheme}{host}{port}{path}"
    if scheme and not f"{host}{port}{path}":
        return  # "http://" alone: the client reads garbage, the worker refuses it
    assert load_settings({"OLLAMA_HOST": value}).ollama_host == ollama_client_url(value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ftp://ollama", "the scheme 'ftp' is not http or https"),
        ("HTTP://ollama", "the scheme 'HTTP' is not http or https"),
        ("http://", "a host is required after the scheme"),
        ("http://user:pw@ollama:11434", "credentials (user:password@) are not allowed"),
        ("ollama:11434?x=1", "a query or fragment is not allowed"),
        ("ollama:99999", "the port is not a number from 1 to 65535"),
        ("ollama:port", "the port is not a number from 1 to 65535"),
    ],
)
def test_ollama_host_refuses_what_ollama_would_misread(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"OLLAMA_HOST": value})
    assert f"  OLLAMA_HOST: {fragment}" in str(caught.value)
    assert "e.g. OLLAMA_HOST=127.0.0.1:11434" in str(caught.value)


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
