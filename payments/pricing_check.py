"""Will the gateway accept the orchestrator's price and tickets? The consistency check.

The orchestrator side is derived the way go-livepeer derives it: the face value from
``recipient.faceValue`` (``facevalue``), winProb from ``recipient.winProb`` (``winprob``),
the quoted price with or without ``autoAdjustPrice``. The gateway side is judged by
``validate_ticket_params``, the same comparisons go-livepeer's sender makes. What cannot
be known off line (gas price, the gateway's deposit, its reserve) is an explicit
assumption that the report prints.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from payments.amounts import format_wei, readable_wei
from payments.config_files import (
    GatewaySettings,
    OrchestratorSettings,
    Price,
    describe_secret_source,
)
from payments.facevalue import (
    AVG_GAS_PRICE,
    MIN_GAS_PRICE_BY_NETWORK,
    REDEEM_GAS_BY_NETWORK,
    REDEEM_GAS_L1,
    TX_COST_MULTIPLIER,
    FaceValueQuote,
    InsufficientSenderReserve,
    auto_adjusted_price,
    face_value_cap,
    highest_quoting_gas_price,
    quote_face_value,
    tx_cost,
    tx_cost_multiplier,
)
from payments.go_values import parse_bool
from payments.numbers import significant
from payments.validation import GatewayLimits, Problem, validate_ticket_params
from payments.winprob import MAX_WIN_PROB, describe_probability, ticket_ev, win_prob

OFFCHAIN = "offchain"
ASSUMED_NETWORK = "arbitrum-one-mainnet"  # where Livepeer's protocol runs today
MAX_TICKETS_PER_PAYMENT = 600  # byoc/payment.go ticketCountForCost (pm.maxSenderNonces)
# starter.go reads these only inside `if *cfg.Orchestrator` ...
ORCHESTRATOR_ONLY_FLAGS = ("pricePerUnit", "ticketEV", "maxFaceValue", "autoAdjustPrice")
# ... and these only for a gateway (BroadcasterNode or RemoteSignerNode)
GATEWAY_ONLY_FLAGS = ("maxPricePerUnit", "maxTicketEV", "maxTotalEV", "depositMultiplier")


class Status(enum.StrEnum):
    OK = "OK"
    MISMATCH = "MISMATCH"
    WARN = "WARN"
    INFO = "INFO"


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table."""

    parameter: str
    orchestrator: str
    gateway: str
    status: Status
    reason: str
    fix: str = ""  # for a WARN: the change that clears it, naming the setting ...
    file: str = ""  # ... in this config file


@dataclass(frozen=True)
class Assumptions:
    """What the check cannot read from the two files; ``None`` picks the documented default.

    - ``gas_price``: wei; default the orchestrator's ``maxGasPrice`` (the most it will pay),
      else go-livepeer's hard-coded average of 3 gwei, lowered to the highest gas price at
      which the orchestrator still quotes tickets; never below ``minGasPrice``.
    - ``redeem_gas``: default go-livepeer's value for the network (1,200,000 on Arbitrum).
    - ``deposit`` / ``max_float``: the gateway's on-chain deposit and the reserve it
      allocates to this orchestrator; unknown by default.
    - ``capability_price`` (wei per second) and ``job_timeout`` (s): size a BYOC payment;
      without them a payment is one ticket.
    """

    gas_price: int | None = None
    redeem_gas: int | None = None
    deposit: int | None = None
    max_float: int | None = None
    capability_price: int | None = None
    job_timeout: int | None = None


@dataclass
class Report:
    """The table, the assumptions behind it and the derived numbers."""

    rows: list[Row] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    derived: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(row.status is not Status.MISMATCH for row in self.rows)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def add(
        self,
        parameter: str,
        orch: str,
        gateway: str,
        status: Status,
        reason: str,
        fix: tuple[str, Path] | None = None,
    ) -> None:
        """One row; `fix` is the change that clears a warning and the file to make it in."""
        action, file = fix if fix is not None else ("", "")
        self.rows.append(Row(parameter, orch, gateway, status, reason, action, str(file)))


def _price_text(price: Price | None) -> str:
    if price is None:
        return "not set"
    per_pixel = price.wei_per_pixel()
    unit = "" if price.pixels_per_unit == 1 else f" per {price.pixels_per_unit} units"
    if per_pixel is None:
        return f"{price.per_unit} {price.currency}{unit}"
    if per_pixel.denominator == 1 and not unit:
        return format_wei(per_pixel.numerator)
    return f"{significant(per_pixel, 12)} wei per unit"


