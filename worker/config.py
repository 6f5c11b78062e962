"""Settings from environment variables: typed, validated, every problem reported at once.

Every variable has an embedded default, so the worker starts with none set. A bad value
stops startup with one message that names every bad variable (never a secret's value),
each with the form it takes and an example, cross-variable problems included
(`load_settings` is the one way in). This module depends on nothing else of the worker.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

DEFAULT_OLLAMA_PORT = 11434
DEFAULT_OLLAMA_HOST = f"http://127.0.0.1:{DEFAULT_OLLAMA_PORT}"
DEFAULT_OLLAMA_MODEL = "codellama:34b-instruct-q4_k_m"
DEFAULT_CAPABILITY_NAME = "agent-net"
# go-livepeer prices these currencies itself; any other needs its price feed (and panics
# inside the registration handler when it has none), so the worker refuses them.
FIXED_PRICE_CURRENCIES = ("", "wei", "eth")
INT64_MAX = 2**63 - 1
# A capability name becomes a URL path segment on the orchestrator and on this worker.
CAPABILITY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# .env.example ships ORCH_SECRET=replace-me-...; going live with it must not be possible.
PLACEHOLDER_PREFIX = "replace-me"
RESERVED_ROUTES = frozenset({"healthz", "readyz", "metrics", "lr"})
# The GPU check's job route, which is also the name of its live runner.
GPU_CHECK_ROUTE = "gpu-check"


def capability_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a capability name (CAPABILITY_NAME, an agent's), if
    anything: the one statement of the rule."""
    if re.match(CAPABILITY_NAME_PATTERN, name):
        return None
    return "not a valid capability name (letters, digits, '.', '_', '-'; at most 64 characters)"


REGISTRATION_PROTOCOLS = ("byoc", "live-runner", "both")
LIVE_RUNNER_PRICE_UNITS = ("hour", "fixed")


class ConfigError(Exception):
    """Raised with one human message naming every bad variable."""


class OrchestratorTarget(BaseModel):
    """One orchestrator this worker registers with, and the name it registers under."""

    model_config = ConfigDict(frozen=True)

    url: str
    capability_name: str


PositiveSeconds = Annotated[float, Field(gt=0, le=86_400)]


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip() == "" else value


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _refuse_missing_scheme(variable: str, values: list[str], scheme: str) -> None:
    """Raise ValueError naming each of `values` without a scheme, and `variable` written right.

    The worker never guesses a scheme for ORCH_URL or CAPABILITY_URL: a guess hides a TLS
    orchestrator behind a plain-HTTP error. (OLLAMA_HOST is read as Ollama reads it.)
    """
    values = [value.strip() for value in values]
    bare = [value for value in values if "://" not in value]
    if not bare:
        return
    fixed = ",".join(value if "://" in value else f"{scheme}://{value}" for value in values)
    raise ValueError(
        f"{', '.join(repr(value) for value in bare)} {'has' if len(bare) == 1 else 'have'}"
        " no scheme (http:// or https://);"
        f" write it in full, e.g. {variable}={fixed}"
    )


