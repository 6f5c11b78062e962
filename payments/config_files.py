"""go-livepeer ``-config`` files read the way go-livepeer reads them, then typed.

go-livepeer parses the file with ff's ``PlainParser`` (peterbourgon/ff v3.4.0): each line
is trimmed; empty lines and lines starting with ``#`` are skipped; the flag name runs up
to the first space and the rest, trimmed, is the value (``true`` when there is none);
`` #`` starts an inline comment. A name that is not a go-livepeer flag, or a value the
flag cannot parse, stops the node at start-up: here both raise ``ConfigError`` with the
file, the line and the reason. Command-line flags and ``LP_*`` environment variables
override the file; this module sees only the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NoReturn, TypeVar

from payments.amounts import AmountError, parse_amount
from payments.go_values import (
    GoValueError,
    parse_big_int,
    parse_bool,
    parse_int,
    parse_price,
    parse_rat,
)
from payments.livepeer_flags import (
    BOOL,
    DEFAULTS,
    DURATION,
    FLAG_TYPES,
    FLOAT,
    INT,
    INT64,
    SECRET_FLAGS,
    env_var,
)

_MAX_LINE = 64 * 1024  # bufio.Scanner's default token limit
_DURATION = re.compile(r"[+-]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+)")
_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?i:inf|infinity|nan)"
)
_AMOUNT_FLAGS = frozenset(
    {"ticketEV", "maxFaceValue", "maxTicketEV", "maxTotalEV", "pricePerUnit", "maxPricePerUnit",
     "maxGasPrice", "minGasPrice"}
)  # fmt: skip


T = TypeVar("T")


class ConfigError(ValueError):
    """A config file go-livepeer would not start with (or that is missing)."""

    def __init__(self, path: Path | str, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Setting:
    """A flag's value as written, and its line (``None`` for go-livepeer's default)."""

    value: str
    line: int | None


@dataclass(frozen=True)
class ConfigFile:
    """The flags one config file sets."""

    path: Path
    settings: dict[str, Setting]

    def get(self, name: str) -> Setting:
        """The file's setting, or go-livepeer's default (``line=None``)."""
        return self.settings.get(name) or Setting(DEFAULTS.get(name, ""), None)

    def is_set(self, name: str) -> bool:
        return name in self.settings

    def secrets(self) -> list[tuple[str, int]]:
        """Secret-bearing flags written in the file, with their lines."""
        return [(name, s.line or 0) for name, s in self.settings.items() if name in SECRET_FLAGS]


def read_config_file(path: Path | str) -> ConfigFile:
    """Parse ``path`` as go-livepeer would; ``ConfigError`` for anything it would refuse."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror or exc}") from None
    return parse_config_text(text, path)


def parse_config_text(text: str, path: Path | str = "<config>") -> ConfigFile:
    """Parse config ``text``; ``path`` is used in error messages."""
    path = Path(path)
    settings: dict[str, Setting] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if len(raw.encode("utf-8")) > _MAX_LINE:
            raise ConfigError(path, number, "line longer than 64 KiB: go-livepeer cannot read it")
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, space, value = line.partition(" ")
        value = value.strip() if space else "true"
        if " #" in value:
            value = value[: value.index(" #")].strip()
        _check_name(path, number, name)
        if name in settings:
            first = settings[name].line
            raise ConfigError(
                path,
                number,
                f"{name} is already set on line {first}; keep one (go-livepeer "
                "would silently use the last)",
            )
        _check_type(path, number, name, value)
        settings[name] = Setting(value, number)
    return ConfigFile(path, settings)


def _check_name(path: Path, number: int, name: str) -> None:
    if name in FLAG_TYPES:
        return
    if "\t" in name:
        reason = "separate the flag name and its value with a space: go-livepeer splits on the "
        reason += "first space only, so a tab makes the whole line the flag name"
    elif name.lstrip("-") in FLAG_TYPES:
        reason = f"write the flag name without the dash: {name.lstrip('-')}"
    else:
        close = [flag for flag in FLAG_TYPES if flag.lower() == name.lower()]
        reason = f"unknown go-livepeer flag {name!r}: the node would refuse to start"
        if close:
            reason += f" (flag names are case-sensitive: did you mean {close[0]}?)"
    raise ConfigError(path, number, reason)


def _check_type(path: Path, number: int, name: str, value: str) -> None:
    kind = FLAG_TYPES[name]
    try:
        if kind == BOOL:
            parse_bool(value)
        elif kind in (INT, INT64):
            parse_int(value, 64)
        elif kind == FLOAT and not _FLOAT.fullmatch(value):
            raise GoValueError(f"{value!r} is not a number")
        elif kind == DURATION and not _DURATION.fullmatch(value):
            raise GoValueError(f"{value!r} is not a Go duration (e.g. 500ms, 10s, 1m)")
    except GoValueError as exc:
        raise ConfigError(path, number, f"{name}: {exc}{_wei_hint(name, value)}") from None