def _fraction_wei(value: Fraction) -> str:
    """An exact wei amount that may carry a tiny fraction from winProb rounding."""
    whole = math.floor(value)
    rest = value - whole
    text = format_wei(whole)
    if rest:
        text += f" + {significant(rest, 3)} wei"
    return text


def check_pricing(
    orch: OrchestratorSettings, gateway: GatewaySettings, assume: Assumptions | None = None
) -> Report:
    """Compare the orchestrator's price and ticket parameters with the gateway's limits."""
    assume = assume or Assumptions()
    report = Report()
    network = _network_row(report, orch, gateway)
    _role_and_secret_rows(report, orch, gateway)

    redeem_gas = assume.redeem_gas
    if redeem_gas is None:
        redeem_gas = REDEEM_GAS_BY_NETWORK.get(network, REDEEM_GAS_L1)
    min_gas = orch.min_gas_price
    if min_gas is None:
        min_gas = MIN_GAS_PRICE_BY_NETWORK.get(network, 0)
    gas_price, gas_source = _gas_price(orch, assume)
    gas_price = max(gas_price, min_gas)
    try:
        limit = highest_quoting_gas_price(
            orch.ticket_ev,
            redeem_gas=redeem_gas,
            max_face_value=orch.max_face_value,
            max_float=assume.max_float,
        )
    except InsufficientSenderReserve:
        limit = None  # it quotes at no gas price: the faceValue row says so
    if assume.gas_price is None and limit is not None and min_gas <= limit < gas_price:
        gas_source = (
            f"{gas_source}, {readable_wei(gas_price)}, lowered to the highest gas price at "
            "which the orchestrator still quotes tickets: see the maxGasPrice row"
        )
        gas_price = limit
    report.assumptions += [
        f"network for payments: {network}; redeemGas {redeem_gas:,} "
        f"({'--redeem-gas' if assume.redeem_gas is not None else 'go-livepeer for ' + network})",
        f"gas price {format_wei(gas_price)} ({gas_source}; never below minGasPrice "
        f"{format_wei(min_gas)})",
        f"face value = redeemGas x gasPrice x {TX_COST_MULTIPLIER}, or ticketEV x 100 when "
        "that is below ticketEV, capped by the gateway's max float and by maxFaceValue "
        "(go-livepeer recipient.faceValue)",
        "gateway deposit: "
        + (format_wei(assume.deposit) if assume.deposit is not None else "unknown (--deposit)")
        + "; max float: "
        + (format_wei(assume.max_float) if assume.max_float is not None else "not limiting"),
    ]

    limits = GatewayLimits(
        max_ticket_ev=gateway.max_ticket_ev,
        max_total_ev=gateway.max_total_ev,
        deposit_multiplier=gateway.deposit_multiplier,
        deposit=assume.deposit,
    )
    quote, refusal = _quote(orch, redeem_gas, gas_price, assume.max_float)
    wp = win_prob(orch.ticket_ev, quote.face_value) if quote else None
    ev = ticket_ev(quote.face_value, wp) if quote and wp is not None else None
    multiplier = tx_cost_multiplier(quote.face_value, quote.tx_cost) if quote else Fraction(0)

    _price_rows(report, orch, gateway, multiplier)
    tickets, tickets_reason = _tickets_per_payment(assume, orch, multiplier, ev)
    problems = (
        validate_ticket_params(quote.face_value, wp, limits, max(tickets, 1))
        if quote is not None and wp is not None
        else []
    )
    codes = {problem.code: problem for problem in problems}

    _ticket_ev_row(report, orch, gateway, ev, codes)
    _face_value_row(report, orch, limits, quote, refusal, codes, (redeem_gas, min_gas, gas_price))
    low_face_value = None
    if quote is not None:
        low_face_value = _face_value_range(orch, redeem_gas, min_gas, gas_price)[0]
    _win_prob_row(report, orch.ticket_ev, wp, low_face_value, codes)
    _total_ev_row(report, gateway, ev, tickets, tickets_reason, codes)
    _gas_row(report, orch, quote, gas_price, (redeem_gas, limit, assume.max_float))
    _ignored_flag_rows(report, orch, gateway, quote)

    if quote is not None and wp is not None and ev is not None:
        report.derived.update(
            {
                "redeem_gas": str(redeem_gas),
                "gas_price_wei": str(gas_price),
                "tx_cost_wei": str(quote.tx_cost),
                "face_value_wei": str(quote.face_value),
                "win_prob": str(wp),
                "win_probability": describe_probability(wp),
                "ticket_ev_wei": f"{ev.numerator}/{ev.denominator}",
                "tickets_per_payment": str(tickets),
            }
        )
    report.notes.append(
        "BYOC jobs are priced by the capability's registered price_per_unit/price_scaling "
        "(wei per second); go-livepeer's gateway does not apply maxPricePerUnit to them, "
        "but it does apply maxTicketEV, maxTotalEV and depositMultiplier to their tickets."
    )
    report.notes.append(
        "Command-line flags and LP_* environment variables override these files: "
        "check the compose file for overrides."
    )
    return report