def _normalise_http_url(value: str) -> str:
    """Return `value` as scheme://host[:port] without a trailing slash, or raise ValueError."""
    raw = value.strip()  # _refuse_missing_scheme has seen it: it has a scheme
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme must be http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("a host is required")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not allowed")
    if parts.query or parts.fragment:
        raise ValueError("a query or fragment is not allowed")
    try:
        parts.port  # noqa: B018 (urlsplit reads the port only when asked; a bad one raises)
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def ollama_base_url(value: str) -> str:
    """OLLAMA_HOST read exactly as Ollama reads it, as `scheme://host:port[/path]`.

    The same rules as the `ollama` client's `_parse_host` and the server's
    `envconfig.Host()`: `host`, `host:port` or a URL; without a scheme http and port
    11434; with `http://` or `https://` and no port, 80 or 443; an empty host is
    127.0.0.1. Forms Ollama would misread are refused (ValueError): another scheme,
    credentials, a query or fragment (it drops them), a port that is not a number.
    """
    text = value.strip()
    port = DEFAULT_OLLAMA_PORT
    scheme, sep, hostport = text.partition("://")
    if not sep:
        scheme, hostport = "http", text
    elif scheme in ("http", "https"):
        port = 80 if scheme == "http" else 443
    else:
        raise ValueError(f"the scheme {scheme!r} is not http or https")
    if sep and not hostport:
        raise ValueError("a host is required after the scheme")
    parts = urlsplit(f"{scheme}://{hostport}")
    if "@" in parts.netloc:
        raise ValueError("credentials (user:password@) are not allowed: Ollama drops them")
    if parts.query or parts.fragment or "?" in hostport or "#" in hostport:
        raise ValueError("a query or fragment is not allowed: Ollama drops it")
    try:
        port = parts.port or port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    host = parts.hostname or "127.0.0.1"
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            host = f"[{host}]"
    except ValueError:
        pass  # a name, not an address
    path = parts.path.strip("/")
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")


