"""A live round on your own prices (``price_source = "files"``): Numerai's universe and upload (the
REAL numerapi client against the fake server), bars from a CSV keyed by ``numerai_ticker``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fakes.yahoo import make_bars
from test_live_round import HISTORY_START, TODAY, UNRESOLVABLE, live_env, numerai, signals_universe, yahoo  # noqa: F401

from numerflow.tasks.core.errors import BadInputError


def write_prices(path: Path) -> list[str]:
    frames = []
    tickers = [t for t, *_ in signals_universe()]
    for n, ticker in enumerate(tickers):
        bars = make_bars(HISTORY_START, TODAY, price=20 + n, seed=n).reset_index()
        frames.append(bars.assign(ticker=ticker, adj_close=bars["close"], currency="USD"))
    pd.concat(frames).to_csv(path, index=False)
    return tickers


@pytest.mark.slow
def test_live_round_on_your_own_price_files(prefect_harness, live_env, numerai, tmp_path, monkeypatch):
    from numerflow.flows.round import round_flow

    tickers = write_prices(tmp_path / "prices.csv")
    monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "files")
    monkeypatch.setenv("NUMERFLOW_FILES__PATH", str(tmp_path / "prices.csv"))
    result = round_flow(mode="live", model_name="my_signals")
    assert result.upload.status == "uploaded" and result.prices.source == "files"
    candidates = json.loads(Path(result.resolution.candidates_path).read_text())
    assert candidates["1 HK"] == ["1 HK"] and candidates[UNRESOLVABLE] == [UNRESOLVABLE]  # ids as they are
    submitted = pd.read_csv(result.submission.path)
    assert set(submitted["numerai_ticker"]) == set(tickers)  # the one id without bars is left out
    (upload,) = numerai.state.uploads
    assert upload["body"] == Path(result.submission.path).read_bytes()


def test_live_files_round_needs_the_files_path(monkeypatch):
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.round.signals import check_live_price_source

    with pytest.raises(BadInputError, match="files.path is not set"):
        check_live_price_source(load_settings(price_source="files"))
    with pytest.raises(BadInputError, match="through Yahoo or your own files"):
        check_live_price_source(load_settings(price_source="demo"))