def _wei_hint(name: str, value: str) -> str:
    """Suggest the plain-wei spelling when the operator wrote a friendly amount."""
    if name not in _AMOUNT_FLAGS:
        return ""
    try:
        wei = parse_amount(value)
    except AmountError:
        return ""
    return f"; go-livepeer reads plain wei here: write {name} {wei}"


# --- typed values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """A price per ``pixelsPerUnit`` units, and its currency ("" / "wei" / "eth" are fixed)."""

    per_unit: Fraction
    currency: str
    pixels_per_unit: int

    @property
    def fixed(self) -> bool:
        return self.currency.lower() in ("", "wei", "eth")

    def wei_per_pixel(self) -> Fraction | None:
        """Wei per pixel (or per compute unit); ``None`` for a price-feed currency."""
        if not self.fixed:
            return None
        scale = 10**18 if self.currency.lower() == "eth" else 1
        return self.per_unit * scale / self.pixels_per_unit


@dataclass(frozen=True)
class OrchestratorSettings:
    """The orchestrator flags that decide its price and ticket parameters."""

    config: ConfigFile
    network: str
    price: Price | None  # None: -pricePerUnit not set
    ticket_ev: int
    max_face_value: int
    auto_adjust_price: bool
    max_gas_price: int
    min_gas_price: int | None


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway flags that decide which prices and tickets it accepts."""

    config: ConfigFile
    network: str
    max_price: Price  # per_unit 0: any price
    max_ticket_ev: Fraction
    max_total_ev: Fraction
    deposit_multiplier: int


def orchestrator_settings(config: ConfigFile) -> OrchestratorSettings:
    """Typed orchestrator settings; ``ConfigError`` where go-livepeer would refuse a value."""
    pixels = _pixels_per_unit(config)
    price = None
    if config.is_set("pricePerUnit"):
        per_unit, currency = _typed(config, "pricePerUnit", parse_price)
        price = Price(per_unit, currency, pixels)
    ticket_ev = _typed(config, "ticketEV", parse_big_int)
    if ticket_ev < 0:
        _fail(config, "ticketEV", "must not be negative: go-livepeer refuses to start")
    max_face_value = _typed(config, "maxFaceValue", parse_big_int)
    if max_face_value < 0:
        _fail(config, "maxFaceValue", "must not be negative (write 0 for no cap)")
    max_gas_price = _typed(config, "maxGasPrice", parse_int)
    if max_gas_price < 0:
        _fail(config, "maxGasPrice", "must not be negative (write 0 for no maximum)")
    min_gas_price = None
    if config.is_set("minGasPrice"):
        min_gas_price = _typed(config, "minGasPrice", parse_int)
    return OrchestratorSettings(
        config=config,
        network=config.get("network").value,
        price=price,
        ticket_ev=ticket_ev,
        max_face_value=max_face_value,
        auto_adjust_price=_typed(config, "autoAdjustPrice", parse_bool),
        max_gas_price=max_gas_price,
        min_gas_price=min_gas_price,
    )


def gateway_settings(config: ConfigFile) -> GatewaySettings:
    """Typed gateway settings; ``ConfigError`` where go-livepeer would refuse a value."""
    pixels = _pixels_per_unit(config)
    per_unit, currency = _typed(config, "maxPricePerUnit", parse_price)
    max_ticket_ev = _typed(config, "maxTicketEV", parse_rat)
    max_total_ev = _typed(config, "maxTotalEV", parse_rat)
    for name, value in (("maxTicketEV", max_ticket_ev), ("maxTotalEV", max_total_ev)):
        if value < 0:
            _fail(config, name, "must not be negative: go-livepeer refuses to start")
    multiplier = _typed(config, "depositMultiplier", parse_int)
    if multiplier <= 0:
        _fail(config, "depositMultiplier", "must be greater than 0: go-livepeer refuses to start")
    return GatewaySettings(
        config=config,
        network=config.get("network").value,
        max_price=Price(per_unit, currency, pixels),
        max_ticket_ev=max_ticket_ev,
        max_total_ev=max_total_ev,
        deposit_multiplier=multiplier,
    )


def _pixels_per_unit(config: ConfigFile) -> int:
    value = _typed(config, "pixelsPerUnit", parse_rat)
    if value.denominator != 1 or value <= 0:
        _fail(config, "pixelsPerUnit", "must be a whole number > 0: go-livepeer refuses to start")
    return value.numerator


def _typed(config: ConfigFile, name: str, parser: Callable[[str], T]) -> T:
    setting = config.get(name)
    try:
        return parser(setting.value)
    except GoValueError as exc:
        _fail(config, name, f"{exc}{_wei_hint(name, setting.value)}")


def _fail(config: ConfigFile, name: str, reason: str) -> NoReturn:
    setting = config.get(name)
    raise ConfigError(config.path, setting.line, f"{name} {setting.value!r}: {reason}")


def describe_secret_source(flag: str) -> str:
    """How to give go-livepeer ``flag`` without writing it in a config file."""
    return f"set {env_var(flag)} in the container's environment instead"
