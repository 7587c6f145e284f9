"""Which price source each command uses: Yahoo for the live commands unless configured otherwise,
the offline demo market for demo rounds (never the network), and every summary names it."""

from __future__ import annotations

import pytest

from numerflow.flows.cli import main
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.prices.configured import price_source
from numerflow.tasks.prices.sources.demo import DemoMarket
from numerflow.tasks.round.signals import mode_overrides
from numerflow.tasks.round.summary import _prices_line


def test_live_commands_default_to_yahoo():
    assert load_settings().price_source == "yahoo"
    assert mode_overrides("live", {}) == {}
    assert load_settings(**mode_overrides("live", {"price_source": "files"})).price_source == "files"


def test_a_demo_round_reads_the_demo_market_even_when_yahoo_is_configured(monkeypatch):
    monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "yahoo")
    settings = load_settings(**mode_overrides("demo", {"demo": {"tickers": 120, "years": 1.0}}))
    assert settings.price_source == "demo"
    assert isinstance(price_source(settings), DemoMarket)  # no Yahoo session is even built
    # Your own files are offline too, and stay.
    assert load_settings(**mode_overrides("demo", {"price_source": "files"})).price_source == "files"


def test_ingest_without_configuration_is_the_live_yahoo_ingest(tmp_path, capsys):
    # No universe snapshot yet: the Yahoo ingest says what to run first (the demo market would not need one).
    code = main(["ingest", "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert "run `numerflow universe` first" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["demo", "yahoo", "yahoo-crypto"])
def test_the_round_summary_names_its_price_source(source):
    line = _prices_line({"source": source, "tickers": 3, "ok": 3, "rows": 10, "last_date": "2026-12-01"})
    assert line.startswith(f"3 tickers from {source} (3 ok)")
