"""What a gateway accepts: go-livepeer's sender tests, and an integer-only reference."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.numbers import go_float_string
from payments.validation import GatewayLimits, validate_ticket_params
from payments.winprob import MAX_WIN_PROB, ticket_ev, win_prob

HALF = MAX_WIN_PROB // 2


def default_sender(**changes: object) -> GatewayLimits:
    """pm/sender_test.go defaultSender: maxEV 100, maxTotalEV 100, depositMultiplier 2,
    deposit 100000, reserve 10."""
    values: dict[str, object] = {
        "max_ticket_ev": Fraction(100),
        "max_total_ev": Fraction(100),
        "deposit_multiplier": 2,
        "deposit": 100_000,
        "reserve": 10,
    }
    values.update(changes)
    return GatewayLimits(**values)  # type: ignore[arg-type]


def messages(face_value: int, wp: int, limits: GatewayLimits, n: int = 1) -> list[str]:
    return [p.message for p in validate_ticket_params(face_value, wp, limits, n)]


def test_ev_too_high() -> None:
    """TestValidateTicketParams_EVTooHigh_ReturnsError."""
    limits = default_sender(max_ticket_ev=Fraction(1))
    ev = ticket_ev(202, HALF)
    expected = f"ticket EV {go_float_string(ev, 5)} > max ticket EV 1.00000"
    assert expected == "ticket EV 101.00000 > max ticket EV 1.00000"
    assert messages(202, HALF, limits)[0] == expected


def test_total_ev_too_high_for_several_tickets() -> None:
    """TestCreateTicketBatch_EVTooHigh_ReturnsError: 2 tickets over maxTotalEV, 1 ticket fine."""
    limits = default_sender(max_ticket_ev=Fraction(150), max_total_ev=Fraction(200))
    assert messages(202, HALF, limits, 2) == [
        "total ticket EV 202.00000 for 2 tickets > max total ticket EV 200.00000"
    ]
    assert messages(202, HALF, limits, 1) == []


def test_face_value_too_high() -> None:
    """TestValidateTicketParams_FaceValueTooHigh_ReturnsError."""
    assert messages(1111, 2222, default_sender(deposit=0))[0] == "no sender deposit"
    limits = default_sender(deposit=300, max_ticket_ev=Fraction(100), deposit_multiplier=5)
    max_face_value = 300 // 5
    assert messages(max_face_value + 1, 2222, limits) == [
        f"ticket faceValue {max_face_value + 1} > max faceValue {max_face_value}"
    ]


def test_create_batch_face_value_too_high() -> None:
    """TestCreateTicketBatch_FaceValueTooHigh_ReturnsError: deposit 0, 1, then 2224."""
    assert messages(1111, 100, default_sender(deposit=0))[0] == "no sender deposit"
    assert messages(1111, 100, default_sender(deposit=1)) == [
        "ticket faceValue 1111 > max faceValue 0"
    ]
    assert messages(1111, 100, default_sender(deposit=2224)) == []
    assert messages(1111, 100, default_sender(deposit=2224), 2) == []


def test_face_value_too_low() -> None:
    """TestValidateTicketParams_FaceValueTooLow_ReturnsErr: winProb = max means EV = faceValue."""
    limits = default_sender(max_ticket_ev=Fraction(1000))
    assert messages(1000, MAX_WIN_PROB, limits)[0] == "ticket faceValue too low faceValue=1000"


def test_zero_ev_is_accepted_even_without_deposit() -> None:
    """TestValidateParams_ValidateSender: EV 0 passes; EV > 0 needs a deposit."""
    limits = default_sender(deposit=0)
    assert messages(0, 0, limits) == []
    # go-livepeer stops at its first error; every later problem is listed too
    assert messages(100, 100, limits) == [
        "no sender deposit",
        "ticket faceValue 100 > max faceValue 0",
    ]


def test_no_reserve() -> None:
    """TestSender_ValidateSender: a sender with no reserve cannot pay."""
    assert messages(100, 100, default_sender(reserve=0)) == ["no sender reserve"]


@pytest.mark.parametrize(
    ("deposit", "face_value_offset"),
    [(300, -1), (402, -1), (399, 0), (400, 0)],
)
def test_acceptable_params(deposit: int, face_value_offset: int) -> None:
    """TestValidateTicketParams_AcceptableParams_NoError: ev <= maxEV, faceValue <= deposit/2."""
    limits = default_sender(deposit=deposit)
    face_value = deposit // 2 + face_value_offset
    assert messages(face_value, HALF, limits) == []


def test_every_problem_is_reported_with_numbers_in_upstream_order() -> None:
    limits = GatewayLimits(
        max_ticket_ev=Fraction(10), max_total_ev=Fraction(10), deposit_multiplier=1, deposit=5
    )
    problems = validate_ticket_params(1000, MAX_WIN_PROB, limits, 3)
    assert [p.code for p in problems] == [
        "face_value_too_low",
        "ticket_ev_over_max",
        "total_ev_over_max",
        "face_value_over_deposit",
    ]
    assert problems[1].numbers == {"ev": "1000", "max_ticket_ev": "10"}
    assert problems[2].numbers["total_ev"] == "3000"
    assert "1,000 wei" in problems[0].detail


def test_limits_are_validated_like_go_livepeer_startup() -> None:
    with pytest.raises(ValueError, match="depositMultiplier"):
        GatewayLimits(deposit_multiplier=0)
    with pytest.raises(ValueError, match="negative"):
        GatewayLimits(max_ticket_ev=Fraction(-1))


@settings(max_examples=400)
@given(
    face_value=st.integers(min_value=0, max_value=2**256 - 1),
    wp=st.integers(min_value=0, max_value=2**256 - 1),
    max_ev=st.fractions(min_value=0, max_value=10**30, max_denominator=10**6),
    max_total=st.fractions(min_value=0, max_value=10**31, max_denominator=10**6),
    multiplier=st.integers(min_value=1, max_value=10),
    deposit=st.one_of(st.none(), st.integers(min_value=0, max_value=2**256)),
    tickets=st.integers(min_value=1, max_value=600),
)
def test_matches_integer_only_reference(
    face_value: int,
    wp: int,
    max_ev: Fraction,
    max_total: Fraction,
    multiplier: int,
    deposit: int | None,
    tickets: int,
) -> None:
    """Cross-multiplied integer comparisons instead of rational arithmetic."""
    limits = GatewayLimits(max_ev, max_total, multiplier, deposit)
    codes = [p.code for p in validate_ticket_params(face_value, wp, limits, tickets)]
    m = 2**256 - 1
    ev_num = face_value * wp  # EV = ev_num / m
    expected = []
    if ev_num > 0:
        if wp >= m:
            expected.append("face_value_too_low")
        if ev_num * max_ev.denominator > max_ev.numerator * m:
            expected.append("ticket_ev_over_max")
        if deposit == 0:
            expected.append("no_sender_deposit")
        if ev_num * tickets * max_total.denominator > max_total.numerator * m:
            expected.append("total_ev_over_max")
        if deposit is not None and face_value * multiplier > deposit - deposit % multiplier:
            expected.append("face_value_over_deposit")
    assert codes == expected


def test_orchestrator_ticket_from_seed_values_passes_a_matching_gateway() -> None:
    ev, face_value = 29_000_000_000_000, 100_000_000_000_000
    wp = win_prob(ev, face_value)
    exact = GatewayLimits(max_ticket_ev=Fraction(ev), max_total_ev=Fraction(10**15))
    # rounding winProb up puts the realised EV a hair above ticketEV: maxTicketEV == ticketEV fails
    assert [p.code for p in validate_ticket_params(face_value, wp, exact)] == ["ticket_ev_over_max"]
    roomy = GatewayLimits(max_ticket_ev=Fraction(ev + 1), max_total_ev=Fraction(10**15))
    assert validate_ticket_params(face_value, wp, roomy) == []


def test_limits_are_inclusive() -> None:
    """go-livepeer rejects only ev > maxTicketEV and totalEV > maxTotalEV: equality passes."""
    face_value, wp = MAX_WIN_PROB, 100  # EV exactly 100 wei
    assert ticket_ev(face_value, wp) == 100
    at_limit = GatewayLimits(max_ticket_ev=Fraction(100), max_total_ev=Fraction(200))
    assert validate_ticket_params(face_value, wp, at_limit, 2) == []
    below = GatewayLimits(max_ticket_ev=Fraction(99), max_total_ev=Fraction(199))
    codes = [p.code for p in validate_ticket_params(face_value, wp, below, 2)]
    assert codes == ["ticket_ev_over_max", "total_ev_over_max"]
