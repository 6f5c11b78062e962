"""scripts/check_pricing.py end to end: exit codes, table, JSON, on good, mismatched and
malformed files (subprocess), plus more scenarios through ``main`` in process."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from payments.check_pricing_cli import main

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_pricing.py"
ORCHESTRATOR_CONF = REPO / "orchestrator_config" / "orchestrator.conf"
GATEWAY_CONF = REPO / "gateway_config" / "gateway.conf"
MAX_WIN_PROB = 2**256 - 1


def run_script(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, dict]:
    code = main(["--json", *map(str, args)])
    out = capsys.readouterr().out
    return code, json.loads(out)


def statuses(report: dict) -> dict[str, str]:
    return {row["parameter"]: row["status"] for row in report["rows"]}


# --- subprocess: the script as an operator runs it ----------------------------------------


def test_committed_files_pass(tmp_path: Path) -> None:
    result = run_script(cwd=tmp_path)  # defaults are found relative to the script, not cwd
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "| Parameter" in out and "| Orchestrator" in out and "| Gateway" in out
    for parameter in ("pricePerUnit", "ticketEV", "faceValue", "winProb", "autoAdjustPrice"):
        assert f"| {parameter}" in out
    assert "29000000000000 wei (29,000 gwei)" in out
    assert "0.29 (29%" in out
    assert out.rstrip().endswith("OK: the gateway will accept the orchestrator's price and tickets")


def test_committed_files_json_numbers() -> None:
    result = run_script("--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["exit_code"] == 0
    assert "MISMATCH" not in statuses(report).values()
    derived = report["derived"]
    assert derived["face_value_wei"] == "100000000000000"
    probability = Fraction(int(derived["win_prob"]), MAX_WIN_PROB)
    assert (
        Fraction(29, 100) <= probability < Fraction(29, 100) + Fraction(29 * 10**12, MAX_WIN_PROB)
    )
    num, den = map(int, derived["ticket_ev_wei"].split("/"))
    assert 29_000_000_000_000 < Fraction(num, den) < 29_000_000_000_001


def test_mismatched_gateway_exits_1_with_reasons(edited) -> None:
    gateway = edited(GATEWAY_CONF, maxTicketEV="29000000000000", maxPricePerUnit="10000000000")
    result = run_script("--gateway", gateway)
    assert result.returncode == 1, result.stdout
    assert "MISMATCH: the gateway will not accept this orchestrator (pricePerUnit, ticketEV)" in (
        result.stdout
    )
    report = json.loads(run_script("--gateway", gateway, "--json").stdout)
    rows = {row["parameter"]: row for row in report["rows"]}
    assert rows["ticketEV"]["status"] == "MISMATCH"
    # the realised EV is a hair above ticketEV because winProb rounds up
    assert "at least 29000000000001" in rows["ticketEV"]["reason"]
    assert rows["pricePerUnit"]["status"] == "MISMATCH"
    assert "10000000000 wei (10 gwei)" in rows["pricePerUnit"]["gateway"]


def test_malformed_file_exits_2_with_file_line_reason(edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, ticketEV="29 000 gwei")
    line = orch.read_text().splitlines().index("ticketEV 29 000 gwei") + 1
    result = run_script("--orchestrator", orch)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{orch}:{line}: ticketEV '29 000 gwei'" in result.stderr
    assert "write ticketEV 29000000000000" in result.stderr
    report = json.loads(run_script("--orchestrator", orch, "--json").stdout)
    assert report["exit_code"] == 2
    assert report["error"] == {
        "file": str(orch),
        "line": line,
        "reason": report["error"]["reason"],
    }
    assert "not a plain decimal integer" in report["error"]["reason"]


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_script("--gateway", tmp_path / "missing.conf")
    assert result.returncode == 2
    assert f"{tmp_path / 'missing.conf'}: file not found" in result.stderr


def test_bad_assumption_is_a_usage_error() -> None:
    result = run_script("--deposit", "-1 ETH")
    assert result.returncode == 2
    assert "negative amounts are not allowed" in result.stderr


# --- in process: more scenarios ------------------------------------------------------------


def test_deposit_decides_the_face_value_row(capsys) -> None:
    code, report = run_main(capsys, "--deposit", "0.0001 ETH")
    assert code == 0 and statuses(report)["faceValue"] == "OK"
    code, report = run_main(capsys, "--deposit", "99999999999999")
    assert code == 1 and statuses(report)["faceValue"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    assert "99999999999999" in row["gateway"]


def test_auto_adjust_price_warns_and_can_break_the_price(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, autoAdjustPrice=None)  # go-livepeer's default: true
    any_price = edited(GATEWAY_CONF, name="any.conf", maxPricePerUnit="0")
    code, report = run_main(capsys, "--orchestrator", orch, "--gateway", any_price)
    assert code == 0 and statuses(report)["autoAdjustPrice"] == "WARN"
    row = next(r for r in report["rows"] if r["parameter"] == "autoAdjustPrice")
    assert "default" in row["orchestrator"] and "+24%" in row["reason"]
    # face value 1e14 / tx cost 2.4e13 at 0.02 gwei: 18 gwei rises by 24% to 22.32 gwei,
    # past the committed gateway's 20 gwei maximum
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 1 and statuses(report)["pricePerUnit"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "pricePerUnit")
    assert "22320000000" in row["reason"]


def test_default_max_total_ev_refuses_a_single_ticket(capsys, edited) -> None:
    gateway = edited(GATEWAY_CONF, maxTotalEV=None)  # upstream default 20,000 gwei
    code, report = run_main(capsys, "--gateway", gateway)
    assert code == 1 and statuses(report)["EV per payment"] == "MISMATCH"


def test_byoc_payment_size_against_max_total_ev(capsys) -> None:
    # 10 gwei/s for 30 s = 300 gwei: one ticket of 29,000 gwei covers it
    code, report = run_main(capsys, "--capability-price", "10 gwei", "--job-timeout", "30")
    assert code == 0 and report["derived"]["tickets_per_payment"] == "1"
    # 0.00001 ETH/s for 300 s = 0.003 ETH: 104 tickets, far above maxTotalEV
    code, report = run_main(capsys, "--capability-price", "0.00001 ETH", "--job-timeout", "300")
    assert code == 1 and report["derived"]["tickets_per_payment"] == "104"
    assert statuses(report)["EV per payment"] == "MISMATCH"


def test_face_value_equal_to_ev_means_win_prob_one(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, maxFaceValue="29000000000000")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 1 and statuses(report)["winProb"] == "MISMATCH"


def test_gas_price_above_what_the_cap_covers_stops_quotes(capsys) -> None:
    # at 0.1 gwei a redemption costs 1.2e14 > maxFaceValue 1e14 (and < the 3 gwei cost)
    code, report = run_main(capsys, "--gas-price", "0.1 gwei")
    assert code == 1 and statuses(report)["faceValue"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    assert "insufficient sender reserve" in row["reason"]


def test_network_mismatch_and_missing_price(capsys, edited) -> None:
    gateway = edited(GATEWAY_CONF, network="arbitrum-one-mainnet")
    code, report = run_main(capsys, "--gateway", gateway)
    assert code == 1 and statuses(report)["network"] == "MISMATCH"
    orch = edited(ORCHESTRATOR_CONF, pricePerUnit=None)
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 1 and statuses(report)["pricePerUnit"] == "MISMATCH"


def test_secret_in_a_file_is_flagged(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, orchSecret="hunter2")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 0 and statuses(report)["orchSecret"] == "WARN"
    assert "hunter2" not in json.dumps(report)
    row = next(r for r in report["rows"] if r["parameter"] == "orchSecret")
    assert "LP_ORCHSECRET" in row["reason"]


def test_price_feed_currency_cannot_be_compared(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, pricePerUnit="0.50USD")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 0 and statuses(report)["pricePerUnit"] == "INFO"


def test_console_script_points_at_main() -> None:
    import importlib
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["agent-net-check-pricing"].partition(":")
    assert getattr(importlib.import_module(module), attr) is main
