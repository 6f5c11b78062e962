"""Amount parsing and formatting: exact, forgiving about notation, strict about meaning."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.amounts import (
    MAX_UINT256,
    UNITS,
    AmountError,
    format_wei,
    parse_amount,
    readable_wei,
)

uint256 = st.integers(min_value=0, max_value=MAX_UINT256)


@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("29000000000000", 29_000_000_000_000),
        ("18 gwei", 18 * 10**9),
        ("18gwei", 18 * 10**9),
        ("18 GWEI", 18 * 10**9),
        ("0.001 ETH", 10**15),
        ("0.001 eth", 10**15),
        ("0.001 ether", 10**15),
        ("1 finney", 10**15),
        ("100 000 000 000 000", 10**14),  # the seed's table
        ("1_000", 1000),
        ("1,000,000", 10**6),
        ("1e15", 10**15),
        ("2.9e13", 29 * 10**12),
        ("2.9E13 wei", 29 * 10**12),
        ("1e-9 ETH", 10**9),
        ("  42  ", 42),
        (str(MAX_UINT256), MAX_UINT256),
        ("0", 0),
    ],
)
def test_accepts_what_operators_write(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "negative"),
        ("-18 gwei", "negative"),
        ("1.5", "not a whole number of wei"),
        ("0.5 wei", "not a whole number of wei"),
        ("1e-3", "not a whole number of wei"),
        ("1.0000000001 gwei", "not a whole number of wei"),
        ("", "empty"),
        ("   ", "empty"),
        ("abc", "not a number"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("0x10", "not a number"),
        ("18 gwie", "unknown unit 'gwie'"),
        ("5 dollars", "unknown unit"),
        (str(MAX_UINT256 + 1), "over 2^256-1"),
        ("1e78", "over 2^256-1"),
        ("1e1000000", "too large an exponent"),
        ("1000 000", "groups of three"),
        ("1 000_000", "mixed thousands separators"),
    ],
)
def test_rejects_with_a_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(AmountError, match=re.escape(reason)) as excinfo:
        parse_amount(text)
    if text.strip():
        assert repr(text) in str(excinfo.value)  # the message names the input


def test_int_input_is_range_checked() -> None:
    assert parse_amount(10**18) == 10**18
    with pytest.raises(AmountError, match="negative"):
        parse_amount(-1)
    with pytest.raises(AmountError, match=re.escape("over 2^256-1")):
        parse_amount(MAX_UINT256 + 1)
    with pytest.raises(AmountError):
        parse_amount(True)  # type: ignore[arg-type]


@settings(max_examples=300)
@given(uint256)
def test_plain_and_grouped_wei_round_trip(wei: int) -> None:
    assert parse_amount(str(wei)) == wei
    assert parse_amount(f"{wei:,}") == wei
    assert parse_amount(f"{wei:_}") == wei
    assert parse_amount(f"{wei:,}".replace(",", " ")) == wei


@settings(max_examples=300)
@given(uint256)
def test_readable_form_parses_back_to_the_same_wei(wei: int) -> None:
    readable = readable_wei(wei)
    assert parse_amount(readable) == wei
    assert format_wei(wei).startswith(f"{wei} wei")


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10**40), st.integers(min_value=0, max_value=30))
def test_scientific_notation_is_exact(mantissa: int, exponent: int) -> None:
    wei = mantissa * 10**exponent
    if wei > MAX_UINT256:
        with pytest.raises(AmountError):
            parse_amount(f"{mantissa}e{exponent}")
    else:
        assert parse_amount(f"{mantissa}e{exponent}") == wei


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=10**30), st.sampled_from(["gwei", "ether", "szabo"]))
def test_units_scale_exactly(amount: int, unit: str) -> None:
    scale = {"gwei": 10**9, "ether": 10**18, "szabo": 10**12}[unit]
    assert parse_amount(f"{amount} {unit}") == amount * scale
    assert parse_amount(f"{amount}{unit.upper()}") == amount * scale


def test_readable_units() -> None:
    assert readable_wei(29 * 10**12) == "29,000 gwei"
    assert readable_wei(10**14) == "0.0001 ETH"
    assert readable_wei(83_333_333) == "0.083333333 gwei"
    assert readable_wei(999) == "999 wei"
    assert format_wei(18 * 10**9) == "18000000000 wei (18 gwei)"


def test_unit_table_is_the_one_eth_utils_has() -> None:
    """The written-out table (no eth-utils at run time) matches eth-utils', plus ``eth``."""
    from eth_utils.currency import units

    expected = {name.lower(): int(value) for name, value in units.items()} | {"eth": 10**18}
    assert expected == UNITS
