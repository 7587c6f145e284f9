"""Numerai Crypto's data: both layouts read by inspection (tasks/crypto/data.py), the id as a column
or as the index, the target found or the file refused naming its columns, calendar-day purges, and
the fake Numerai serving both file sets to the real CryptoAPI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_crypto import V2_FEATURES, crypto_v1_files, crypto_v2_files, crypto_v2_frames
from fakes.numerai_fixtures import fake_numerai, keys, make_client, sleeps  # noqa: F401 - fixtures

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store
from numerflow.tasks.crypto.data import crypto_target_columns, inspect_crypto_file
from numerflow.tasks.model.targets import numerai_target_end
from numerflow.tasks.numerai.data import fetch_training_data, numerai_training_frame, read_numerai_targets
from numerflow.tasks.numerai.universe import fetch_universe

SYMBOLS = [f"C{i:03d}" for i in range(120)]
START, END, LIVE = dt.date(2024, 1, 1), dt.date(2024, 6, 28), dt.date(2024, 7, 1)


def _write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


@pytest.fixture
def v1(tmp_path) -> Path:
    return _write(tmp_path / "train_targets.parquet", crypto_v1_files(SYMBOLS[:5], START, END)[0])


@pytest.fixture
def v2(tmp_path) -> Path:
    return _write(tmp_path / "train.parquet", crypto_v2_files(SYMBOLS[:5], START, END, LIVE)[0])


def test_both_layouts_are_read_by_inspection(v1, v2):
    new = inspect_crypto_file(v2)
    assert new.layout == "v2" and new.id_in_index and new.has_date
    assert new.features == V2_FEATURES and new.targets == ["target_binned_return_20", "target_binned_return_60"]
    old = inspect_crypto_file(v1)
    assert old.layout == "v1" and not old.id_in_index and old.features == [] and old.targets == ["target"]
    # The configured default ("target") is Numerai's scored one in either layout; a named one is kept.
    assert crypto_target_columns(new, ["target"]) == ["target_binned_return_20"]
    assert crypto_target_columns(old, ["target"]) == ["target"]
    assert crypto_target_columns(new, ["target_binned_return_60", "target"]) == [
        "target_binned_return_60", "target_binned_return_20"]
    with pytest.raises(BadInputError, match=r"no target 'target_chili_60'; its targets are "
                                            r"\['target_binned_return_20', 'target_binned_return_60'\]"):
        crypto_target_columns(new, ["target_chili_60"])


def test_a_file_with_no_target_is_refused_naming_the_columns_found(tmp_path):
    frame = pd.DataFrame({"symbol": ["BTC", "ETH"], "date": ["2024-01-01"] * 2, "feature_x": [0.5, 1.0],
                          "target_label": ["up", "down"]}).set_index("symbol")  # text: not a usable target
    path = _write(tmp_path / "train.parquet", b"")
    frame.to_parquet(path)
    with pytest.raises(BadInputError, match=r"invalid_numerai_data: .* has no usable target column .*"
                                            r"\['date', 'feature_x', 'target_label', 'symbol'\]"):
        crypto_target_columns(inspect_crypto_file(path), ["target"])
    pd.DataFrame({"ticker": ["BTC"], "date": ["2024-01-01"], "target": [0.5]}).to_parquet(path)
    with pytest.raises(BadInputError, match=r"no 'symbol' column or index; it has \['ticker', 'date', 'target'\]"):
        inspect_crypto_file(path)


def test_v2_rows_read_with_symbol_as_index_and_purged_on_calendar_days(v2):
    rows = read_numerai_targets([v2], "crypto", "target_binned_return_20", V2_FEATURES[:2])
    assert list(rows.columns) == ["ticker", "date", "target", *V2_FEATURES[:2]]
    assert set(rows["ticker"]) == set(SYMBOLS[:5]) and rows["date"].dt.day_of_week.max() == 4  # weekday dates
    frame = numerai_training_frame(pd.DataFrame(), [v2], "crypto", "target_binned_return_20", "numerai")
    span = (frame["target_end_date"] - frame["date"]).dt.days
    # 20D2L in calendar days: 22 days of window, plus the 25% margin → 28.
    assert (span == 28).all()
    sixty = numerai_training_frame(pd.DataFrame(), [v2], "crypto", "target_binned_return_60", "numerai")
    assert ((sixty["target_end_date"] - sixty["date"]).dt.days == 78).all()
    assert sixty["target"].isna().any()  # unresolved 60-day targets stay NaN (the training drops them)


def test_crypto_purge_counts_calendar_days_signals_trading_days():
    friday = np.array(["2024-01-05"], dtype="datetime64[ns]")
    crypto = numerai_target_end(friday, "target_binned_return_20", calendar_days=True)
    signals = numerai_target_end(friday, "target_raw_return_20")
    assert pd.Timestamp(crypto[0]) == pd.Timestamp("2024-02-02")  # 28 calendar days
    assert pd.Timestamp(signals[0]) == pd.Timestamp("2024-02-14")  # 28 weekdays
    # Crypto's v1 ``target``: Numerai's pages say 30 days and 20D2L; the longer one is purged.
    v1 = numerai_target_end(friday, "target", calendar_days=True)
    assert pd.Timestamp(v1[0]) - pd.Timestamp("2024-01-05") == pd.Timedelta(days=40)


def test_fake_numerai_serves_both_layouts_to_the_real_crypto_api(fake_numerai, make_client, tmp_path):
    train_v1, universe_v1 = crypto_v1_files(SYMBOLS, START, END)
    train_v2, live_v2 = crypto_v2_files(SYMBOLS, START, END, LIVE)
    fake_numerai.add_dataset("crypto", "crypto/v1.0/train_targets.parquet", train_v1)
    fake_numerai.add_dataset("crypto", "crypto/v1.0/live_universe.parquet", universe_v1)
    client, store = make_client("crypto", with_keys=False), Store(tmp_path)
    # Only v1's training file listed: the newest version that has one.
    files = fetch_training_data(client, store, 501)
    assert files.version == "crypto/v1.0" and files.train_path.name == "train_targets.parquet"
    assert inspect_crypto_file(files.train_path).layout == "v1"

    fake_numerai.add_dataset("crypto", "crypto/v2.0/train.parquet", train_v2)
    fake_numerai.add_dataset("crypto", "crypto/v2.0/live.parquet", live_v2)
    files = fetch_training_data(client, store, 501)
    assert files.version == "crypto/v2.0" and files.train_path.name == "train.parquet"
    assert inspect_crypto_file(files.train_path).layout == "v2"
    # The universe from v2's live.parquet (its features are the numerai feature set's live rows), ids from the index.
    snapshot = fetch_universe(client, store, 501)
    assert snapshot.dataset == "crypto/v2.0/live.parquet" and snapshot.tickers == len(SYMBOLS)
    assert pd.read_parquet(snapshot.snapshot_path)["symbol"].tolist() == SYMBOLS


def test_v2_frames_have_numerai_layout():
    train, live = crypto_v2_frames(SYMBOLS[:3], START, END, LIVE)
    assert train.index.name == live.index.name == "symbol"
    assert set(np.unique(train[V2_FEATURES].to_numpy())) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert list(live.columns) == ["date", *V2_FEATURES]


def test_a_damaged_copy_is_quarantined_and_downloaded_again(fake_numerai, make_client, tmp_path):
    train_v2, live_v2 = crypto_v2_files(SYMBOLS, START, END, LIVE)
    fake_numerai.add_dataset("crypto", "crypto/v2.0/train.parquet", train_v2)
    client, store = make_client("crypto", with_keys=False), Store(tmp_path)
    first = fetch_training_data(client, store, 501).train_path
    first.write_bytes(b"PAR1 cut off by a killed download")
    again = fetch_training_data(client, store, 501).train_path
    assert again == first and again.read_bytes() == train_v2  # once per version, unless damaged
    (kept,) = (first.parent / "_quarantine").glob("train.parquet.*[0-9]Z")
    assert kept.read_bytes().startswith(b"PAR1 cut off")
    downloads = len(fake_numerai.calls("dataset"))
    fetch_training_data(client, store, 501)
    assert len(fake_numerai.calls("dataset")) == downloads  # intact: not downloaded again
