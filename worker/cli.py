"""`agent-net`: the operator's command line (`agent-net doctor`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-net", description="Agent-Net operator tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor",
        help="check the whole chain and say what to fix",
        description=(
            "Check settings, NVML and each GPU, Ollama and the model, the worker, each"
            " orchestrator (reachable, TLS), the worker's registrations and pricing, one"
            " line each with ok / warning / fail / skip and, for each problem, the fix."
            " Settings: the environment over ./.env (as docker compose reads them)."
        ),
        epilog="Exit status: 0 when nothing fails, 1 otherwise.",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as one JSON document")
    doctor.add_argument(
        "--env-file",
        type=Path,
        default=Path(".env"),
        help="the .env file to read under the environment (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from worker.doctor import run_doctor

    report = run_doctor(os.environ, Path.cwd(), args.env_file.absolute())
    if args.json:
        sys.stdout.write(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(report.as_text())
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