class Settings(BaseModel):
    """The worker's whole configuration. Field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # --- HTTP server -----------------------------------------------------------------
    worker_host: str = Field("0.0.0.0", alias="WORKER_HOST", min_length=1)  # noqa: S104
    worker_port: int = Field(9876, alias="WORKER_PORT", ge=1, le=65_535)
    worker_workers: int = Field(2, alias="WORKER_WORKERS", ge=1, le=64)
    worker_class: Literal["gthread", "gevent"] = Field("gevent", alias="WORKER_CLASS")
    worker_threads: int = Field(8, alias="WORKER_THREADS", ge=1, le=256)
    worker_connections: int = Field(1000, alias="WORKER_CONNECTIONS", ge=1, le=100_000)
    max_body_bytes: int = Field(64 * 1024, alias="MAX_BODY_BYTES", ge=1024, le=16 * 1024 * 1024)
    # The agents' and /v1 routes carry images and long histories (docs/agents.md#limits).
    agent_max_body_bytes: int = Field(
        16 * 1024 * 1024, alias="AGENT_MAX_BODY_BYTES", ge=1024, le=64 * 1024 * 1024
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", alias="LOG_LEVEL"
    )
    log_format: Literal["text", "json"] = Field("text", alias="LOG_FORMAT")

    # --- Sources -----------------------------------------------------------------------
    ollama_host: str = Field(DEFAULT_OLLAMA_HOST, alias="OLLAMA_HOST")
    ollama_model: str = Field(DEFAULT_OLLAMA_MODEL, alias="OLLAMA_MODEL", min_length=1)
    sample_interval_seconds: PositiveSeconds = Field(1.0, alias="SAMPLE_INTERVAL_SECONDS")
    nvml_timeout_seconds: PositiveSeconds = Field(2.0, alias="NVML_TIMEOUT_SECONDS")
    ollama_timeout_seconds: PositiveSeconds = Field(2.0, alias="OLLAMA_TIMEOUT_SECONDS")
    # --- Agents (worker/agents.py) ------------------------------------------------------
    agents_file: Path | None = Field(None, alias="AGENTS_FILE")

    # --- Usage and model residency (docs/residency.md) -------------------------------------
    data_dir: Path = Field(Path("data"), alias="AGENT_NET_DATA_DIR")
    usage_db: Path | None = Field(None, alias="USAGE_DB")
    residency_enabled: bool = Field(True, alias="RESIDENCY_ENABLED")
    residency_interval_seconds: Annotated[float, Field(ge=0.1, le=3600)] = Field(
        10.0, alias="RESIDENCY_INTERVAL_SECONDS"
    )
    hot_requests: int = Field(3, alias="HOT_REQUESTS", ge=1, le=1_000_000)
    hot_window_seconds: Annotated[float, Field(ge=1, le=86_400)] = Field(
        900.0, alias="HOT_WINDOW_SECONDS"
    )
    vram_budget: str = Field("0.9", alias="VRAM_BUDGET")
    residency_pinned: list[str] = Field(default_factory=list, alias="RESIDENCY_PINNED")
    residency_manage_all: bool = Field(False, alias="RESIDENCY_MANAGE_ALL")
    residency_keep_alive: str = Field("-1", alias="RESIDENCY_KEEP_ALIVE")
    residency_load_timeout_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        600.0, alias="RESIDENCY_LOAD_TIMEOUT_SECONDS"
    )

    # --- Livepeer registration ---------------------------------------------------------------
    orch_urls: list[str] = Field(default_factory=list, alias="ORCH_URL")
    orch_secret: SecretStr | None = Field(None, alias="ORCH_SECRET")
    orch_secret_file: Path | None = Field(None, alias="ORCH_SECRET_FILE")
    capability_names: list[str] = Field(
        default_factory=lambda: [DEFAULT_CAPABILITY_NAME], alias="CAPABILITY_NAME"
    )
    capability_url: str | None = Field(None, alias="CAPABILITY_URL")
    capability_description: str = Field(
        "Agent-Net: live GPU health (NVML) and Ollama model catalogue",
        alias="CAPABILITY_DESCRIPTION",
        max_length=1024,
    )
    capability_capacity: int = Field(10, alias="CAPABILITY_CAPACITY", ge=1, le=10_000)
    capability_price_per_unit: int = Field(0, alias="CAPABILITY_PRICE_PER_UNIT", ge=0, le=INT64_MAX)
    capability_price_scaling: int = Field(1, alias="CAPABILITY_PRICE_SCALING", ge=1, le=INT64_MAX)
    capability_currency: str = Field("wei", alias="CAPABILITY_CURRENCY")
    worker_token: SecretStr | None = Field(None, alias="WORKER_TOKEN")
    worker_token_file: Path | None = Field(None, alias="WORKER_TOKEN_FILE")
    register_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = Field(
        30.0, alias="REGISTER_INTERVAL_SECONDS"
    )
    orch_ca_bundle: Path | None = Field(None, alias="ORCH_CA_BUNDLE")
    orch_tls_verify: bool | None = Field(None, alias="ORCH_TLS_VERIFY")

    # --- go-livepeer live runners (v0.9.0+), docs/live-runner.md ------------------------
    registration_protocol: Literal["byoc", "live-runner", "both"] = Field(
        "both", alias="REGISTRATION_PROTOCOL"
    )
    live_runner_gpu_index: int = Field(0, alias="LIVE_RUNNER_GPU_INDEX", ge=0, le=1023)
    live_runner_price_usd_per_hour: Decimal = Field(
        Decimal(0), alias="LIVE_RUNNER_PRICE_USD_PER_HOUR", ge=0, le=10**9
    )
    live_runner_prices: dict[str, Decimal] = Field(default_factory=dict, alias="LIVE_RUNNER_PRICES")
    live_runner_price_unit: Literal["hour", "fixed"] = Field("hour", alias="LIVE_RUNNER_PRICE_UNIT")
    live_runner_onchain: bool = Field(False, alias="LIVE_RUNNER_ONCHAIN")

    # --- Validators ----------------------------------------------------------------------
    @field_validator(
        "orch_secret",
        "orch_secret_file",
        "capability_url",
        "worker_token",
        "worker_token_file",
        "orch_ca_bundle",
        "orch_tls_verify",
        "usage_db",
        "agents_file",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("registration_protocol", "live_runner_price_unit", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("live_runner_price_usd_per_hour", mode="before")
    @classmethod
    def _blank_price_is_zero(cls, value: Any) -> Any:
        return "0" if isinstance(value, str) and value.strip() == "" else value

    @field_validator("live_runner_prices", mode="before")
    @classmethod
    def _parse_live_runner_prices(cls, value: Any) -> Any:
        """`gpu-check=0.5,other=2`: a price per capability, overriding the default."""
        if not isinstance(value, str):
            return value
        prices: dict[str, Decimal] = {}
        for item in _split_list(value):
            name, sep, amount = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ValueError(f"{item!r} is not capability=price")
            prices[name] = _decimal_price(amount)
        return prices

    @field_validator("orch_urls", mode="before")
    @classmethod
    def _parse_orch_urls(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("residency_pinned", mode="before")
    @classmethod
    def _parse_pinned(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("vram_budget")
    @classmethod
    def _check_vram_budget(cls, value: str) -> str:
        parse_vram_budget(value)
        return value.strip()

    @field_validator("residency_keep_alive")
    @classmethod
    def _check_keep_alive(cls, value: str) -> str:
        keep_alive_value(value)
        return value.strip()

    @field_validator("capability_names", mode="before")
    @classmethod
    def _parse_capability_names(cls, value: Any) -> Any:
        names = _split_list(value)
        return names if names else [DEFAULT_CAPABILITY_NAME]

    @field_validator("orch_urls")
    @classmethod
    def _check_orch_urls(cls, urls: list[str]) -> list[str]:
        _refuse_missing_scheme("ORCH_URL", urls, "https")  # go-livepeer serves TLS
        normalised = [_normalise_http_url(url) for url in urls]
        if len(set(normalised)) != len(normalised):
            raise ValueError("the same orchestrator is listed twice")
        return normalised

    @field_validator("capability_names")
    @classmethod
    def _check_capability_names(cls, names: list[str]) -> list[str]:
        for name in names:
            problem = capability_name_problem(name)
            if problem is not None:
                raise ValueError(f"{name!r} is {problem}")
            if name in RESERVED_ROUTES:
                raise ValueError(f"{name!r} is reserved for a health route")
        return names

    @field_validator("ollama_host")
    @classmethod
    def _check_ollama_host(cls, value: str) -> str:
        return ollama_base_url(value)

    @field_validator("capability_url")
    @classmethod
    def _check_capability_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _refuse_missing_scheme("CAPABILITY_URL", [value], "http")
        return _normalise_http_url(value)

    @field_validator("capability_currency")
    @classmethod
    def _check_currency(cls, value: str) -> str:
        currency = value.strip()
        if currency.lower() not in FIXED_PRICE_CURRENCIES:
            raise ValueError(
                f"{currency!r} needs the orchestrator's price feed, which go-livepeer cannot"
                " use for a BYOC capability without one (it drops the registration); use"
                " 'wei' or 'eth'"
            )
        return currency

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("worker_class", mode="before")
    @classmethod
    def _lower_worker_class(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("orch_secret_file", "worker_token_file", "orch_ca_bundle", "agents_file")
    @classmethod
    def _check_readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(value)!r} is not a readable file")
        return value

    # --- Derived values --------------------------------------------------------------------
    @property
    def orchestrator_secret(self) -> SecretStr | None:
        """The orchestrator secret from ORCH_SECRET or the file ORCH_SECRET_FILE names."""
        return self.orch_secret or _read_secret_file(self.orch_secret_file)

    @property
    def job_token(self) -> SecretStr | None:
        """The bearer token job routes require (WORKER_TOKEN or WORKER_TOKEN_FILE)."""
        return self.worker_token or _read_secret_file(self.worker_token_file)

    @property
    def orchestrators(self) -> list[OrchestratorTarget]:
        """Every orchestrator with the capability name this worker registers there."""
        names = self.capability_names
        if len(names) == 1:
            names = names * len(self.orch_urls)
        return [
            OrchestratorTarget(url=url, capability_name=name)
            for url, name in zip(self.orch_urls, names, strict=True)
        ]

    @property
    def job_routes(self) -> list[str]:
        """Every path that answers a job: /gpu-check, /agent-net and each capability name."""
        routes = [GPU_CHECK_ROUTE, "agent-net", *self.capability_names]
        return list(dict.fromkeys(routes))

    @property
    def advertised_url(self) -> str:
        """Where orchestrators reach this worker (CAPABILITY_URL, else this host's name)."""
        return self.capability_url or f"http://{socket.gethostname()}:{self.worker_port}"

    @property
    def uses_byoc(self) -> bool:
        """True when REGISTRATION_PROTOCOL registers BYOC capabilities (byoc or both)."""
        return self.registration_protocol in ("byoc", "both")

    @property
    def uses_live_runners(self) -> bool:
        """True when REGISTRATION_PROTOCOL heartbeats live runners (live-runner or both)."""
        return self.registration_protocol in ("live-runner", "both")

    @property
    def tls_verify(self) -> bool | str:
        """The `verify` argument for requests: a CA bundle path, True or False."""
        if self.orch_ca_bundle is not None and self.orch_tls_verify is not False:
            return str(self.orch_ca_bundle)
        return bool(self.orch_tls_verify)

    @property
    def usage_db_path(self) -> Path:
        """The usage database: USAGE_DB, else usage.sqlite3 in AGENT_NET_DATA_DIR."""
        return self.usage_db or self.data_dir / "usage.sqlite3"

    def live_runner_price(self, capability: str) -> Decimal:
        """A live runner's price: its LIVE_RUNNER_PRICES entry, else the default one."""
        return self.live_runner_prices.get(capability, self.live_runner_price_usd_per_hour)

    @property
    def stale_after_seconds(self) -> float:
        """Age beyond which a source's last reading is reported as stale."""
        return max(3 * self.sample_interval_seconds, 2.0)


def _decimal_price(text: str) -> Decimal:
    """A non-negative decimal USD amount, or ValueError."""
    try:
        price = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text.strip()!r} is not a decimal price") from None
    if not price.is_finite() or price < 0 or price > 10**9:
        raise ValueError(f"{text.strip()!r} must be a price from 0 to 1e9")
    return price


