"""The pricing check rendered as a side-by-side text table or as JSON."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from payments.config_files import ConfigError
from payments.pricing_check import Report, Row

_COLUMNS = (("Parameter", 16), ("Orchestrator", 34), ("Gateway", 28), ("Result", 50))


def _cell_lines(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for part in text.split("\n"):
        lines.extend(textwrap.wrap(part, width, break_on_hyphens=False) or [""])
    return lines


def _table(rows: list[Row]) -> list[str]:
    widths = [width for _, width in _COLUMNS]
    rule = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [rule, "| " + " | ".join(h.ljust(w) for h, w in _COLUMNS) + " |", rule]
    for row in rows:
        result = row.status.value + (f": {row.reason}" if row.reason else "")
        cells = [
            _cell_lines(text, w)
            for text, w in zip(
                (row.parameter, row.orchestrator, row.gateway, result), widths, strict=True
            )
        ]
        for i in range(max(len(c) for c in cells)):
            parts = [
                (c[i] if i < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)
            ]
            out.append("| " + " | ".join(parts) + " |")
        out.append(rule)
    return out


def render_text(report: Report, orchestrator_file: str, gateway_file: str) -> str:
    """The report as the operator reads it."""
    lines = [
        "Agent-Net pricing check (go-livepeer probabilistic micropayments)",
        f"  orchestrator config: {orchestrator_file}",
        f"  gateway config:      {gateway_file}",
        "",
        "Assumptions:",
        *(f"  - {a}" for a in report.assumptions),
        "",
        *_table(report.rows),
        "",
        "Notes:",
        *(f"  - {n}" for n in report.notes),
        "",
    ]
    mismatches = [row.parameter for row in report.rows if row.status.value == "MISMATCH"]
    if mismatches:
        lines.append(
            f"MISMATCH: the gateway will not accept this orchestrator ({', '.join(mismatches)})"
        )
    else:
        lines.append("OK: the gateway will accept the orchestrator's price and tickets")
    warnings = [row.parameter for row in report.rows if row.status.value == "WARN"]
    if warnings:
        lines.append(
            f"{len(warnings)} warning(s), see the table ({', '.join(warnings)}); "
            "warnings do not change the exit status"
        )
    return "\n".join(lines) + "\n"


def report_json(report: Report, orchestrator_file: str, gateway_file: str) -> dict[str, Any]:
    """The same report as a JSON-ready dictionary."""
    return {
        "ok": report.ok,
        "exit_code": report.exit_code,
        "orchestrator_file": orchestrator_file,
        "gateway_file": gateway_file,
        "rows": [
            {
                "parameter": row.parameter,
                "orchestrator": row.orchestrator,
                "gateway": row.gateway,
                "status": row.status.value,
                "reason": row.reason,
                **({"fix": row.fix, "file": row.file} if row.fix else {}),
            }
            for row in report.rows
        ],
        "assumptions": report.assumptions,
        "notes": report.notes,
        "derived": report.derived,
    }


def error_json(error: ConfigError) -> dict[str, Any]:
    """A missing or malformed file as JSON (exit code 2)."""
    return {
        "ok": False,
        "exit_code": 2,
        "error": {"file": error.path, "line": error.line, "reason": error.reason},
    }


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
