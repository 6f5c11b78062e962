"""Wei amounts as operators write them, parsed exactly; and wei formatted for humans.

Accepted: plain wei (``29000000000000``), a unit (``18 gwei``, ``0.001 ETH``, any unit
name eth-utils knows, case-insensitive, plus ``eth``; the table is written out here so the
pricing check needs the standard library alone), thousands separators in groups of
three (``100 000 000 000 000``, ``1_000``, ``1,000``) and scientific notation that is a
whole number of wei (``1e15``, ``2.9e13``). Everything else raises ``AmountError`` with
the reason: negatives, fractional wei, empty, non-numbers, unknown units, values over
2^256-1.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_UINT256 = 2**256 - 1

# unit name (lower case) -> wei per unit: eth-utils' ``currency.units``, plus ``eth``
UNITS: dict[str, int] = {
    "wei": 1,
    **dict.fromkeys(("kwei", "babbage", "femtoether"), 10**3),
    **dict.fromkeys(("mwei", "lovelace", "picoether"), 10**6),
    **dict.fromkeys(("gwei", "shannon", "nanoether", "nano"), 10**9),
    **dict.fromkeys(("szabo", "microether", "micro"), 10**12),
    **dict.fromkeys(("finney", "milliether", "milli"), 10**15),
    **dict.fromkeys(("ether", "eth"), 10**18),
    **dict.fromkeys(("kether", "grand"), 10**21),
    "mether": 10**24,
    "gether": 10**27,
    "tether": 10**30,
}

_SEPARATORS = " _,'\u00a0\u2009\u202f"
_NUMBER = re.compile(
    r"(?P<int>\d{1,3}(?:[" + _SEPARATORS + r"]\d{3})+|\d+)?"
    r"(?:\.(?P<frac>\d+))?"
    r"(?:[eE](?P<exp>[+-]?\d+))?"
)
_UNIT_SUFFIX = re.compile(r"(?P<number>.*?)\s*(?P<unit>[A-Za-z]+)")
_MAX_DIGITS = 100
_MAX_EXPONENT = 100


class AmountError(ValueError):
    """An amount that is not a whole, non-negative number of wei within 256 bits."""


def parse_amount(text: str | int, *, what: str = "amount") -> int:
    """Return ``text`` as an exact integer number of wei, or raise ``AmountError``."""
    if isinstance(text, bool):
        raise AmountError(f"{what} {text!r}: not a number")
    if isinstance(text, int):
        return _in_range(text, what, repr(text))
    raw = text
    text = text.strip()
    if not text:
        raise AmountError(f"{what}: empty (expected wei, e.g. 29000000000000 or 18 gwei)")
    number, unit = text, "wei"
    suffix = _UNIT_SUFFIX.fullmatch(text)
    if suffix:  # a trailing word is a unit; ``1e15`` ends in a digit and never matches
        number, unit = suffix.group("number"), suffix.group("unit")
    per_unit = UNITS.get(unit.lower())
    if not number:
        raise AmountError(f"{what} {raw!r}: not a number")
    if per_unit is None:
        known = "wei, kwei, mwei, gwei, szabo, finney, ether (eth)"
        raise AmountError(f"{what} {raw!r}: unknown unit {unit!r} (known: {known})")
    if number.startswith("-"):
        raise AmountError(f"{what} {raw!r}: negative amounts are not allowed")
    value = _parse_number(number, what, raw) * per_unit
    if value.denominator != 1:
        raise AmountError(
            f"{what} {raw!r}: not a whole number of wei "
            f"({value.numerator}/{value.denominator} wei); wei cannot be divided"
        )
    return _in_range(value.numerator, what, repr(raw))


def _parse_number(number: str, what: str, raw: str) -> Fraction:
    match = _NUMBER.fullmatch(number)
    if not match or not (match.group("int") or match.group("frac")):
        if any(ch in _SEPARATORS for ch in number) and re.fullmatch(
            r"[\d.\s_,'\u00a0\u2009\u202f]+", number
        ):
            raise AmountError(
                f"{what} {raw!r}: thousands separators must split the digits into groups of three"
            )
        raise AmountError(f"{what} {raw!r}: not a number")
    int_part = match.group("int") or "0"
    separators = {ch for ch in int_part if ch in _SEPARATORS}
    if len(separators) > 1:
        raise AmountError(f"{what} {raw!r}: mixed thousands separators")
    digits = "".join(ch for ch in int_part if ch.isdigit())
    frac = match.group("frac") or ""
    exponent = int(match.group("exp") or 0)
    if len(digits) + len(frac) > _MAX_DIGITS or abs(exponent) > _MAX_EXPONENT:
        raise AmountError(f"{what} {raw!r}: too many digits or too large an exponent")
    mantissa = int(digits + frac)
    return Fraction(mantissa) * Fraction(10) ** (exponent - len(frac))


def _in_range(value: int, what: str, shown: str) -> int:
    if value < 0:
        raise AmountError(f"{what} {shown}: negative amounts are not allowed")
    if value > MAX_UINT256:
        raise AmountError(f"{what} {shown}: over 2^256-1, the largest amount a ticket can hold")
    return value


def readable_wei(wei: int) -> str:
    """``wei`` in the unit a person reads best: ETH from 0.0001 ETH, gwei from 100000 wei."""
    if wei >= 10**14:
        return f"{_scaled(wei, UNITS['ether'])} ETH"
    if wei >= 10**5:
        return f"{_scaled(wei, UNITS['gwei'])} gwei"
    return f"{wei:,} wei"


def format_wei(wei: int) -> str:
    """``29000000000000 wei (29,000 gwei)``: exact wei, then the readable form if different."""
    readable = readable_wei(wei)
    if readable.endswith(" wei"):
        return f"{wei} wei"
    return f"{wei} wei ({readable})"


def _scaled(wei: int, per_unit: int) -> str:
    """``wei / per_unit`` written out exactly, with thousands separators."""
    whole, rest = divmod(wei, per_unit)
    decimals = len(str(per_unit)) - 1
    fraction = f"{rest:0{decimals}d}".rstrip("0") if rest else ""
    return f"{whole:,}" + (f".{fraction}" if fraction else "")
