"""docs/pricing.md explains the numbers that ship: it must name each one and the check."""

from __future__ import annotations

from pathlib import Path

from payments.config_files import read_config_file

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "pricing.md"
PRICING_FLAGS = (
    "pricePerUnit",
    "autoAdjustPrice",
    "ticketEV",
    "maxFaceValue",
    "maxGasPrice",
    "maxPricePerUnit",
    "maxTicketEV",
    "maxTotalEV",
    "depositMultiplier",
)


def test_pricing_doc_names_every_shipped_pricing_value() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path in (
        REPO / "orchestrator_config/orchestrator.conf",
        REPO / "gateway_config/gateway.conf",
    ):
        config = read_config_file(path)
        for name in PRICING_FLAGS:
            if config.is_set(name):
                assert f"`{name}`" in text, name
                assert config.get(name).value in text, (path.name, name)


def test_pricing_doc_shows_the_command_exit_codes_and_the_quote_limit() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "python3 scripts/check_pricing.py" in text
    for row in ("| 0 |", "| 1 |", "| 2 |"):
        assert row in text
    # the numbers the check's maxGasPrice warning prints for the shipped files
    for number in ("833,333,333 wei", "0.0036 ETH", "0.0012 ETH", "maxGasPrice 833333333"):
        assert number in text