def _network_row(report: Report, orch: OrchestratorSettings, gateway: GatewaySettings) -> str:
    o, g = orch.network, gateway.network
    if o == OFFCHAIN and g == OFFCHAIN:
        report.add(
            "network",
            o,
            g,
            Status.INFO,
            "payments are off in offchain mode (go-livepeer only sets up tickets on chain); "
            f"the rows below show what happens once both run on {ASSUMED_NETWORK}",
        )
        return ASSUMED_NETWORK
    if o == OFFCHAIN:
        reason = "the orchestrator is offchain: it quotes price 0 and is never paid"
        report.add("network", o, g, Status.MISMATCH, reason)
        return g
    if g == OFFCHAIN:
        reason = "the gateway is offchain: it has no ticket sender and cannot pay (jobs fail)"
        report.add("network", o, g, Status.MISMATCH, reason)
        return o
    if o != g:
        report.add("network", o, g, Status.MISMATCH, "different networks cannot pay each other")
        return o
    report.add("network", o, g, Status.OK, "same network")
    return o


def _role_and_secret_rows(
    report: Report, orch: OrchestratorSettings, gateway: GatewaySettings
) -> None:
    orch_cfg, gw_cfg = orch.config, gateway.config
    if not parse_bool(orch_cfg.get("orchestrator").value):
        report.add(
            "orchestrator",
            orch_cfg.get("orchestrator").value,
            "-",
            Status.WARN,
            "the orchestrator file does not set `orchestrator true`",
            ("add the line `orchestrator true`", orch_cfg.path),
        )
    roles = [gw_cfg.get(name).value for name in ("gateway", "broadcaster")]
    if not any(parse_bool(value) for value in roles):
        report.add(
            "gateway",
            "-",
            roles[0],
            Status.WARN,
            "the gateway file does not set `gateway true`",
            ("add the line `gateway true`", gw_cfg.path),
        )
    for cfg, side in ((orch_cfg, "orchestrator"), (gw_cfg, "gateway")):
        for name, line in cfg.secrets():
            report.add(
                name,
                f"{cfg.path.name}:{line}" if side == "orchestrator" else "-",
                f"{cfg.path.name}:{line}" if side == "gateway" else "-",
                Status.WARN,
                f"a secret in a config file: remove it and {describe_secret_source(name)}",
                (f"remove the line {name} (line {line}); {describe_secret_source(name)}", cfg.path),
            )


def _gas_price(orch: OrchestratorSettings, assume: Assumptions) -> tuple[int, str]:
    if assume.gas_price is not None:
        return assume.gas_price, "--gas-price"
    if orch.max_gas_price > 0:
        return orch.max_gas_price, "the orchestrator's maxGasPrice, the most it pays"
    return AVG_GAS_PRICE, "no maxGasPrice: go-livepeer's hard-coded average of 3 gwei"


def _quote(
    orch: OrchestratorSettings, redeem_gas: int, gas_price: int, max_float: int | None
) -> tuple[FaceValueQuote | None, str]:
    try:
        quote = quote_face_value(
            orch.ticket_ev,
            redeem_gas=redeem_gas,
            gas_price=gas_price,
            max_face_value=orch.max_face_value,
            max_float=max_float,
        )
    except InsufficientSenderReserve as exc:
        return None, str(exc)
    return quote, ""


