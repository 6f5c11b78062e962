"""The face value an orchestrator quotes (``recipient.faceValue``, ``pm/recipient.go``).

go-livepeer starts from the cost of redeeming a winning ticket on chain,
``txCost = redeemGas * gasPrice``, multiplies it by ``txCostMultiplier`` (100), falls back
to ``EV * 100`` when that is below the EV, then caps the result by the gateway's max float
(its reserve allocation) and by ``-maxFaceValue`` when that is > 0. It refuses to quote
(``insufficient sender reserve``) when the result is below the EV, or below both the
current transaction cost and the cost at its hard-coded average gas price of 3 gwei.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

# cmd/livepeer/starter/starter.go
REDEEM_GAS_L1 = 350_000
REDEEM_GAS_L2 = 1_200_000
TX_COST_MULTIPLIER = 100
# redeemGas per -network; any other network name gets REDEEM_GAS_L1 upstream
REDEEM_GAS_BY_NETWORK = {
    "rinkeby": REDEEM_GAS_L1,
    "arbitrum-one-rinkeby": REDEEM_GAS_L2,
    "mainnet": REDEEM_GAS_L1,
    "arbitrum-one-mainnet": REDEEM_GAS_L2,
}
# minimum gas price per -network when -minGasPrice is not set (mainnet: 1 gwei)
MIN_GAS_PRICE_BY_NETWORK = {"mainnet": 10**9}
# pm/recipient.go
EV_MULTIPLIER = 100
AVG_GAS_PRICE = 3 * 10**9


class InsufficientSenderReserve(ValueError):
    """go-livepeer's ``errInsufficientSenderReserve``: the orchestrator quotes no tickets."""


@dataclass(frozen=True)
class FaceValueQuote:
    """The face value and the numbers it came from."""

    face_value: int
    tx_cost: int
    uncapped: int
    capped_by: str | None  # "max float", "maxFaceValue" or None


def tx_cost(redeem_gas: int, gas_price: int) -> int:
    """``recipient.txCostWithGasPrice``: wei to redeem one winning ticket."""
    return redeem_gas * gas_price


def quote_face_value(
    ev: int,
    *,
    redeem_gas: int,
    gas_price: int,
    max_face_value: int = 0,
    max_float: int | None = None,
    tx_cost_multiplier: int = TX_COST_MULTIPLIER,
) -> FaceValueQuote:
    """``recipient.faceValue`` for ticket EV ``ev``; ``max_float=None`` means unlimited.

    Raises ``InsufficientSenderReserve`` exactly where go-livepeer does.
    """
    cost = tx_cost(redeem_gas, gas_price)
    face_value = cost * tx_cost_multiplier
    if face_value < ev:
        face_value = ev * EV_MULTIPLIER
    uncapped, capped_by = face_value, None
    if max_float is not None and face_value > max_float:
        face_value, capped_by = max_float, "max float"
    if max_face_value > 0 and max_face_value < face_value:
        face_value, capped_by = max_face_value, "maxFaceValue"
    if face_value < ev:
        raise InsufficientSenderReserve(
            f"insufficient sender reserve: face value {face_value} wei is below ticket EV {ev} wei"
        )
    avg_cost = tx_cost(redeem_gas, AVG_GAS_PRICE)
    if face_value < cost and face_value < avg_cost:
        raise InsufficientSenderReserve(
            f"insufficient sender reserve: face value {face_value} wei is below the cost of "
            f"redeeming a ticket ({cost} wei at gas price {gas_price} wei) and below that "
            f"cost at go-livepeer's average gas price of 3 gwei ({avg_cost} wei)"
        )
    return FaceValueQuote(face_value, cost, uncapped, capped_by)


def face_value_cap(max_face_value: int = 0, max_float: int | None = None) -> int | None:
    """The lower of ``-maxFaceValue`` (when > 0) and the max float; ``None`` when neither caps."""
    caps = [max_face_value] if max_face_value > 0 else []
    if max_float is not None:
        caps.append(max_float)
    return min(caps) if caps else None


def highest_quoting_gas_price(
    ev: int, *, redeem_gas: int, max_face_value: int = 0, max_float: int | None = None
) -> int | None:
    """The highest gas price at which ``recipient.faceValue`` still quotes tickets.

    ``None`` when no gas price stops it: no cap, or a cap at least the redemption cost at
    the 3 gwei average. Otherwise the face value is stuck at the cap and go-livepeer refuses
    once ``redeemGas * gasPrice`` passes it, so the answer is ``cap // redeemGas``. Raises
    ``InsufficientSenderReserve`` when it quotes at no gas price (a cap below ``ev``).
    """
    cap = face_value_cap(max_face_value, max_float)
    if cap is None:
        return None
    if cap < ev:
        raise InsufficientSenderReserve(
            f"insufficient sender reserve: the face value cap {cap} wei is below ticket EV {ev} wei"
        )
    if cap >= tx_cost(redeem_gas, AVG_GAS_PRICE):
        return None
    return cap // redeem_gas


def ticket_params_face_value(
    price_per_pixel: Fraction,
    ev: int,
    *,
    redeem_gas: int,
    gas_price: int,
    max_face_value: int = 0,
    max_float: int | None = None,
) -> int:
    """``recipient.TicketParams``: no payment (face value 0) unless the price is > 0."""
    if price_per_pixel <= 0:
        return 0
    quote = quote_face_value(
        ev,
        redeem_gas=redeem_gas,
        gas_price=gas_price,
        max_face_value=max_face_value,
        max_float=max_float,
    )
    return quote.face_value


def tx_cost_multiplier(face_value: int, cost: int) -> Fraction:
    """``recipient.TxCostMultiplier``: face value over tx cost, 0 when the cost is 0."""
    if cost <= 0:
        return Fraction(0)
    return Fraction(face_value, cost)


def auto_adjusted_price(base_price: Fraction, multiplier: Fraction) -> Fraction:
    """The price an orchestrator quotes with ``autoAdjustPrice`` on (``jobPriceInfo``).

    ``base * (1 + 1/txCostMultiplier)`` for a positive price and multiplier; go-livepeer
    then rounds it to its fixed-point price representation, which this ignores.
    """
    if base_price <= 0 or multiplier <= 0:
        return base_price
    return base_price * (1 + 1 / multiplier)
