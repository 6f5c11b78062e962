"""Ticket win probability as go-livepeer computes it (``pm/recipient.go``, ``pm/ticket.go``).

``winProb`` is a 256-bit fixed-point number: the probability is ``winProb / MAX_WIN_PROB``
with ``MAX_WIN_PROB = 2**256 - 1``.
"""

from __future__ import annotations

from fractions import Fraction

from payments.numbers import significant

MAX_WIN_PROB = 2**256 - 1
_LOW_64_BITS = 2**64 - 1


def win_prob(ev: int, face_value: int) -> int:
    """``recipient.winProb``: the winProb an orchestrator with ticket EV ``ev`` quotes.

    ``0`` for a zero face value, ``MAX_WIN_PROB`` when ``face_value == ev``, otherwise
    ``ev * ceil(MAX_WIN_PROB / face_value)`` so the realised EV is never below ``ev``.

    One upstream detail is kept on purpose: go-livepeer decides whether to round up with
    ``m.Int64() != 0``, which looks only at the low 64 bits of the remainder. For a face
    value above 2^64 wei (about 18.4 ETH) whose remainder is a non-zero multiple of 2^64,
    go-livepeer does not round up, and neither does this function.
    """
    if ev < 0 or face_value < 0:
        raise ValueError("ev and face_value must be >= 0")
    if face_value == 0:
        return 0
    if face_value == ev:
        return MAX_WIN_PROB
    quotient, remainder = divmod(MAX_WIN_PROB, face_value)
    if remainder & _LOW_64_BITS != 0:  # big.Int.Int64() keeps the low 64 bits
        return ev * (quotient + 1)
    return ev * quotient


def ticket_ev(face_value: int, win_prob_value: int) -> Fraction:
    """``pm.ticketEV``: the exact expected value ``face_value * winProb / MAX_WIN_PROB``."""
    return Fraction(face_value * win_prob_value, MAX_WIN_PROB)


def win_probability(win_prob_value: int) -> Fraction:
    """``pm.winProbRat``: the probability ``winProb / MAX_WIN_PROB`` as an exact fraction."""
    return Fraction(win_prob_value, MAX_WIN_PROB)


def describe_probability(win_prob_value: int) -> str:
    """A person's reading of winProb, e.g. ``0.1 (10%, 1 ticket in 10 wins)``."""
    probability = win_probability(win_prob_value)
    if probability == 0:
        return "0 (no ticket ever wins)"
    if probability >= 1:
        return "1 (every ticket wins)"
    percent = significant(probability * 100, 4)
    one_in = significant(1 / probability, 4)
    return f"{significant(probability, 6)} ({percent}%, 1 ticket in {one_in} wins)"