VramBudget = tuple[Literal["fraction", "mib"], float]
_KEEP_ALIVE_PATTERN = r"^(-?\d+)$|^(\d+(\.\d+)?(s|m|h))+$"


def parse_vram_budget(value: str) -> VramBudget:
    """VRAM_BUDGET: a fraction of total memory ("0.9") or MiB ("70000", "70000MiB")."""
    text = value.strip()
    number_text = text[:-3].strip() if text.lower().endswith("mib") else text
    try:
        number = float(number_text)
    except ValueError:
        raise ValueError(
            "give a fraction of total GPU memory (0 < x <= 1, e.g. 0.9) or MiB (e.g. 70000)"
        ) from None
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError("must be above 0")
    if number <= 1 and number_text == text:
        return ("fraction", number)
    return ("mib", number)


def budget_bytes(budget: VramBudget, total_bytes: int | None) -> int | None:
    """The budget in bytes for GPUs with `total_bytes` memory (None when unknown)."""
    kind, number = budget
    if kind == "mib":
        return int(number * 2**20)
    return None if total_bytes is None else int(number * total_bytes)


def keep_alive_value(value: str) -> int | str:
    """RESIDENCY_KEEP_ALIVE as Ollama takes it: seconds (int, negative = forever) or "24h"."""
    text = value.strip()
    if not re.match(_KEEP_ALIVE_PATTERN, text):
        raise ValueError('give seconds (-1 = forever) or a duration such as "24h" or "90m"')
    if re.match(r"^-?\d+$", text):
        if int(text) == 0:
            raise ValueError("0 would unload a model at once; give seconds, -1 or a duration")
        return int(text)
    return text


