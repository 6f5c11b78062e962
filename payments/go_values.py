"""How go-livepeer parses flag values, so the check predicts what the node will do.

Each parser accepts what the Go code accepts (``strconv.ParseBool``, ``strconv.ParseInt``
with base 0, ``big.Int.SetString(s, 10)``, ``big.Rat.SetString``, the ``pricePerUnit``
regular expression in ``cmd/livepeer/starter/starter.go``) and raises ``GoValueError``
otherwise. Two rarely used corners are refused rather than emulated: ``big.Rat`` numbers
with a ``0x``/``0b``/``0o`` prefix or a binary ``p`` exponent.
"""

from __future__ import annotations

import re
from fractions import Fraction

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_DEC = r"[0-9](?:_?[0-9])*"
_RAT_FLOAT = re.compile(
    rf"(?P<sign>[+-]?)(?P<int>{_DEC})?(?:(?P<dot>\.)(?P<frac>{_DEC})?)?"
    rf"(?:[eE](?P<exp>[+-]?{_DEC}))?"
)
_PRICE = re.compile(r"(?P<price>[0-9]+(?:\.[0-9]+)?)(?P<currency>[A-z][A-z0-9]*)?")
_MAX_EXPONENT = 10_000


class GoValueError(ValueError):
    """A value go-livepeer would refuse for this flag."""


def parse_bool(text: str) -> bool:
    """``strconv.ParseBool`` (used by Go's ``flag.Bool``)."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise GoValueError(f"{text!r} is not a Go boolean (use true or false)")


def parse_int(text: str, bits: int = 64) -> int:
    """``strconv.ParseInt(text, 0, bits)`` (used by Go's ``flag.Int`` / ``flag.Int64``).

    Base 0: ``0x``/``0o``/``0b`` prefixes, a leading ``0`` means octal, and underscores
    may separate digits.
    """
    value = _parse_int_base0(text, signed=True)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if not low <= value <= high:
        raise GoValueError(f"{text!r} is out of range for a {bits}-bit integer")
    return value


def _parse_int_base0(text: str, *, signed: bool) -> int:
    body = text[1:] if signed and text[:1] in "+-" else text
    if not body or not body.isascii() or body != body.strip():
        raise GoValueError(f"{text!r} is not an integer")
    if re.fullmatch(r"0[0-7_]+", body):  # Go: leading 0 means octal
        body = "0o" + body[1:]
    elif body[:1] == "0" and len(body) > 1 and body[1] not in "xXoObB":
        raise GoValueError(f"{text!r} is not an integer (a leading 0 means octal in Go)")
    try:
        value = int(body, 0)
    except ValueError:
        raise GoValueError(f"{text!r} is not an integer") from None
    return -value if text.startswith("-") else value


def parse_big_int(text: str) -> int:
    """``big.Int.SetString(text, 10)``: an optional sign and decimal digits, nothing else."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise GoValueError(f"{text!r} is not a plain decimal integer")
    return int(text)


def parse_rat(text: str) -> Fraction:
    """``big.Rat.SetString``: ``a/b`` or a decimal number with an optional ``e`` exponent."""
    if "/" in text:
        numerator, denominator = text.split("/", 1)
        num = _parse_int_base0(numerator, signed=True)
        den = _parse_int_base0(denominator, signed=False)
        if den == 0:
            raise GoValueError(f"{text!r} divides by zero")
        return Fraction(num, den)
    match = _RAT_FLOAT.fullmatch(text)
    if not match or not (match.group("int") or match.group("frac")):
        if re.match(r"[+-]?0[xXbBoO]", text) or re.search(r"[pP]", text):
            raise GoValueError(f"{text!r}: write a plain decimal number (0x/0b/0o/p not supported)")
        raise GoValueError(f"{text!r} is not a rational number")
    int_part = (match.group("int") or "0").replace("_", "")
    frac = (match.group("frac") or "").replace("_", "")
    exponent = int((match.group("exp") or "0").replace("_", ""))
    if abs(exponent) > _MAX_EXPONENT:
        raise GoValueError(f"{text!r}: exponent too large")
    value = Fraction(int(int_part + frac)) * Fraction(10) ** (exponent - len(frac))
    return -value if match.group("sign") == "-" else value


def parse_price(text: str) -> tuple[Fraction, str]:
    """``parsePricePerUnit``: ``<price><currency>``, e.g. ``1000``, ``0.5USD``, ``2ETH``.

    Returns the price and the currency as written ("" when none). A sign is refused.
    """
    match = _PRICE.fullmatch(text)
    if not match:
        raise GoValueError(f"{text!r} is not <price><currency> (e.g. 29000000000000 or 0.50USD)")
    return parse_rat(match.group("price")), match.group("currency") or ""
