"""Settings from environment variables: typed, validated, every error reported at once.

Every variable has an embedded default, so the worker starts with none set. A bad value
stops startup with one message that names every bad variable (never its secret value).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
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
RESERVED_ROUTES = frozenset({"healthz", "readyz", "metrics"})


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


def _normalise_http_url(value: str, *, default_port: int | None = None) -> str:
    """Return `value` as scheme://host[:port] without a trailing slash, or raise ValueError."""
    raw = value.strip()
    if "://" not in raw:
        raw = f"http://{raw}"
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

    # --- Validators ----------------------------------------------------------------------
    @field_validator(
        "orch_secret",
        "orch_secret_file",
        "capability_url",
        "worker_token",
        "worker_token_file",
        "orch_ca_bundle",
        "orch_tls_verify",
        "agents_file",
        mode="before",
    )
    @classmethod
    def _empty_means_unset(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("orch_urls", mode="before")
    @classmethod
    def _parse_orch_urls(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("capability_names", mode="before")
    @classmethod
    def _parse_capability_names(cls, value: Any) -> Any:
        names = _split_list(value)
        return names if names else [DEFAULT_CAPABILITY_NAME]

    @field_validator("orch_urls")
    @classmethod
    def _check_orch_urls(cls, urls: list[str]) -> list[str]:
        normalised = [_normalise_http_url(url) for url in urls]
        if len(set(normalised)) != len(normalised):
            raise ValueError("the same orchestrator is listed twice")
        return normalised

    @field_validator("capability_names")
    @classmethod
    def _check_capability_names(cls, names: list[str]) -> list[str]:
        import re

        for name in names:
            if not re.match(CAPABILITY_NAME_PATTERN, name):
                raise ValueError(
                    f"{name!r} is not a valid capability name (letters, digits, '.', '_', '-';"
                    " at most 64 characters)"
                )
            if name in RESERVED_ROUTES:
                raise ValueError(f"{name!r} is reserved for a health route")
        return names

    @field_validator("ollama_host")
    @classmethod
    def _check_ollama_host(cls, value: str) -> str:
        return _normalise_http_url(value, default_port=11434)

    @field_validator("capability_url")
    @classmethod
    def _check_capability_url(cls, value: str | None) -> str | None:
        return None if value is None else _normalise_http_url(value)

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
    def tls_verify(self) -> bool | str:
        """The `verify` argument for requests: a CA bundle path, True or False."""
        if self.orch_ca_bundle is not None and self.orch_tls_verify is not False:
            return str(self.orch_ca_bundle)
        return bool(self.orch_tls_verify)

    @property
    def stale_after_seconds(self) -> float:
        """Age beyond which a source's last reading is reported as stale."""
        return max(3 * self.sample_interval_seconds, 2.0)


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
        if variable not in SECRET_VARIABLES and isinstance(shown, str) and len(shown) <= 200:
            message = f"{message} (got {shown!r})"
        lines.append(f"  {variable}: {message}")
    count = len(lines)
    header = f"invalid configuration ({count} problem{'s' if count != 1 else ''}):"
    return "\n".join([header, *lines])