def _read_secret_file(path: Path | None) -> SecretStr | None:
    if path is None:
        return None
    value = path.read_text(encoding="utf-8").strip()
    return SecretStr(value) if value else None


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from `environ`, or raise ConfigError naming every problem at once.

    Each variable is checked on its own first; then the combinations (ORCH_URL needs a
    secret, one CAPABILITY_NAME per orchestrator, ...) are checked over every variable
    that is valid, and over what is known of the others (ORCH_URL=orch:8935 without a
    scheme still counts as set), so one start reports them all.
    """
    given = {key: value for key, value in environ.items() if isinstance(value, str)}
    try:
        settings: Settings | None = Settings.model_validate(given)
        problems: list[Problem] = []
    except ValidationError as exc:
        settings, problems = None, _field_problems(exc, given)
    invalid = {problem.variable for problem in problems}
    checked = settings or Settings.model_validate(
        {key: value for key, value in given.items() if key not in invalid}
    )
    problems += combination_problems(checked, given, invalid)
    if problems:
        raise ConfigError(describe_problems(problems))
    return checked


@dataclass(frozen=True)
class Problem:
    """One bad setting: the variable to change and what is wrong, in the project's words."""

    variable: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}"


SECRET_VARIABLES = frozenset({"ORCH_SECRET", "WORKER_TOKEN"})
_FILE_EXAMPLE = "the path of a file holding it, e.g. {alias}=/run/secrets/{name}"
# Each variable's form and an example, where the field's type and limits do not say it
# well enough (the others are worked out in `expected_form`).
FORMS: dict[str, str] = {
    "WORKER_HOST": "an address to listen on, e.g. WORKER_HOST=0.0.0.0",
    "OLLAMA_HOST": (
        "Ollama's address as Ollama itself takes it: host, host:port or an http(s) URL"
        " (no scheme: http, port 11434), e.g. OLLAMA_HOST=127.0.0.1:11434"
    ),
    "OLLAMA_MODEL": "an Ollama model name, e.g. OLLAMA_MODEL=codellama:34b-instruct-q4_k_m",
    "AGENTS_FILE": (
        "the path of an agents file (TOML, docs/agents.md), e.g."
        " AGENTS_FILE=agents.example.toml, or unset it for the one default agent"
        " (agent-net-llm on OLLAMA_MODEL)"
    ),
    "AGENT_NET_DATA_DIR": "a directory, e.g. AGENT_NET_DATA_DIR=data",
    "USAGE_DB": "a file path, e.g. USAGE_DB=data/usage.sqlite3",
    "VRAM_BUDGET": (
        "a fraction of total GPU memory (above 0, at most 1) or MiB, e.g. VRAM_BUDGET=0.9"
        " or VRAM_BUDGET=70000"
    ),
    "RESIDENCY_PINNED": (
        "model names, comma-separated, e.g. RESIDENCY_PINNED=codellama:34b-instruct-q4_k_m"
    ),
    "RESIDENCY_KEEP_ALIVE": (
        "seconds (-1: forever) or a duration such as 24h or 90m, e.g. RESIDENCY_KEEP_ALIVE=-1"
    ),
    "ORCH_URL": (
        "each orchestrator's URL with its scheme, comma-separated, e.g."
        " ORCH_URL=https://orchestrator:8935"
    ),
    "ORCH_SECRET": (
        "the orchestrator's -orchSecret, e.g. ORCH_SECRET=<its value> (for a new one:"
        " openssl rand -hex 32), or ORCH_SECRET_FILE=/run/secrets/orch_secret"
    ),
    "ORCH_SECRET_FILE": _FILE_EXAMPLE.format(alias="ORCH_SECRET_FILE", name="orch_secret"),
    "CAPABILITY_NAME": (
        "letters, digits, '.', '_', '-', at most 64 characters; one name, or one per"
        " ORCH_URL entry, comma-separated, e.g. CAPABILITY_NAME=agent-net"
    ),
    "CAPABILITY_URL": (
        "where orchestrators reach this worker, with its scheme, e.g."
        " CAPABILITY_URL=http://worker:9876"
    ),
    "CAPABILITY_DESCRIPTION": (
        "free text, at most 1024 characters, e.g. CAPABILITY_DESCRIPTION='GPU health'"
    ),
    "CAPABILITY_CURRENCY": "wei or eth, e.g. CAPABILITY_CURRENCY=wei",
    "WORKER_TOKEN": (
        "a shared token, e.g. WORKER_TOKEN=<a long random string> (openssl rand -hex 32),"
        " or WORKER_TOKEN_FILE=/run/secrets/worker_token"
    ),
    "WORKER_TOKEN_FILE": _FILE_EXAMPLE.format(alias="WORKER_TOKEN_FILE", name="worker_token"),
    "ORCH_CA_BUNDLE": (
        "the path of a PEM file, e.g. ORCH_CA_BUNDLE=/etc/agent-net/orchestrator-cert.pem"
    ),
    "LIVE_RUNNER_PRICES": (
        "capability=price pairs (USD), comma-separated, e.g. LIVE_RUNNER_PRICES=gpu-check=0.5"
    ),
}


