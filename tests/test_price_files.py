"""Bring-your-own CSV/Parquet prices: schema, validation errors, and ingest through the one path."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from fakes.ingest_steps import ingest_like_the_flow

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_parquet
from numerflow.tasks.prices.ingest import IngestOptions
from numerflow.tasks.prices.sources.files import FilePriceSource, load_price_files


def write_csv(path, text):
    path.write_text(text)
    return path


def test_minimal_csv_defaults_and_gbp_normalised_by_ingest(tmp_path):
    write_csv(
        tmp_path / "p.csv",
        "Ticker,Date,Close,Currency\nVOD GB,2024-03-27,7000,GBp\nVOD GB,2024-03-28,7100,GBp\nAAPL US,2024-03-28,190,USD\n",
    )
    source = FilePriceSource(tmp_path / "p.csv")
    frame = source.fetch(["VOD GB"])
    assert frame["adj_close"].tolist() == [7000.0, 7100.0] and frame["open"].tolist() == [7000.0, 7100.0]
    store = Store(tmp_path / "data")
    result = ingest_like_the_flow(source, store, ["VOD GB", "AAPL US", "MISSING US"],
                                  options=IngestOptions(batch_size=10), as_of=date(2024, 3, 28))
    bars = read_parquet(store.prices_dir("files"))
    vod = bars[bars["ticker"] == "VOD GB"]
    assert vod["close"].tolist() == [70.0, 71.0] and set(vod["currency"]) == {"GBP"}
    ledger = read_parquet(result.ledger_path).set_index("ticker")
    assert ledger.loc["MISSING US", "status"] == "no_data"
    assert ledger.loc["AAPL US", "status"] == "ok"


def test_directory_of_parquet_and_csv(tmp_path):
    pd.DataFrame({"ticker": ["A US"], "date": [pd.Timestamp("2024-01-02")], "close": [10.0], "volume": [5]}).to_parquet(tmp_path / "a.parquet")
    write_csv(tmp_path / "b.csv", "ticker,date,close\nB US,2024-01-02,20\n")
    data = load_price_files(tmp_path).bars
    assert data["ticker"].tolist() == ["A US", "B US"]
    assert np.isnan(data["volume"].iloc[1]) and data["volume"].iloc[0] == 5.0


@pytest.mark.parametrize(
    "text,reason",
    [
        ("ticker,date,close\nA,2024-01-02,1\nA,not-a-date,1\n", "unparseable_date"),
        ("ticker,date,close\nA,2024-01-02,1\nA,2024-01-03,abc\n", "not_a_number"),
        ("ticker,date,close\nA,2024-01-02,1\n,2024-01-03,1\n", "no_ticker"),
    ],
)
def test_a_bad_row_costs_its_bar_with_a_reason_not_the_file(tmp_path, text, reason):
    write_csv(tmp_path / "bad.csv", text)
    checked = load_price_files(tmp_path / "bad.csv")
    assert checked.bars["ticker"].tolist() == ["A US"]
    assert checked.problems[reason]["count"] == 1
    assert checked.problems[reason]["examples"][0]["file"].endswith("bad.csv")
    assert checked.problems[reason]["examples"][0]["row"] == 2


def test_missing_path_and_wrong_type(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        load_price_files(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(BadInputError, match="unsupported file type"):
        load_price_files(tmp_path / "x.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="invalid_price_files: no .csv or .parquet files under"):
        load_price_files(tmp_path / "empty")
    write_csv(tmp_path / "cols.csv", "ticker,close\nA,1\n")
    with pytest.raises(BadInputError, match="invalid_price_files: none of the 1 price files.*cols.csv: no date column"):
        load_price_files(tmp_path / "cols.csv")