def _price_rows(
    report: Report, orch: OrchestratorSettings, gateway: GatewaySettings, multiplier: Fraction
) -> None:
    """The autoAdjustPrice and pricePerUnit rows."""
    price, max_price = orch.price, gateway.max_price
    base = price.wei_per_pixel() if price else None
    quoted = base
    adjust = orch.config.get("autoAdjustPrice")
    shown = adjust.value if adjust.line is not None else "true (default: not set)"
    if orch.auto_adjust_price:
        if base is not None:
            quoted = auto_adjusted_price(base, multiplier)
        rise = f"{significant(1 / multiplier * 100, 3)}%" if multiplier > 0 else "0%"
        report.add(
            "autoAdjustPrice",
            shown,
            "-",
            Status.WARN,
            f"the quoted price floats with gas: base x (1 + 1/txCostMultiplier), +{rise} at the "
            "assumed gas price; Agent-Net wants a fixed price: set autoAdjustPrice false",
            ("set autoAdjustPrice false", orch.config.path),
        )
    else:
        report.add("autoAdjustPrice", shown, "-", Status.OK, "fixed price")

    orch_text = _price_text(price)
    if quoted is not None and base is not None and quoted != base:
        orch_text += f"; quoted {significant(quoted, 12)} wei with autoAdjustPrice"
    gw_text = _price_text(max_price) if max_price.per_unit else "0 (any price)"
    if price is None:
        reason = "go-livepeer's orchestrator refuses to start on chain without -pricePerUnit"
        report.add("pricePerUnit", orch_text, gw_text, Status.MISMATCH, reason)
        return
    max_per_pixel = max_price.wei_per_pixel()
    if max_price.per_unit == 0:
        report.add("pricePerUnit", orch_text, gw_text, Status.OK, "the gateway accepts any price")
    elif quoted is None or max_per_pixel is None:
        report.add(
            "pricePerUnit",
            orch_text,
            gw_text,
            Status.INFO,
            "a price-feed currency is converted at run time: cannot compare off line",
        )
    elif quoted > max_per_pixel:
        report.add(
            "pricePerUnit",
            orch_text,
            gw_text,
            Status.MISMATCH,
            f"the price {significant(quoted, 12)} wei per unit is above the gateway's max "
            f"{significant(max_per_pixel, 12)}: the gateway skips this orchestrator",
        )
    else:
        headroom = significant((max_per_pixel / quoted - 1) * 100, 3) if quoted else "any"
        reason = f"within the gateway's max ({headroom}% headroom)"
        report.add("pricePerUnit", orch_text, gw_text, Status.OK, reason)


def _tickets_per_payment(
    assume: Assumptions, orch: OrchestratorSettings, multiplier: Fraction, ev: Fraction | None
) -> tuple[int, str]:
    """Tickets in one BYOC payment (``byoc/payment.go`` ``ticketCountForCost``)."""
    if assume.capability_price is None or assume.job_timeout is None:
        return 1, "one ticket (pass --capability-price and --job-timeout to size a BYOC payment)"
    if ev is None or ev == 0:
        return 0, "no tickets: the ticket EV is 0"
    price = Fraction(assume.capability_price)
    if orch.auto_adjust_price:
        price = auto_adjusted_price(price, multiplier)
    cost = price * assume.job_timeout
    count = min(math.ceil(cost / ev), MAX_TICKETS_PER_PAYMENT)
    return count, (
        f"{count} ticket(s) cover {readable_wei(math.ceil(cost))} for a {assume.job_timeout} s "
        f"job at {significant(price, 12)} wei/s (ticketCountForCost, at most 600)"
    )


def _ticket_ev_row(
    report: Report,
    orch: OrchestratorSettings,
    gateway: GatewaySettings,
    ev: Fraction | None,
    codes: dict[str, Problem],
) -> None:
    orch_text = format_wei(orch.ticket_ev)
    if ev is not None and ev != orch.ticket_ev:
        orch_text += f"; realised {_fraction_wei(ev)}"
    gw_text = _fraction_wei(gateway.max_ticket_ev)
    if orch.ticket_ev == 0:
        reason = "ticketEV 0: tickets carry no value, the orchestrator is never paid"
        report.add("ticketEV", orch_text, gw_text, Status.MISMATCH, reason)
    elif "ticket_ev_over_max" in codes:
        reason = codes["ticket_ev_over_max"].detail
        if orch.ticket_ev <= gateway.max_ticket_ev and ev is not None:
            reason += (
                "; winProb is rounded up, so the realised EV is a hair above ticketEV: "
                f"set maxTicketEV to at least {math.ceil(ev)}"
            )
        report.add("ticketEV", orch_text, gw_text, Status.MISMATCH, reason)
    elif ev is None and orch.ticket_ev > gateway.max_ticket_ev:
        reason = "ticketEV is above the gateway's maxTicketEV"
        report.add("ticketEV", orch_text, gw_text, Status.MISMATCH, reason)
    else:
        reason = "within maxTicketEV"
        realised = ev if ev is not None else Fraction(orch.ticket_ev)
        if realised > 0:
            ratio = significant(gateway.max_ticket_ev / realised, 4)
            reason += f": maxTicketEV is {ratio} x the realised ticket EV"
        report.add("ticketEV", orch_text, gw_text, Status.OK, reason)


