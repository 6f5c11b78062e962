"""winProb and ticket EV against go-livepeer's own cases and an independent rational reference."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from payments.numbers import go_float_string
from payments.winprob import (
    MAX_WIN_PROB,
    describe_probability,
    ticket_ev,
    win_prob,
    win_probability,
)

GWEI = 10**9
uint256 = st.integers(min_value=0, max_value=2**256 - 1)


def reference_win_prob(ev: int, face_value: int) -> int:
    """Independent reference: the rational ceil(maxWinProb / faceValue), plus Go's Int64 quirk."""
    if face_value == 0:
        return 0
    if face_value == ev:
        return 2**256 - 1
    ratio = Fraction(2**256 - 1, face_value)
    if ratio.denominator == 1:
        return ev * ratio.numerator
    remainder = (2**256 - 1) - math.floor(ratio) * face_value
    if remainder % 2**64 == 0:  # go: m.Int64() == 0 although m != 0
        return ev * math.floor(ratio)
    return ev * math.ceil(ratio)


# go-livepeer pm/recipient_test.go, TestTicketParams: EV 5, RedeemGas 10000,
# TxCostMultiplier 100; faceValue 1e8 (gas price 100), 777e6 (gas price 777) and the
# max float 10001; the expected winProb values are upstream's literals.
UPSTREAM_TICKET_PARAMS = [
    (5, 100_000_000, 5789604461865809771178549250434395392663499233282028201972879200395660),
    (5, 777_000_000, 745122839364969082519761808292714979750772102095499125093034646125570),
    (5, 10_001, 57890255593098787833002192285115442382396752657554526567072084795477017120),
]


@pytest.mark.parametrize(("ev", "face_value", "expected"), UPSTREAM_TICKET_PARAMS)
def test_upstream_ticket_params_win_prob(ev: int, face_value: int, expected: int) -> None:
    assert win_prob(ev, face_value) == expected
    # upstream: "Might be slightly off due to truncation": |EV - fv*winProb/max| <= 1
    assert abs(ev - face_value * expected // MAX_WIN_PROB) <= 1


def test_upstream_calc_win_prob_edge_cases() -> None:
    """pm/recipient_test.go calcWinProb: faceValue 0 -> 0, faceValue == EV -> maxWinProb."""
    assert win_prob(5, 0) == 0
    assert win_prob(0, 0) == 0
    assert win_prob(5, 5) == MAX_WIN_PROB
    assert win_prob(10**18, 10**18) == MAX_WIN_PROB
    # TestTicketParams "default faceValue < EV": faceValue = EV * 100
    assert win_prob(5, 500) == reference_win_prob(5, 500)


@pytest.mark.parametrize(
    ("face_value", "win_prob_value", "expected"),
    [  # pm/ticket_test.go TestEV, Ticket.EV().FloatString(0)
        (1000, MAX_WIN_PROB // 2, "500"),
        (1000, 0, "0"),
        (1000, MAX_WIN_PROB, "1000"),
        (0, 999, "0"),
    ],
)
def test_upstream_ticket_ev(face_value: int, win_prob_value: int, expected: str) -> None:
    assert go_float_string(ticket_ev(face_value, win_prob_value), 0) == expected


@pytest.mark.parametrize(
    ("win_prob_value", "prec", "expected"),
    [  # pm/ticket_test.go TestWinProbRat, WinProbRat().FloatString(prec)
        (MAX_WIN_PROB // 2, 1, "0.5"),
        (MAX_WIN_PROB // 4, 2, "0.25"),
        (0, 0, "0"),
        (MAX_WIN_PROB, 0, "1"),
    ],
)
def test_upstream_win_prob_rat(win_prob_value: int, prec: int, expected: str) -> None:
    assert go_float_string(win_probability(win_prob_value), prec) == expected


def test_seed_worked_example_18_gwei_at_180_gwei_is_one_in_ten() -> None:
    wp = win_prob(18 * GWEI, 180 * GWEI)
    probability = win_probability(wp)
    # rounded up, never down: at least 1/10 and less than one 2^256th above it
    assert Fraction(1, 10) <= probability < Fraction(1, 10) + Fraction(18 * GWEI, MAX_WIN_PROB)
    ev = ticket_ev(180 * GWEI, wp)
    assert 18 * GWEI <= ev < 18 * GWEI + Fraction(1, 10**50)
    assert math.floor(ev) == 18 * GWEI
    assert describe_probability(wp).startswith("0.1 (10%, 1 ticket in 10 wins)")


def test_seed_config_values_give_029() -> None:
    wp = win_prob(29_000_000_000_000, 100_000_000_000_000)
    assert go_float_string(win_probability(wp), 20) == "0.29000000000000000000"


def test_go_int64_quirk_is_reproduced() -> None:
    """Remainder 2^64: non-zero, but its low 64 bits are zero, so go-livepeer does not round up."""
    face_value = MAX_WIN_PROB - 2**64
    quotient, remainder = divmod(MAX_WIN_PROB, face_value)
    assert (quotient, remainder) == (1, 2**64)
    assert win_prob(7, face_value) == 7 * quotient  # not 7 * (quotient + 1)
    # a remainder with any low bit set is rounded up
    face_value = MAX_WIN_PROB - 2**64 - 1
    assert divmod(MAX_WIN_PROB, face_value) == (1, 2**64 + 1)
    assert win_prob(7, face_value) == 7 * 2


@settings(max_examples=500)
@given(ev=uint256, face_value=uint256)
@example(ev=1, face_value=MAX_WIN_PROB - 2**64)
@example(ev=3, face_value=3)
@example(ev=1, face_value=1)
@example(ev=0, face_value=7)
def test_win_prob_matches_rational_reference(ev: int, face_value: int) -> None:
    assert win_prob(ev, face_value) == reference_win_prob(ev, face_value)


@settings(max_examples=500)
@given(st.integers(min_value=1, max_value=2**64 - 1), st.data())
def test_realised_ev_is_never_below_configured_and_rounds_back(
    face_value: int, data: st.DataObject
) -> None:
    ev = data.draw(st.integers(min_value=0, max_value=face_value - 1))
    wp = win_prob(ev, face_value)
    realised = ticket_ev(face_value, wp)
    assert realised == Fraction(face_value) * Fraction(wp, 2**256 - 1)
    excess = realised - ev
    assert 0 <= excess < Fraction(max(ev, 1) * face_value, 2**256 - 1)
    assert math.floor(realised) == ev  # the EV survives the round trip, to the wei
    assert win_probability(wp) < 1


@settings(max_examples=300)
@given(face_value=uint256, win_prob_value=uint256)
def test_ticket_ev_is_the_exact_inverse(face_value: int, win_prob_value: int) -> None:
    ev = ticket_ev(face_value, win_prob_value)
    assert ev * (2**256 - 1) == face_value * win_prob_value
    assert 0 <= ev <= face_value


@settings(max_examples=200)
@given(st.integers(min_value=2, max_value=2**64 - 1), st.data())
def test_win_probability_is_ev_over_face_value_rounded_up(
    face_value: int, data: st.DataObject
) -> None:
    ev = data.draw(st.integers(min_value=1, max_value=face_value - 1))
    probability = win_probability(win_prob(ev, face_value))
    target = Fraction(ev, face_value)
    assert target <= probability < target + Fraction(ev, 2**256 - 1)
