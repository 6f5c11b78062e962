"""What a gateway accepts: go-livepeer's ``sender.validateTicketParams`` (``pm/sender.go``).

Same comparisons, same order, same error text. go-livepeer stops at the first problem;
``validate_ticket_params`` reports every problem it can see, in that order, so
``problems[0]`` is the error go-livepeer returns. The expiration-block checks depend on
the chain's current block and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from payments.amounts import readable_wei
from payments.numbers import go_float_string, significant
from payments.winprob import ticket_ev

# cmd/livepeer/starter/starter.go defaults
DEFAULT_MAX_TICKET_EV = Fraction(3_000_000_000_000)
DEFAULT_MAX_TOTAL_EV = Fraction(20_000_000_000_000)
DEFAULT_DEPOSIT_MULTIPLIER = 1


@dataclass(frozen=True)
class GatewayLimits:
    """A gateway's ticket limits (``-maxTicketEV``, ``-maxTotalEV``, ``-depositMultiplier``).

    ``deposit`` and ``reserve`` are on-chain balances; ``None`` means unknown, and the
    checks that need them are skipped.
    """

    max_ticket_ev: Fraction = DEFAULT_MAX_TICKET_EV
    max_total_ev: Fraction = DEFAULT_MAX_TOTAL_EV
    deposit_multiplier: int = DEFAULT_DEPOSIT_MULTIPLIER
    deposit: int | None = None
    reserve: int | None = None

    def __post_init__(self) -> None:
        if self.deposit_multiplier <= 0:
            raise ValueError("depositMultiplier must be greater than 0")
        if self.max_ticket_ev < 0 or self.max_total_ev < 0:
            raise ValueError("maxTicketEV and maxTotalEV must not be negative")

    def max_face_value(self) -> int | None:
        """``deposit / depositMultiplier`` (integer division), or ``None`` if unknown."""
        if self.deposit is None:
            return None
        return self.deposit // self.deposit_multiplier


@dataclass(frozen=True)
class Problem:
    """One reason a gateway rejects ticket parameters."""

    code: str
    message: str  # go-livepeer's own error text
    detail: str  # the same with readable numbers
    numbers: dict[str, str] = field(default_factory=dict)  # exact values, as text


def _exact(value: Fraction) -> str:
    return (
        str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    )


def _wei_text(value: Fraction) -> str:
    if value.denominator == 1:
        return readable_wei(value.numerator)
    return f"{significant(value, 12)} wei"


def validate_ticket_params(
    face_value: int, win_prob: int, limits: GatewayLimits, num_tickets: int = 1
) -> list[Problem]:
    """Every reason the gateway rejects these params for ``num_tickets`` tickets ([] = accepted)."""
    if num_tickets < 1:
        raise ValueError("num_tickets must be >= 1")
    ev = ticket_ev(face_value, win_prob)
    if ev <= 0:
        return []  # no payment: accepted
    problems: list[Problem] = []
    if ev >= face_value:
        problems.append(
            Problem(
                "face_value_too_low",
                f"ticket faceValue too low faceValue={face_value}",
                f"ticket EV {_wei_text(ev)} is not below face value {readable_wei(face_value)} "
                "(winProb would be >= 1)",
                {"ev": _exact(ev), "face_value": str(face_value)},
            )
        )
    if ev > limits.max_ticket_ev:
        problems.append(
            Problem(
                "ticket_ev_over_max",
                f"ticket EV {go_float_string(ev, 5)} > max ticket EV "
                f"{go_float_string(limits.max_ticket_ev, 5)}",
                f"ticket EV {_wei_text(ev)} is above the gateway's maxTicketEV "
                f"{_wei_text(limits.max_ticket_ev)}",
                {"ev": _exact(ev), "max_ticket_ev": _exact(limits.max_ticket_ev)},
            )
        )
    problems.extend(_sender_problems(limits))
    total = ev * num_tickets
    if total > limits.max_total_ev:
        problems.append(
            Problem(
                "total_ev_over_max",
                f"total ticket EV {go_float_string(total, 5)} for {num_tickets} tickets > "
                f"max total ticket EV {go_float_string(limits.max_total_ev, 5)}",
                f"{num_tickets} ticket(s) of EV {_wei_text(ev)} add up to {_wei_text(total)}, "
                f"above the gateway's maxTotalEV {_wei_text(limits.max_total_ev)}",
                {
                    "total_ev": _exact(total),
                    "num_tickets": str(num_tickets),
                    "max_total_ev": _exact(limits.max_total_ev),
                },
            )
        )
    max_face_value = limits.max_face_value()
    if max_face_value is not None and face_value > max_face_value:
        problems.append(
            Problem(
                "face_value_over_deposit",
                f"ticket faceValue {face_value} > max faceValue {max_face_value}",
                f"face value {readable_wei(face_value)} is above the gateway's deposit "
                f"{readable_wei(limits.deposit or 0)} / depositMultiplier "
                f"{limits.deposit_multiplier} = {readable_wei(max_face_value)}",
                {"face_value": str(face_value), "max_face_value": str(max_face_value)},
            )
        )
    return problems


def _sender_problems(limits: GatewayLimits) -> list[Problem]:
    """``sender.validateSender``: the gateway needs a reserve and a deposit on chain."""
    problems = []
    if limits.reserve == 0:
        problems.append(
            Problem("no_sender_reserve", "no sender reserve", "the gateway has no reserve")
        )
    if limits.deposit == 0:
        problems.append(
            Problem("no_sender_deposit", "no sender deposit", "the gateway has no deposit")
        )
    return problems