def expected_form(alias: str) -> str:
    """What the variable `alias` takes, ending with an example: `FORMS`, or worked out
    from its field's type, limits and default."""
    if alias in FORMS:
        return FORMS[alias]
    field = next(f for f in Settings.model_fields.values() if f.alias == alias)
    default = field.get_default(call_default_factory=True)
    choices = getattr(field.annotation, "__args__", ())
    if field.annotation in (bool, bool | None):
        form, example = "true or false", str(bool(default)).lower()
    elif choices and all(isinstance(choice, str) for choice in choices):
        form = ", ".join(choices[:-1]) + f" or {choices[-1]}"
        example = str(default)
    else:
        limits = {type(item).__name__: item for item in field.metadata}
        kind = "a whole number" if field.annotation is int else "a number"
        if alias.endswith("_SECONDS"):
            kind = "a number of seconds"
        high = limits["Le"].le
        if "Ge" in limits:
            form = f"{kind} from {limits['Ge'].ge} to {high}"
        else:
            form = f"{kind} above {limits['Gt'].gt}, at most {high}"
        example = f"{default:g}" if isinstance(default, float) else str(default)
    return f"{form}, e.g. {alias}={example}"


# pydantic's error types, said in the project's words (the form follows in every line).
_WHAT_IS_WRONG = {
    "int_parsing": "not a whole number",
    "int_from_float": "not a whole number",
    "float_parsing": "not a number",
    "decimal_parsing": "not a number",
    "finite_number": "not a finite number",
    "bool_parsing": "neither true nor false",
    "literal_error": "not one of the choices",
    "string_too_short": "empty",
    "string_too_long": "too long",
}


