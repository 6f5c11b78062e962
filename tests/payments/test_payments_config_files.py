"""go-livepeer config files: ff's PlainParser rules, flag names and Go value parsing."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from payments.config_files import (
    ConfigError,
    gateway_settings,
    orchestrator_settings,
    parse_config_text,
    read_config_file,
)
from payments.go_values import GoValueError, parse_big_int, parse_bool, parse_int, parse_rat
from payments.livepeer_flags import FLAG_TYPES, SECRET_FLAGS, env_var

REPO = Path(__file__).resolve().parents[2]
ORCHESTRATOR_CONF = REPO / "orchestrator_config" / "orchestrator.conf"
GATEWAY_CONF = REPO / "gateway_config" / "gateway.conf"


def test_plain_parser_rules() -> None:
    text = (
        "# a comment\n"
        "\n"
        "   orchestrator   \n"  # a flag alone means true
        "ticketEV 29000000000000 # inline comment\n"
        "serviceAddr   orchestrator:8935  \n"
        "  # indented comment\n"
        "orchAddr https://a:1#not-a-comment\n"
    )
    config = parse_config_text(text)
    assert {name: s.value for name, s in config.settings.items()} == {
        "orchestrator": "true",
        "ticketEV": "29000000000000",
        "serviceAddr": "orchestrator:8935",
        "orchAddr": "https://a:1#not-a-comment",
    }
    assert config.settings["ticketEV"].line == 4
    assert config.get("maxTicketEV").value == "3000000000000"  # upstream default
    assert config.get("maxTicketEV").line is None


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("orchestrator true\nticketEv 5\n", 2, "case-sensitive: did you mean ticketEV"),
        ("orchestrator true\nfoo bar\n", 2, "unknown go-livepeer flag 'foo'"),
        ("-ticketEV 5\n", 1, "without the dash"),
        ("ticketEV\t5\n", 1, "a tab makes the whole line the flag name"),
        ("ticketEV 5\nticketEV 6\n", 2, "already set on line 1"),
        ("autoAdjustPrice yes\n", 1, "not a Go boolean"),
        ("autoAdjustPrice #off\n", 1, "not a Go boolean"),  # '#' right after the space is kept
        ("maxGasPrice 20 gwei\n", 1, "write maxGasPrice 20000000000"),
        ("depositMultiplier 1.5\n", 1, "not an integer"),
        ("discoveryTimeout 5 seconds\n", 1, "Go duration"),
        ("selectRandFreq lots\n", 1, "not a number"),
        ("x" * 70000 + "\n", 1, "64 KiB"),
    ],
)
def test_what_go_livepeer_refuses_is_reported_with_its_line(
    text: str, line: int, reason: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config_text(text, "some.conf")
    assert excinfo.value.line == line
    assert reason in excinfo.value.reason
    assert str(excinfo.value).startswith(f"some.conf:{line}: ")


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [
        ("ticketEV", "18 gwei", "write ticketEV 18000000000"),
        ("ticketEV", "100 000", "write ticketEV 100000"),
        ("ticketEV", "1e15", "write ticketEV 1000000000000000"),
        ("ticketEV", "-5", "must not be negative"),
        ("maxFaceValue", "0.0001 ETH", "write maxFaceValue 100000000000000"),
        ("maxFaceValue", "-1", "write 0 for no cap"),
        ("pricePerUnit", "-18", "<price><currency>"),
        ("pixelsPerUnit", "0", "whole number > 0"),
        ("pixelsPerUnit", "1.5", "whole number > 0"),
    ],
)
def test_orchestrator_values_go_livepeer_refuses(
    tmp_path: Path, flag: str, value: str, reason: str
) -> None:
    path = tmp_path / "o.conf"
    path.write_text(f"orchestrator true\n{flag} {value}\n")
    with pytest.raises(ConfigError) as excinfo:
        orchestrator_settings(read_config_file(path))
    assert excinfo.value.line == 2
    assert reason in excinfo.value.reason


@pytest.mark.parametrize(
    ("flag", "value", "reason"),
    [
        ("maxTicketEV", "30 000 gwei", "write maxTicketEV 30000000000000"),
        ("maxTicketEV", "-1", "must not be negative"),
        ("maxTotalEV", "lots", "not a rational number"),
        ("depositMultiplier", "0", "greater than 0"),
        ("maxPricePerUnit", "20 gwei", "write maxPricePerUnit 20000000000"),
    ],
)
def test_gateway_values_go_livepeer_refuses(
    tmp_path: Path, flag: str, value: str, reason: str
) -> None:
    path = tmp_path / "g.conf"
    path.write_text(f"gateway true\n{flag} {value}\n")
    with pytest.raises(ConfigError) as excinfo:
        gateway_settings(read_config_file(path))
    assert excinfo.value.line == 2
    assert reason in excinfo.value.reason


DESIGN_ORCHESTRATOR = {
    "pricePerUnit": "100000000000000",
    "ticketEV": "29000000000000",
    "maxFaceValue": "1000000000000000",
    "autoAdjustPrice": "false",
    "maxGasPrice": "1000000000",
}
DESIGN_GATEWAY = {
    "maxTicketEV": "300000000000000",
    "maxTotalEV": "300000000000000",
    "maxFaceValue": "1000000000000000",
    "maxPricePerUnit": "130000000000000",
}


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as excinfo:
        read_config_file(tmp_path / "nope.conf")
    assert excinfo.value.line is None
    with pytest.raises(ConfigError, match="directory"):
        read_config_file(tmp_path)
    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_config_file(binary)


def test_committed_files_carry_the_design_numbers() -> None:
    """The design's flag cheat-sheet, value for value."""
    orch = read_config_file(ORCHESTRATOR_CONF)
    assert {name: orch.get(name).value for name in DESIGN_ORCHESTRATOR} == DESIGN_ORCHESTRATOR
    gateway = read_config_file(GATEWAY_CONF)
    assert {name: gateway.get(name).value for name in DESIGN_GATEWAY} == DESIGN_GATEWAY
    typed = orchestrator_settings(orch)
    assert typed.ticket_ev == 29_000_000_000_000
    assert typed.max_face_value == 10**15
    assert typed.auto_adjust_price is False
    assert typed.max_gas_price == 10**9
    assert typed.price is not None and typed.price.wei_per_pixel() == 10**14
    typed_gateway = gateway_settings(gateway)
    assert typed_gateway.max_ticket_ev == typed_gateway.max_total_ev == 3 * 10**14
    assert typed_gateway.max_price.wei_per_pixel() == 13 * 10**13