def _face_value_row(
    report: Report,
    orch: OrchestratorSettings,
    limits: GatewayLimits,
    quote: FaceValueQuote | None,
    refusal: str,
    codes: dict[str, Problem],
    gas: tuple[int, int, int],
) -> None:
    cap = format_wei(orch.max_face_value) if orch.max_face_value else "0 (no cap)"
    max_fv = limits.max_face_value()
    gw_text = (
        f"deposit/{limits.deposit_multiplier} = {format_wei(max_fv)}"
        if max_fv is not None
        else f"deposit/{limits.deposit_multiplier} (deposit unknown)"
    )
    if quote is None:
        report.add(
            "faceValue",
            f"maxFaceValue {cap}",
            gw_text,
            Status.MISMATCH,
            f"the orchestrator quotes no tickets: {refusal}",
        )
        return
    if quote.capped_by == "maxFaceValue":
        orch_text = f"{format_wei(quote.face_value)}, the maxFaceValue cap"
    else:
        how = f" (capped by {quote.capped_by})" if quote.capped_by else ""
        orch_text = f"{format_wei(quote.face_value)}{how}; maxFaceValue {cap}"
    redeem_gas, min_gas, gas_price = gas
    low, high = _face_value_range(orch, redeem_gas, min_gas, gas_price)
    spread = ""
    if low != high:
        spread = (
            f"; for gas prices from {readable_wei(min_gas)} to {readable_wei(gas_price)} the "
            f"face value ranges from {readable_wei(low)} to {readable_wei(high)}"
        )
        spread += _below_cap_window(orch, redeem_gas, min_gas, gas_price)
    for code in ("no_sender_deposit", "face_value_over_deposit"):
        if code in codes:
            report.add("faceValue", orch_text, gw_text, Status.MISMATCH, codes[code].detail)
            return
    if max_fv is None:
        need = high * limits.deposit_multiplier
        report.add(
            "faceValue",
            orch_text,
            gw_text,
            Status.INFO,
            f"the gateway needs a deposit of at least {format_wei(need)} "
            f"(faceValue x depositMultiplier){spread}; pass --deposit to check",
        )
        return
    report.add("faceValue", orch_text, gw_text, Status.OK, f"within deposit/multiplier{spread}")


