"""Exact rational numbers rendered as text, without floats."""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction


def go_float_string(value: Fraction, prec: int) -> str:
    """Go's ``big.Rat.FloatString(prec)``: ``prec`` decimals, halves rounded away from zero.

    go-livepeer prints EVs this way in its errors (``ticket EV 101.00000 > max ...``).
    """
    scale = 10**prec
    magnitude = abs(value) * scale
    whole, rest = divmod(magnitude.numerator, magnitude.denominator)
    if 2 * rest >= magnitude.denominator:
        whole += 1
    sign = "-" if value < 0 and whole != 0 else ""
    if prec == 0:
        return f"{sign}{whole}"
    integer, decimals = divmod(whole, scale)
    return f"{sign}{integer}.{decimals:0{prec}d}"


def significant(value: Fraction, digits: int = 6) -> str:
    """``value`` correctly rounded to ``digits`` significant digits, plain or scientific."""
    if value == 0:
        return "0"
    with localcontext() as ctx:
        ctx.prec = digits
        rounded = Decimal(value.numerator) / Decimal(value.denominator)
    exponent = rounded.adjusted()
    if -5 <= exponent < 15:
        return format(rounded.normalize(), "f")
    return format(rounded.normalize(), "e").replace("e+", "e")
