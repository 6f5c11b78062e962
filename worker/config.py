"""Settings from environment variables: typed, validated, every error reported at once.

Every variable has an embedded default, so the worker starts with none set. A bad value
stops startup with one message that names every bad variable (never its secret value).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
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
    model_validator,
)

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
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

    The worker never guesses http:// for a bare host:port (Ollama's own OLLAMA_HOST does):
    a guess hides a TLS orchestrator behind a plain-HTTP error.
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


def _normalise_http_url(value: str, *, default_port: int | None = None) -> str:
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
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port: {exc}") from None
    netloc = parts.netloc
    if port is None and default_port is not None:
        netloc = f"{netloc}:{default_port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


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
        _refuse_missing_scheme("OLLAMA_HOST", [value], "http")
        return _normalise_http_url(value, default_port=11434)

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

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        names, urls = self.capability_names, self.orch_urls
        if urls and len(names) not in (1, len(urls)):
            raise ValueError(
                f"CAPABILITY_NAME: give one name, or one per ORCH_URL entry"
                f" ({len(urls)}), not {len(names)}"
            )
        if urls and self.orchestrator_secret is None:
            raise ValueError("ORCH_SECRET (or ORCH_SECRET_FILE) is required when ORCH_URL is set")
        secret = self.orchestrator_secret
        if secret is not None and secret.get_secret_value().startswith(PLACEHOLDER_PREFIX):
            raise ValueError(
                "ORCH_SECRET is still the placeholder from .env.example: set it to the"
                " orchestrator's -orchSecret (for a new one: openssl rand -hex 32)"
            )
        if self.orch_secret is not None and self.orch_secret_file is not None:
            raise ValueError("ORCH_SECRET and ORCH_SECRET_FILE: set one, not both")
        if self.worker_token is not None and self.worker_token_file is not None:
            raise ValueError("WORKER_TOKEN and WORKER_TOKEN_FILE: set one, not both")
        from worker.registration.runners import runner_capabilities

        known = {spec.name for spec in runner_capabilities(self)}
        unknown = sorted(set(self.live_runner_prices) - known)
        if unknown:
            raise ValueError(
                f"LIVE_RUNNER_PRICES: {', '.join(unknown)} is not a live-runner capability"
                f" (known: {', '.join(sorted(known))})"
            )
        if self.live_runner_onchain and self.uses_live_runners:
            free = [spec.name for spec in runner_capabilities(self) if spec.price <= 0]
            if free:
                raise ValueError(
                    "LIVE_RUNNER_ONCHAIN: an on-chain orchestrator refuses a live runner without"
                    f" a positive price; set LIVE_RUNNER_PRICE_USD_PER_HOUR (or LIVE_RUNNER_PRICES)"
                    f" for {', '.join(free)}"
                )
        return self

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
        routes = ["gpu-check", "agent-net", *self.capability_names]
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
    """Build Settings from `environ`, or raise ConfigError naming every bad variable."""
    try:
        return Settings.model_validate(dict(environ))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


SECRET_VARIABLES = frozenset({"ORCH_SECRET", "WORKER_TOKEN"})


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        location = [str(part) for part in error["loc"] if isinstance(part, str)]
        message = error["msg"].removeprefix("Value error, ")
        if not location:
            lines.append(f"  {message}")
            continue
        variable = location[0]
        shown = error.get("input")
        if (
            variable not in SECRET_VARIABLES
            and isinstance(shown, str)
            and len(shown) <= 200
            and repr(shown.strip()) not in message  # the message quotes it already
        ):
            message = f"{message} (got {shown!r})"
        lines.append(f"  {variable}: {message}")
    count = len(lines)
    header = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([header, *lines])