def _field_problems(exc: ValidationError, given: Mapping[str, str]) -> list[Problem]:
    """One problem per bad variable (its first error), with its form and an example."""
    problems: dict[str, Problem] = {}
    for error in exc.errors(include_url=False):
        variable = str(error["loc"][0])
        if variable in problems:
            continue
        raw = given.get(variable, "")
        if error["type"] == "value_error":
            what = str(error["ctx"]["error"])
        elif error["type"].startswith(("greater_than", "less_than")):
            what = "out of range"
        else:
            what = _WHAT_IS_WRONG.get(error["type"], error["msg"].lower())
        problems[variable] = Problem(variable, _with_form(variable, what, raw))
    return list(problems.values())


def _with_form(variable: str, what: str, raw: str) -> str:
    """`what` is wrong with `raw`, then (unless `what` has one) the form and an example."""
    shown = "" if variable in SECRET_VARIABLES else raw.strip()
    if not raw.strip() and variable not in SECRET_VARIABLES and what in _PHRASES:
        what = "empty"
    elif shown and repr(shown) not in what and len(shown) <= 200:
        what = f"{shown!r} is {what}" if what in _PHRASES else f"{what} (got {shown!r})"
    if "e.g." in what:
        return what
    return f"{what}; expected {expected_form(variable)}"


