"""``agent-net-check-pricing``: will gateways accept this orchestrator's price and tickets?

Exit status: 0 accepted, 1 a mismatch (see the table), 2 a file missing or malformed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from payments.amounts import AmountError, parse_amount
from payments.config_files import (
    ConfigError,
    gateway_settings,
    orchestrator_settings,
    read_config_file,
)
from payments.pricing_check import Assumptions, check_pricing
from payments.report import dumps, error_json, render_text, report_json

ORCHESTRATOR_FILE = Path("orchestrator_config") / "orchestrator.conf"
GATEWAY_FILE = Path("gateway_config") / "gateway.conf"
EXIT_MALFORMED = 2


def _amount(text: str) -> int:
    try:
        return parse_amount(text)
    except AmountError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def build_parser(root: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # No fixed prog: usage and errors name the command as it was run
        # (check_pricing.py, or agent-net-check-pricing once installed).
        description=(
            "Compare the orchestrator's and the gateway's go-livepeer config files and say "
            "whether the gateway will accept the orchestrator's price and tickets. Amounts "
            "accept units: 29000000000000, 18 gwei, 0.001 ETH, 1e15."
        ),
        epilog="Exit status: 0 accepted, 1 mismatch, 2 file missing or malformed.",
    )
    parser.add_argument(
        "--orchestrator",
        type=Path,
        default=root / ORCHESTRATOR_FILE,
        help="orchestrator -config file (default: %(default)s)",
    )
    parser.add_argument(
        "--gateway",
        type=Path,
        default=root / GATEWAY_FILE,
        help="gateway -config file (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    assume = parser.add_argument_group("assumptions (what the files cannot tell)")
    assume.add_argument(
        "--gas-price",
        type=_amount,
        help="gas price to derive the face value (default: the orchestrator's maxGasPrice, "
        "else go-livepeer's 3 gwei average)",
    )
    assume.add_argument(
        "--redeem-gas",
        type=_positive_int,
        help="gas to redeem a ticket (default: go-livepeer's value for the network)",
    )
    assume.add_argument(
        "--deposit", type=_amount, help="the gateway's on-chain deposit (checks the face value)"
    )
    assume.add_argument(
        "--max-float",
        type=_amount,
        help="the gateway reserve the orchestrator may draw on (caps the face value)",
    )
    assume.add_argument(
        "--capability-price",
        type=_amount,
        help="BYOC capability price in wei per second (price_per_unit / price_scaling)",
    )
    assume.add_argument(
        "--job-timeout", type=_positive_int, help="BYOC job timeout_seconds (sizes a payment)"
    )
    return parser


def main(argv: Sequence[str] | None = None, root: Path | None = None) -> int:
    """Run the check; ``root`` is where the default config paths are looked up (cwd)."""
    parser = build_parser(root or Path())
    args = parser.parse_args(argv)
    assumptions = Assumptions(
        gas_price=args.gas_price,
        redeem_gas=args.redeem_gas,
        deposit=args.deposit,
        max_float=args.max_float,
        capability_price=args.capability_price,
        job_timeout=args.job_timeout,
    )
    orch_path, gw_path = str(args.orchestrator), str(args.gateway)
    try:
        orch = orchestrator_settings(read_config_file(args.orchestrator))
        gateway = gateway_settings(read_config_file(args.gateway))
    except ConfigError as exc:
        if args.json:
            sys.stdout.write(dumps(error_json(exc)))
        else:
            sys.stderr.write(f"{parser.prog}: error: {exc}\n")
        return EXIT_MALFORMED
    report = check_pricing(orch, gateway, assumptions)
    if args.json:
        sys.stdout.write(dumps(report_json(report, orch_path, gw_path)))
    else:
        sys.stdout.write(render_text(report, orch_path, gw_path))
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