def _face_value_range(
    orch: OrchestratorSettings, redeem_gas: int, min_gas: int, gas_price: int
) -> tuple[int, int]:
    """Lowest and highest quotable face value for gas prices in [min_gas, gas_price]."""
    pivot = -(-orch.ticket_ev // (redeem_gas * TX_COST_MULTIPLIER)) if redeem_gas else 0
    values = []
    for gas in {min_gas, gas_price, pivot - 1, pivot}:
        if min_gas <= gas <= gas_price:
            try:
                fv = quote_face_value(
                    orch.ticket_ev,
                    redeem_gas=redeem_gas,
                    gas_price=gas,
                    max_face_value=orch.max_face_value,
                )
            except InsufficientSenderReserve:
                continue
            values.append(fv.face_value)
    return (min(values), max(values)) if values else (0, 0)


def _below_cap_window(
    orch: OrchestratorSettings, redeem_gas: int, min_gas: int, gas_price: int
) -> str:
    """Where a capped face value dips below maxFaceValue: 100 x txCost, in a window of gas."""
    if not orch.max_face_value or not redeem_gas:
        return ""
    per_wei = redeem_gas * TX_COST_MULTIPLIER
    first = max(-(-orch.ticket_ev // per_wei), min_gas)  # from here 100 x txCost >= ticketEV
    last = min(-(-orch.max_face_value // per_wei) - 1, gas_price)  # ... and < maxFaceValue
    if first > last:
        return ""
    below = orch.ticket_ev * TX_COST_MULTIPLIER
    if below >= orch.max_face_value:
        rest = f"at every other gas price up to {readable_wei(gas_price)} it is the cap"
    else:
        rest = (
            f"below {first} wei it is ticketEV x 100 ({readable_wei(below)}), "
            f"above {last} wei the cap"
        )
    return (
        f" (it is 100 x txCost, below the maxFaceValue cap, only for gas prices from "
        f"{first} to {last} wei; {rest})"
    )


def _win_prob_row(
    report: Report, ev: int, wp: int | None, low_face_value: int | None, codes: dict[str, Problem]
) -> None:
    if wp is None:
        report.add("winProb", "-", "must be < 1", Status.MISMATCH, "no tickets are quoted")
    elif "face_value_too_low" in codes or wp >= MAX_WIN_PROB:
        detail = codes["face_value_too_low"].detail if "face_value_too_low" in codes else ""
        report.add(
            "winProb",
            describe_probability(wp),
            "must be < 1",
            Status.MISMATCH,
            f"faceValue equals ticketEV: every ticket wins and go-livepeer's gateway rejects "
            f"it ('ticket faceValue too low'); raise maxFaceValue above ticketEV. {detail}",
        )
    else:
        reason = "below 1"
        if low_face_value and low_face_value > ev:
            low_wp = win_prob(ev, low_face_value)
            if low_wp != wp:
                reason += (
                    f"; at the lowest face value ({readable_wei(low_face_value)}) it is "
                    f"{describe_probability(low_wp)}"
                )
        report.add("winProb", describe_probability(wp), "must be < 1", Status.OK, reason)


def _total_ev_row(
    report: Report,
    gateway: GatewaySettings,
    ev: Fraction | None,
    tickets: int,
    tickets_reason: str,
    codes: dict[str, Problem],
) -> None:
    gw_text = _fraction_wei(gateway.max_total_ev)
    if ev is None:
        report.add("EV per payment", "-", gw_text, Status.INFO, "no tickets are quoted")
        return
    orch_text = f"{tickets} x ticket EV = {_fraction_wei(ev * tickets)}"
    if "total_ev_over_max" in codes:
        detail = codes["total_ev_over_max"].detail
        report.add(
            "EV per payment", orch_text, gw_text, Status.MISMATCH, f"{detail}; {tickets_reason}"
        )
    else:
        room = (
            f"; a payment may hold at most {math.floor(gateway.max_total_ev / ev)} tickets"
            if ev
            else ""
        )
        report.add(
            "EV per payment",
            orch_text,
            gw_text,
            Status.OK,
            f"within maxTotalEV{room}; {tickets_reason}",
        )


def _gas_row(
    report: Report,
    orch: OrchestratorSettings,
    quote: FaceValueQuote | None,
    gas_price: int,
    limits: tuple[int, int | None, int | None],
) -> None:
    """maxGasPrice: the redemption cost, and any gas price above which no tickets are quoted."""
    redeem_gas, limit, max_float = limits
    orch_text = format_wei(orch.max_gas_price) if orch.max_gas_price else "0 (no maximum)"
    ceiling = orch.max_gas_price or None
    if limit is not None and (ceiling is None or limit < ceiling):
        reason = _quote_limit_reason(orch, redeem_gas, limit, ceiling, max_float)
        fix = f"set maxGasPrice {limit} or less"
        if face_value_cap(orch.max_face_value, max_float) == orch.max_face_value:
            needed = tx_cost(redeem_gas, min(ceiling or AVG_GAS_PRICE, AVG_GAS_PRICE))
            fix += f", or maxFaceValue {needed} or more"
        report.add("maxGasPrice", orch_text, "-", Status.WARN, reason, (fix, orch.config.path))
        return
    if quote is None:
        report.add("maxGasPrice", orch_text, "-", Status.INFO, "no tickets are quoted")
        return
    share = Fraction(quote.tx_cost, quote.face_value) if quote.face_value else Fraction(0)
    reason = (
        f"redeeming a winning ticket costs {format_wei(quote.tx_cost)} at gas price "
        f"{readable_wei(gas_price)}, {significant(share * 100, 3)}% of its face value"
    )
    if quote.tx_cost >= quote.face_value:
        fix = (
            f"set maxGasPrice {(quote.face_value - 1) // redeem_gas} or less, or maxFaceValue"
            f" {quote.tx_cost + 1} or more"
        )
        report.add(
            "maxGasPrice",
            orch_text,
            "-",
            Status.WARN,
            reason + ": redemption eats the payment",
            (fix, orch.config.path),
        )
    elif orch.max_gas_price == 0:
        report.add(
            "maxGasPrice",
            orch_text,
            "-",
            Status.WARN,
            reason + "; without a maximum the orchestrator redeems at any gas price",
            (
                f"set maxGasPrice to the most it should pay to redeem a ticket, e.g."
                f" maxGasPrice {gas_price}",
                orch.config.path,
            ),
        )
    else:
        report.add("maxGasPrice", orch_text, "-", Status.OK, reason)


def _quote_limit_reason(
    orch: OrchestratorSettings,
    redeem_gas: int,
    limit: int,
    ceiling: int | None,
    max_float: int | None,
) -> str:
    """Why the orchestrator stops quoting above ``limit``, with the numbers and the fixes."""
    cap = face_value_cap(orch.max_face_value, max_float) or 0
    cap_name = "maxFaceValue" if cap == orch.max_face_value else "the gateway's max float"
    avg_cost = tx_cost(redeem_gas, AVG_GAS_PRICE)
    reason = (
        f"above gas price {limit} wei ({readable_wei(limit)}) = {cap_name} "
        f"{readable_wei(cap)} / redeemGas {redeem_gas:,}, the orchestrator quotes no tickets "
        f"('insufficient sender reserve') and on-chain gateways cannot pay it: the face value "
        f"stays at the {readable_wei(cap)} cap while txCost = redeemGas x gasPrice passes it, "
        f"and the cap is also below go-livepeer's fallback, the cost at its 3 gwei average "
        f"gas price ({readable_wei(avg_cost)})"
    )
    if ceiling is None:
        return reason + (
            f". No maxGasPrice is set: it redeems at any gas price. To quote at every gas "
            f"price set {cap_name} to at least {avg_cost}"
        )
    ceiling_cost = tx_cost(redeem_gas, ceiling)
    share = significant(Fraction(ceiling_cost, cap) * 100, 4)
    return reason + (
        f". maxGasPrice {readable_wei(ceiling)} lets it redeem up to {readable_wei(ceiling)}, "
        f"where txCost is {readable_wei(ceiling_cost)} ({share}% of the cap), but it takes no "
        f"new tickets between {readable_wei(limit + 1)} and {readable_wei(ceiling)}. To quote up "
        f"to maxGasPrice: {cap_name} {min(ceiling_cost, avg_cost)} or more, or maxGasPrice "
        f"{limit} or less"
    )


def _ignored_flag_rows(
    report: Report,
    orch: OrchestratorSettings,
    gateway: GatewaySettings,
    quote: FaceValueQuote | None,
) -> None:
    """Pricing flags set in the other side's file: accepted by go-livepeer, then ignored."""
    sides = (
        (gateway.config, ("orchestrator",), ORCHESTRATOR_ONLY_FLAGS, "an orchestrator", "gateway"),
        (orch.config, ("gateway", "broadcaster"), GATEWAY_ONLY_FLAGS, "a gateway", "orchestrator"),
    )
    for config, roles, names, reader, side in sides:
        if any(parse_bool(config.get(role).value) for role in roles):
            continue  # the file also takes that role: the flag is read
        for name in names:
            if not config.is_set(name):
                continue
            setting = config.get(name)
            shown = f"{setting.value} ({config.path.name}:{setting.line})"
            reason = (
                f"ignored: go-livepeer defines {name} for every node (so the {side} starts) "
                f"but reads it only on {reader} (cmd/livepeer/starter/starter.go)"
            )
            if name == "maxFaceValue":
                reason += (
                    "; a gateway's own face-value limit is its on-chain deposit / "
                    f"depositMultiplier ({gateway.deposit_multiplier})"
                )
                if quote is not None:
                    need = quote.face_value * gateway.deposit_multiplier
                    reason += (
                        f": to accept the orchestrator's face value of "
                        f"{readable_wei(quote.face_value)} it needs a deposit of at least "
                        f"{format_wei(need)}"
                    )
            orch_text, gw_text = ("-", shown) if side == "gateway" else (shown, "-")
            fix = f"remove the line {name} (line {setting.line}): only {reader} reads it"
            report.add(
                f"{name} ({side})", orch_text, gw_text, Status.WARN, reason, (fix, config.path)
            )