@pytest.mark.parametrize("path", [ORCHESTRATOR_CONF, GATEWAY_CONF])
def test_committed_files_hold_no_secrets(path: Path) -> None:
    config = read_config_file(path)
    assert config.secrets() == []
    assert not set(config.settings) & SECRET_FLAGS


def test_committed_flag_names_exist_in_upstream_starter() -> None:
    """Every flag name used is one of go-livepeer's (flags.go at commit 176aa415)."""
    for path in (ORCHESTRATOR_CONF, GATEWAY_CONF):
        for name in read_config_file(path).settings:
            assert name in FLAG_TYPES, (path, name)
    assert read_config_file(ORCHESTRATOR_CONF).get("orchestrator").value == "true"
    assert read_config_file(GATEWAY_CONF).get("gateway").value == "true"


def test_orch_secret_env_var_is_documented_in_the_orchestrator_file() -> None:
    assert env_var("orchSecret") == "LP_ORCHSECRET"
    assert "LP_ORCHSECRET" in ORCHESTRATOR_CONF.read_text()


def test_committed_files_are_tracked_by_git() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "orchestrator_config", "gateway_config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert "orchestrator_config/orchestrator.conf" in tracked
    assert "gateway_config/gateway.conf" in tracked


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("T", True), ("1", True), ("False", False), ("0", False)],
)
def test_go_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize(
    ("text", "value"),
    [("20000000", 20_000_000), ("1_000", 1000), ("0x10", 16), ("010", 8), ("-3", -3), ("0", 0)],
)
def test_go_parse_int_base_0(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize("text", ["08", "1e3", "1.0", "", " 1", "9223372036854775808", "\uff11"])
def test_go_parse_int_rejects(text: str) -> None:
    with pytest.raises(GoValueError):
        parse_int(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3000000000000", Fraction(3 * 10**12)),
        ("3e12", Fraction(3 * 10**12)),
        ("1.5", Fraction(3, 2)),
        ("3/2", Fraction(3, 2)),
        (".5", Fraction(1, 2)),
        ("1_000.5", Fraction(2001, 2)),
        ("-2", Fraction(-2)),
        ("2.9E13", Fraction(29 * 10**12)),
    ],
)
def test_go_parse_rat(text: str, value: Fraction) -> None:
    assert parse_rat(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1/0", "1 000", "1e", "0x1p3", "."])
def test_go_parse_rat_rejects(text: str) -> None:
    with pytest.raises(GoValueError):
        parse_rat(text)


def test_go_big_int_is_strict_base_10() -> None:
    assert parse_big_int("29000000000000") == 29_000_000_000_000
    assert parse_big_int("-5") == -5
    for text in ("1_000", "0x10", "1e3", " 5", "5 gwei"):
        with pytest.raises(GoValueError):
            parse_big_int(text)