_PHRASES = frozenset({*_WHAT_IS_WRONG.values(), "out of range"})


def combination_problems(
    settings: Settings, given: Mapping[str, str], invalid: AbstractSet[str] = frozenset()
) -> list[Problem]:
    """Problems between variables. `settings` holds every valid variable (the `invalid`
    ones at their defaults); `given` tells which variables are set at all."""

    def is_set(variable: str) -> bool:
        return bool(given.get(variable, "").strip())

    problems: list[Problem] = []
    orchestrators = len(_split_list(given.get("ORCH_URL", "")))
    names = _split_list(given.get("CAPABILITY_NAME", ""))
    if (
        orchestrators
        and "CAPABILITY_NAME" not in invalid
        and len(names) not in (0, 1, orchestrators)
    ):
        problems.append(
            Problem(
                "CAPABILITY_NAME",
                f"{len(names)} names for {orchestrators} ORCH_URL entries; give one name for"
                " every orchestrator, or one per ORCH_URL entry in the same order, e.g."
                " CAPABILITY_NAME=agent-net",
            )
        )
    secret_unknown = "ORCH_SECRET_FILE" in invalid
    secret = settings.orchestrator_secret
    if orchestrators and secret is None and not secret_unknown:
        problems.append(
            Problem(
                "ORCH_SECRET", f"required when ORCH_URL is set; expected {FORMS['ORCH_SECRET']}"
            )
        )
    if secret is not None and secret.get_secret_value().startswith(PLACEHOLDER_PREFIX):
        problems.append(
            Problem(
                "ORCH_SECRET",
                "still the placeholder from .env.example: set it to the orchestrator's"
                " -orchSecret (for a new one: openssl rand -hex 32)",
            )
        )
    for value, file in (("ORCH_SECRET", "ORCH_SECRET_FILE"), ("WORKER_TOKEN", "WORKER_TOKEN_FILE")):
        if is_set(value) and is_set(file):
            problems.append(Problem(file, f"set {value} or {file}, not both (unset one of them)"))
    unknown = sorted(set(settings.live_runner_prices) - {GPU_CHECK_ROUTE})
    if unknown:
        problems.append(
            Problem(
                "LIVE_RUNNER_PRICES",
                f"{', '.join(unknown)} is not a live-runner capability (known:"
                f" {GPU_CHECK_ROUTE}); expected {FORMS['LIVE_RUNNER_PRICES']}",
            )
        )
    onchain_inputs = {
        "LIVE_RUNNER_ONCHAIN",
        "REGISTRATION_PROTOCOL",
        "LIVE_RUNNER_PRICES",
        "LIVE_RUNNER_PRICE_USD_PER_HOUR",
    }
    free = settings.live_runner_price(GPU_CHECK_ROUTE) <= 0
    if (
        not invalid & onchain_inputs
        and settings.live_runner_onchain
        and settings.uses_live_runners
        and free
    ):
        problems.append(
            Problem(
                "LIVE_RUNNER_ONCHAIN",
                "an on-chain orchestrator refuses a live runner without a positive price; set"
                " LIVE_RUNNER_PRICE_USD_PER_HOUR (or LIVE_RUNNER_PRICES) for"
                f" {GPU_CHECK_ROUTE}, e.g. LIVE_RUNNER_PRICE_USD_PER_HOUR=0.5",
            )
        )
    return problems


def describe_problems(problems: list[Problem]) -> str:
    """The one message for every problem: a count, then one indented line each."""
    count = len(problems)
    header = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([header, *(f"  {problem}" for problem in problems)])
