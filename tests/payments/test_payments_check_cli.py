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
    assert "0.029 (2.9%, 1 ticket in 34.48" in out
    assert "\nOK: the gateway will accept the orchestrator's price and tickets\n" in out
    assert out.rstrip().endswith(
        "2 warning(s), see the table (maxGasPrice, maxFaceValue (gateway)); "
        "warnings do not change the exit status"
    )


def test_committed_files_warn_about_max_gas_price_and_the_gateway_max_face_value() -> None:
    result = run_script("--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {row["parameter"]: row for row in report["rows"]}
    assert {p for p, row in rows.items() if row["status"] == "WARN"} == {
        "maxGasPrice",
        "maxFaceValue (gateway)",
    }
    gas = rows["maxGasPrice"]
    assert gas["orchestrator"] == "1000000000 wei (1 gwei)"
    # maxFaceValue 1e15 / redeemGas 1,200,000 = 833,333,333.3: the last gas price quoted
    for number in (
        "above gas price 833333333 wei",
        "redeemGas 1,200,000",
        "(0.0036 ETH)",  # the cost at the 3 gwei average, also above the cap
        "txCost is 0.0012 ETH (120% of the cap)",
        "between 0.833333334 gwei and 1 gwei",
        "maxFaceValue 1200000000000000 or more, or maxGasPrice 833333333 or less",
    ):
        assert number in gas["reason"]
    ignored = rows["maxFaceValue (gateway)"]
    assert ignored["gateway"].startswith("1000000000000000 (gateway.conf:")
    assert "reads it only on an orchestrator" in ignored["reason"]
    assert "deposit of at least 1000000000000000 wei (0.001 ETH)" in ignored["reason"]
    # the rows are evaluated at the highest gas price that is still quoted
    assert report["derived"]["gas_price_wei"] == "833333333"
    assert any("the most it pays, 1 gwei, lowered" in a for a in report["assumptions"])


def test_committed_files_json_numbers() -> None:
    result = run_script("--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["exit_code"] == 0
    assert "MISMATCH" not in statuses(report).values()
    derived = report["derived"]
    assert derived["face_value_wei"] == "1000000000000000"
    probability = Fraction(int(derived["win_prob"]), MAX_WIN_PROB)
    assert (
        Fraction(29, 1000) <= probability < Fraction(29, 1000) + Fraction(29 * 10**12, MAX_WIN_PROB)
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
    assert result.stderr == (
        f"check_pricing.py: error: {tmp_path / 'missing.conf'}: file not found\n"
    )


def test_bad_assumption_is_a_usage_error() -> None:
    result = run_script("--deposit", "-1 ETH")
    assert result.returncode == 2
    assert "negative amounts are not allowed" in result.stderr
    # Named as it was run: the script, not the console script it is also installed as.
    assert result.stderr.startswith("usage: check_pricing.py ")
    assert "check_pricing.py: error: argument --deposit:" in result.stderr
    assert "agent-net-check-pricing" not in result.stderr


# --- in process: more scenarios ------------------------------------------------------------


def test_deposit_decides_the_face_value_row(capsys) -> None:
    code, report = run_main(capsys, "--deposit", "0.001 ETH")
    assert code == 0 and statuses(report)["faceValue"] == "OK"
    code, report = run_main(capsys, "--deposit", "999999999999999")
    assert code == 1 and statuses(report)["faceValue"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    assert "999999999999999" in row["gateway"]


def test_auto_adjust_price_warns_and_can_break_the_price(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, autoAdjustPrice=None)  # go-livepeer's default: true
    any_price = edited(GATEWAY_CONF, name="any.conf", maxPricePerUnit="0")
    code, report = run_main(capsys, "--orchestrator", orch, "--gateway", any_price)
    assert code == 0 and statuses(report)["autoAdjustPrice"] == "WARN"
    row = next(r for r in report["rows"] if r["parameter"] == "autoAdjustPrice")
    assert "default" in row["orchestrator"] and "+100%" in row["reason"]
    # face value 1e15 / tx cost 999,999,999,600,000 at 833,333,333 wei: 100,000 gwei rises
    # by 99.99999996% to 199,999,999,960,000 wei, past the gateway's 130,000 gwei maximum
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 1 and statuses(report)["pricePerUnit"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "pricePerUnit")
    assert "199999999960000 wei per unit" in row["reason"]


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
    # 833,333,333 wei x 1,200,000 gas = 999,999,999,600,000 <= maxFaceValue 1e15: quoted
    code, report = run_main(capsys, "--gas-price", "833333333")
    assert code == 0 and statuses(report)["faceValue"] != "MISMATCH"
    assert report["derived"]["face_value_wei"] == "1000000000000000"
    # one wei more costs 1,000,000,000,800,000 > 1e15 (and < 3.6e15 at 3 gwei): refused
    code, report = run_main(capsys, "--gas-price", "833333334")
    assert code == 1 and statuses(report)["faceValue"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    assert "insufficient sender reserve" in row["reason"]


def test_max_gas_price_within_the_cap_needs_no_warning(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, maxGasPrice="833333333")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 0 and statuses(report)["maxGasPrice"] == "OK"
    assert report["derived"]["gas_price_wei"] == "833333333"
    assert not any("lowered" in a for a in report["assumptions"])
    # a cap that covers a redemption at 1 gwei closes the gap too, but only just
    orch = edited(ORCHESTRATOR_CONF, name="big.conf", maxFaceValue="1200000000000000")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 0 and report["derived"]["gas_price_wei"] == "1000000000"
    row = next(r for r in report["rows"] if r["parameter"] == "maxGasPrice")
    assert row["status"] == "WARN" and "quotes no tickets" not in row["reason"]
    assert "100% of its face value: redemption eats the payment" in row["reason"]


def test_no_max_gas_price_still_warns_about_the_quote_limit(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, maxGasPrice=None)  # 0: no maximum
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 0 and statuses(report)["maxGasPrice"] == "WARN"
    row = next(r for r in report["rows"] if r["parameter"] == "maxGasPrice")
    assert "No maxGasPrice is set" in row["reason"]
    assert "maxFaceValue to at least 3600000000000000" in row["reason"]


def test_max_face_value_below_ticket_ev_quotes_at_no_gas_price(capsys, edited) -> None:
    orch = edited(ORCHESTRATOR_CONF, maxFaceValue="28999999999999")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 1 and statuses(report)["faceValue"] == "MISMATCH"
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    assert "below ticket EV" in row["reason"]


def test_flags_for_the_other_side_are_flagged_as_ignored(capsys, edited) -> None:
    gateway = edited(GATEWAY_CONF, maxFaceValue=None)
    code, report = run_main(capsys, "--gateway", gateway)
    assert code == 0 and "maxFaceValue (gateway)" not in statuses(report)
    orch = edited(ORCHESTRATOR_CONF, maxTicketEV="300000000000000")
    code, report = run_main(capsys, "--orchestrator", orch, "--gateway", gateway)
    assert code == 0 and statuses(report)["maxTicketEV (orchestrator)"] == "WARN"
    # a file that takes both roles reads both sides' flags
    both = edited(ORCHESTRATOR_CONF, name="both.conf", maxTicketEV="1", gateway="true")
    code, report = run_main(capsys, "--orchestrator", both, "--gateway", gateway)
    assert "maxTicketEV (orchestrator)" not in statuses(report)


def test_face_value_row_names_the_gas_window_below_the_cap(capsys) -> None:
    code, report = run_main(capsys)
    assert code == 0
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    # 100 x txCost reaches ticketEV at 241,667 wei and the 1e15 cap at 8,333,334 wei
    assert "only for gas prices from 241667 to 8333333 wei" in row["reason"]
    row = next(r for r in report["rows"] if r["parameter"] == "winProb")
    assert "at the lowest face value (29,000.04 gwei) it is 0.999999" in row["reason"]


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


def test_face_value_window_with_a_cap_above_ticket_ev_times_100(capsys, edited) -> None:
    # cap 0.01 ETH > ticketEV x 100 = 0.0029 ETH: below 241,667 wei the face value is the
    # latter; 100 x txCost passes the cap above 1e16 / 1.2e8 = 83,333,333.3 wei
    orch = edited(ORCHESTRATOR_CONF, maxFaceValue="10000000000000000")
    code, report = run_main(capsys, "--orchestrator", orch)
    assert code == 0 and statuses(report)["maxGasPrice"] == "OK"  # 0.01 ETH >= 0.0036 ETH
    row = next(r for r in report["rows"] if r["parameter"] == "faceValue")
    assert "only for gas prices from 241667 to 83333333 wei" in row["reason"]
    assert (
        "below 241667 wei it is ticketEV x 100 (0.0029 ETH), above 83333333 wei the cap"
        in (row["reason"])
    )


def test_every_warning_names_the_setting_to_change_and_its_file(capsys, edited) -> None:
    """The shipped files' two warnings, and the others a file can earn: each row's fix
    names the setting and the file it is in (what `agent-net doctor` prints as its fix)."""
    _, report = run_main(capsys)
    fixes = {row["parameter"]: (row["fix"], row["file"]) for row in report["rows"] if "fix" in row}
    assert fixes == {
        "maxGasPrice": (
            "set maxGasPrice 833333333 or less, or maxFaceValue 1200000000000000 or more",
            "orchestrator_config/orchestrator.conf",  # as given: here the default path
        ),
        "maxFaceValue (gateway)": (
            "remove the line maxFaceValue (line 53): only an orchestrator reads it",
            "gateway_config/gateway.conf",
        ),
    }
    orch = edited(ORCHESTRATOR_CONF, autoAdjustPrice="true", maxGasPrice=None)
    _, report = run_main(capsys, "--orchestrator", orch)
    warned = [row for row in report["rows"] if row["status"] == "WARN"]
    assert [row["parameter"] for row in warned] == [
        "autoAdjustPrice",
        "maxGasPrice",
        "maxFaceValue (gateway)",
    ]
    for row in warned[:2]:
        assert row["file"] == str(orch)
        assert row["fix"].startswith(f"set {row['parameter']} ")
