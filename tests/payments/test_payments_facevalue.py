"""The orchestrator's face value, ported from go-livepeer's pm/recipient_test.go."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.facevalue import (
    AVG_GAS_PRICE,
    EV_MULTIPLIER,
    InsufficientSenderReserve,
    auto_adjusted_price,
    face_value_cap,
    highest_quoting_gas_price,
    quote_face_value,
    ticket_params_face_value,
    tx_cost,
    tx_cost_multiplier,
)
from payments.winprob import win_prob

# newRecipientFixtureOrFatal: EV 5, RedeemGas 10000, TxCostMultiplier 100,
# gas price 100, max float 10000000000
EV, REDEEM_GAS, GAS, MAX_FLOAT = 5, 10_000, 100, 10_000_000_000


def quote(gas: int = GAS, max_float: int | None = MAX_FLOAT, **kw: int) -> int:
    return quote_face_value(
        kw.pop("ev", EV), redeem_gas=REDEEM_GAS, gas_price=gas, max_float=max_float, **kw
    ).face_value


def test_default_face_value_below_max_float() -> None:
    """TestTicketParams: faceValue = txCost * 100 = 100000000."""
    assert quote() == 100_000_000


def test_face_value_follows_gas_price() -> None:
    """TestTicketParams: gas price 777 -> faceValue 777000000."""
    assert quote(gas=777) == 777_000_000


def test_face_value_capped_by_max_float() -> None:
    """TestTicketParams: max float 10001 < default faceValue -> faceValue = max float."""
    result = quote_face_value(EV, redeem_gas=REDEEM_GAS, gas_price=1, max_float=10_001)
    assert result.face_value == 10_001 and result.capped_by == "max float"


def test_max_float_below_ev_is_insufficient_reserve() -> None:
    with pytest.raises(InsufficientSenderReserve, match="insufficient sender reserve"):
        quote(gas=1, max_float=EV - 1)


def test_tx_cost_against_average_gas_price() -> None:
    """TestTicketParams: faceValue below the current tx cost passes while it covers the tx
    cost at the 3 gwei average; below both it fails; lazy evaluation below the average."""
    high_gas = AVG_GAS_PRICE + 1
    cost, avg_cost = tx_cost(REDEEM_GAS, high_gas), tx_cost(REDEEM_GAS, AVG_GAS_PRICE)
    assert quote(gas=high_gas, max_float=cost - 1) == cost - 1
    assert quote(gas=high_gas, max_float=avg_cost) == avg_cost
    with pytest.raises(InsufficientSenderReserve):
        quote(gas=high_gas, max_float=avg_cost - 1)
    low_gas = AVG_GAS_PRICE - 1
    low_cost = tx_cost(REDEEM_GAS, low_gas)
    assert quote(gas=low_gas, max_float=low_cost + 1) == low_cost + 1
    assert quote(gas=low_gas, max_float=low_cost) == low_cost


def test_zero_gas_price_falls_back_to_ev_times_100() -> None:
    """TestTicketParams: default faceValue < EV -> EV * evMultiplier; max float 0 fails."""
    face_value = quote(gas=0, max_float=2**256 - 1)
    assert face_value == EV * EV_MULTIPLIER
    assert win_prob(EV, face_value) == win_prob(5, 500)
    with pytest.raises(InsufficientSenderReserve):
        quote(gas=0, max_float=0)


@pytest.mark.parametrize("price", [Fraction(0), Fraction(-1)])
def test_no_price_means_no_payment(price: Fraction) -> None:
    """TestTicketParams: price 0 or < 0 -> faceValue 0 and winProb 0."""
    face_value = ticket_params_face_value(price, EV, redeem_gas=REDEEM_GAS, gas_price=GAS)
    assert face_value == 0
    assert win_prob(EV, face_value) == 0


def test_max_face_value_caps_only_when_positive() -> None:
    """recipient.SetMaxFaceValue: applied when > 0; 0 means no cap."""
    assert quote(max_face_value=0) == 100_000_000
    capped = quote_face_value(
        EV, redeem_gas=REDEEM_GAS, gas_price=GAS, max_float=MAX_FLOAT, max_face_value=2_000_000
    )
    assert capped.face_value == 2_000_000 and capped.capped_by == "maxFaceValue"
    # a cap below the cost of redeeming a ticket (here 1,000,000 wei) quotes nothing
    with pytest.raises(InsufficientSenderReserve, match="cost of redeeming"):
        quote(max_face_value=999_999)
    assert capped.uncapped == 100_000_000
    with pytest.raises(InsufficientSenderReserve, match="below ticket EV"):
        quote(max_face_value=EV - 1)


def test_tx_cost_multiplier() -> None:
    """TestTxCostMultiplier_*: default 100, scaled by the max float, 0 for zero tx cost."""
    cost = tx_cost(REDEEM_GAS, GAS)
    assert tx_cost_multiplier(quote(), cost) == Fraction(100)
    assert tx_cost_multiplier(quote(max_float=cost + 1), cost) == Fraction(cost + 1, cost)
    assert tx_cost_multiplier(quote(gas=0), tx_cost(REDEEM_GAS, 0)) == 0


def test_auto_adjusted_price_adds_one_over_multiplier() -> None:
    assert auto_adjusted_price(Fraction(18), Fraction(100)) == Fraction(18 * 101, 100)
    assert auto_adjusted_price(Fraction(18), Fraction(0)) == 18
    assert auto_adjusted_price(Fraction(0), Fraction(100)) == 0


@settings(max_examples=300)
@given(
    ev=st.integers(min_value=1, max_value=10**20),
    redeem_gas=st.integers(min_value=1, max_value=2_000_000),
    gas=st.integers(min_value=0, max_value=10**11),
    cap=st.integers(min_value=0, max_value=10**22),
)
def test_quote_is_never_below_ev_and_respects_the_cap(
    ev: int, redeem_gas: int, gas: int, cap: int
) -> None:
    try:
        result = quote_face_value(ev, redeem_gas=redeem_gas, gas_price=gas, max_face_value=cap)
    except InsufficientSenderReserve:
        limit = cap if cap else None
        assert limit is not None and (
            limit < ev or (limit < redeem_gas * gas and limit < redeem_gas * AVG_GAS_PRICE)
        )
        return
    assert result.face_value >= ev
    if cap:
        assert result.face_value <= cap
    from_gas = redeem_gas * gas * 100
    expected = from_gas if from_gas >= ev else ev * 100
    assert result.face_value == (min(expected, cap) if cap else expected)


def test_highest_quoting_gas_price_for_the_shipped_numbers() -> None:
    """ticketEV 29,000 gwei, maxFaceValue 0.001 ETH, Arbitrum's 1,200,000 redeem gas."""
    ev, cap, gas = 29 * 10**12, 10**15, 1_200_000
    limit = highest_quoting_gas_price(ev, redeem_gas=gas, max_face_value=cap)
    assert limit == 833_333_333
    at_limit = quote_face_value(ev, redeem_gas=gas, gas_price=limit, max_face_value=cap)
    assert at_limit.face_value == cap and at_limit.capped_by == "maxFaceValue"
    with pytest.raises(InsufficientSenderReserve, match="cost of redeeming"):
        quote_face_value(ev, redeem_gas=gas, gas_price=limit + 1, max_face_value=cap)
    # a cap at the 3 gwei average cost (3.6e15) is never undercut by go-livepeer's fallback
    assert highest_quoting_gas_price(ev, redeem_gas=gas, max_face_value=36 * 10**14) is None
    assert highest_quoting_gas_price(ev, redeem_gas=gas) is None
    # the max float caps like maxFaceValue, and the lower of the two wins
    lower = highest_quoting_gas_price(ev, redeem_gas=gas, max_face_value=cap, max_float=6 * 10**14)
    assert lower == 500_000_000
    assert face_value_cap(cap, 6 * 10**14) == 6 * 10**14 and face_value_cap(0, None) is None
    with pytest.raises(InsufficientSenderReserve, match="below ticket EV"):
        highest_quoting_gas_price(ev, redeem_gas=gas, max_face_value=ev - 1)


@settings(max_examples=300)
@given(
    ev=st.integers(min_value=0, max_value=10**18),
    redeem_gas=st.integers(min_value=0, max_value=2_000_000),
    gas=st.integers(min_value=0, max_value=10**11),
    cap=st.integers(min_value=0, max_value=10**19),
    max_float=st.one_of(st.none(), st.integers(min_value=0, max_value=10**19)),
)
def test_highest_quoting_gas_price_matches_the_quote(
    ev: int, redeem_gas: int, gas: int, cap: int, max_float: int | None
) -> None:
    """Quoted at gas iff a limit exists and gas <= limit, or no limit; never if it raises."""
    kwargs = {"redeem_gas": redeem_gas, "max_face_value": cap, "max_float": max_float}
    try:
        limit = highest_quoting_gas_price(ev, **kwargs)
    except InsufficientSenderReserve:
        expect_quote = False
    else:
        expect_quote = limit is None or gas <= limit
    try:
        quote_face_value(ev, gas_price=gas, **kwargs)
    except InsufficientSenderReserve:
        quoted = False
    else:
        quoted = True
    assert quoted == expect_quote
