"""Exact probabilistic-micropayment (PM) math for Agent-Net, with go-livepeer as the contract.

Everything here works on Python integers and ``fractions.Fraction``: wei amounts and
256-bit win probabilities never pass through a float. The package is independent of the
worker (the worker never imports it) and needs only the standard library, so
``python3 scripts/check_pricing.py`` runs on a bare Python 3.11. The one exception is
``tickets`` (keccak256 and signatures), which needs ``eth-account`` / ``eth-utils`` (the
``payments`` extra) and which no other module imports.

Modules, one job each:

- ``amounts``       parse what operators write (``18 gwei``, ``1e15``, ``100 000``) and
                    format wei for humans
- ``winprob``       ``winProb`` from ticket EV and face value, its inverse, probabilities
- ``facevalue``     the face value an orchestrator quotes (``recipient.faceValue``)
- ``validation``    what a gateway accepts (``sender.validateTicketParams``)
- ``tickets``       ticket hashing, signing, signer recovery, the winning check
                    (optional: needs the ``payments`` extra)
- ``go_values``     how go-livepeer parses each flag value
- ``config_files``  go-livepeer ``-config`` files (``key value`` lines)
- ``pricing_check`` the orchestrator-versus-gateway consistency check
- ``report``        that check as a text table or JSON
"""

from payments.amounts import MAX_UINT256, AmountError, format_wei, parse_amount
from payments.validation import GatewayLimits, Problem, validate_ticket_params
from payments.winprob import MAX_WIN_PROB, ticket_ev, win_prob, win_probability

__all__ = [
    "MAX_UINT256",
    "MAX_WIN_PROB",
    "AmountError",
    "GatewayLimits",
    "Problem",
    "format_wei",
    "parse_amount",
    "ticket_ev",
    "validate_ticket_params",
    "win_prob",
    "win_probability",
]
