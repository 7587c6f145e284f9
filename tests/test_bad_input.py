"""Bad input a user (or a CRLF env file) can give: each case ends in a clear, tagged error that
names the problem, shows no secret, and leaves nothing written outside the data dir."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from fakes.ingest_steps import ingest_like_the_flow

from numerflow.flows.cli import main
from numerflow.tasks.core.config import NumeraiSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, read_parquet
from numerflow.tasks.numerai.client import resolve_keys

PUBLIC = "PUBLICID0123456789ABCDEF"
SECRET = "SECRETKEY0123456789ABCDEFGHIJKLMN"


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize("public, secret", [(PUBLIC + "\r", SECRET + "\r\n"), ("  " + PUBLIC, SECRET + "\n")])
def test_keys_from_a_crlf_env_file_are_stripped(public, secret):
    keys = resolve_keys(NumeraiSettings(), env={"NUMERAI_PUBLIC_ID": public, "NUMERAI_SECRET_KEY": secret})
    assert keys is not None and keys.secrets() == (PUBLIC, SECRET)


@pytest.mark.parametrize("secret", [SECRET[:10] + "\n" + SECRET[10:], SECRET[:10] + "\r" + SECRET[10:],
                                    SECRET[:10] + "é" + SECRET[10:], SECRET[:10] + " " + SECRET[10:],
                                    SECRET[:10] + "\x00" + SECRET[10:]])
@pytest.mark.parametrize("where", ["env", "settings", "block"])
def test_keys_with_control_or_non_ascii_characters_are_refused_without_showing_them(secret, where):
    env: dict[str, str] = {}
    settings = NumeraiSettings()
    loader = None
    if where == "env":
        env = {"NUMERAI_PUBLIC_ID": PUBLIC, "NUMERAI_SECRET_KEY": secret}
    elif where == "settings":
        settings = NumeraiSettings(public_id=PUBLIC, secret_key=secret)
    else:
        settings = NumeraiSettings(secret_block="keys")

        def loader(name):
            return PUBLIC, secret
    with pytest.raises(BadInputError, match="invalid_keys: the Numerai secret key") as caught:
        resolve_keys(settings, env=env, **({"secret_loader": loader} if loader else {}))
    message = str(caught.value)
    assert "numerai_keys" in message
    for part in (SECRET[:10], SECRET[10:], secret):
        assert part not in message


# ------------------------------------------------------------------ ids that become paths


@pytest.mark.parametrize("run_id", ["../../../../x", "a/b", "..", ".hidden", "a..b", "x" * 200, "run id"])
def test_ingest_run_id_that_would_leave_the_data_dir_is_refused(run_id, tmp_path, capsys):
    code = main(["ingest", "--run-id", run_id, "--data-dir", str(tmp_path / "data"), "--source", "demo"])
    assert code == 2
    err = capsys.readouterr().err
    assert "invalid_id" in err and "ingest run id" in err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written, inside or outside


# ------------------------------------------------------------------ submissions, in a dry run (no keys)


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    for name in ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _csv(path, text: str):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "no-such.csv", "does not exist"),
        (lambda d: _csv(d / "empty.csv", ""), "is empty"),
        (lambda d: (d / "folder.csv").mkdir() or d / "folder.csv", "is a directory"),
        (lambda d: (d / "bin.csv").write_bytes(b"\x00\xff\x10\x80" * 50) or d / "bin.csv", "submission"),
        (lambda d: _csv(d / "cols.csv", "ticker,prediction\nAAPL US,0.5\n"), "invalid_submission_headers"),
        (lambda d: _csv(d / "abc.csv", "numerai_ticker,signal\nAAPL US,abc\nMSFT US,0.2\n"),
         "not numbers, e.g. ['abc']"),
        (lambda d: _csv(d / "zero.csv", "numerai_ticker,signal\nAAPL US,0.0\nMSFT US,0.5\n"),
         "got min 0.0, max 0.5"),
        (lambda d: _csv(d / "dup.csv", "numerai_ticker,signal\nAAPL US,0.1\nAAPL US,0.5\n"), "duplicate tickers"),
    ],
)
def test_a_dry_run_checks_the_file_like_a_real_upload(no_keys, capsys, make, message):
    path = make(no_keys)
    code = main(["submit", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "np.float64" not in err
    assert not (no_keys / "data" / "submissions").exists()  # no "would upload" record for a bad file


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[training]\nnum_boost_rounds = 5\n", "training.num_boost_rounds: unknown option (did you mean num_boost_round?)"),
        ("[demo]\ntickerz = 7\n", "demo.tickerz: unknown option (did you mean tickers?)"),
        ("[training\nnum_boost_round = 5\n", "is not valid TOML"),
        ("data_dir = \n", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_named_and_explained(toml, message, tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings

    config = tmp_path / "numerflow.toml"
    config.write_text(toml)
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    with pytest.raises(BadInputError, match="invalid_config") as caught:
        load_settings()
    assert message in str(caught.value)
    if "TOML" in message:
        assert str(config) in str(caught.value) and "line" in str(caught.value)


def test_a_missing_config_file_is_an_error_not_the_defaults(tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings

    monkeypatch.setenv("NUMERFLOW_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(BadInputError, match="NUMERFLOW_CONFIG names .*nope.toml, which is not a file"):
        load_settings()


def test_a_json_setting_that_is_not_json_is_a_clear_error(monkeypatch):
    from numerflow.tasks.core.config import load_settings

    monkeypatch.setenv("NUMERFLOW_TRAINING__PARAMS", "not json")
    with pytest.raises(BadInputError, match="invalid_config: .*written as JSON"):
        load_settings()


def test_the_cli_reports_a_bad_config_before_anything_runs(tmp_path, monkeypatch, capsys):
    config = tmp_path / "numerflow.toml"
    config.write_text("[demo]\ntickerz = 7\n")
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    assert main(["run", "--demo", "--data-dir", str(tmp_path / "data")]) == 2
    assert "did you mean tickers?" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------ demo options, refused at parse time


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--years", "inf"], "--years: must be a finite number > 0, got inf"),
        (["--years", "nan"], "--years: must be a finite number > 0, got nan"),
        (["--signal", "inf"], "--signal: must be a finite number ≥ 0, got inf"),
        (["--years", "1000000"], "demo.years: Input should be less than or equal to 50"),
        (["--signal", "1e9"], "demo.signal: Input should be less than or equal to 10"),
        (["--tickers", "10000000"], "demo.tickers: Input should be less than or equal to 20000"),
        (["--tickers", "99"], "--tickers 99 is below Numerai's minimum of 100"),
        (["--tickers", "20000", "--years", "50"], "is 261.0 M daily bars; its round needs about 156.6 GB"),
    ],
)
def test_demo_options_out_of_range_are_refused_before_anything_runs(argv, message, tmp_path, capsys):
    try:
        code = main(["run", "--demo", *argv, "--data-dir", str(tmp_path / "data")])
    except SystemExit as exit_info:  # argparse's own refusals
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------ the data dir itself


def _data_dir_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    return tmp_path / "afile" / "data"


def _data_dir_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("x")
    return tmp_path / "data"


@pytest.mark.parametrize(
    "make, message",
    [
        (_data_dir_that_is_a_file, "is a file, not a folder"),
        (_data_dir_under_a_file, "which is a file"),
        (lambda tmp: "/proc/numerflow-data", "is under /proc"),
        (lambda tmp: "/sys/kernel/numerflow", "is under /sys"),
        (lambda tmp: "/dev/numerflow", "is under /dev"),
    ],
)
def test_a_data_dir_that_cannot_hold_the_store_is_refused_before_anything_runs(make, message, tmp_path, capsys):
    data_dir = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(["run", "--demo", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert "invalid_data_dir" in err and message in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # nothing created anywhere


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    from numerflow.tasks.core.store import write_json

    path = write_json(tmp_path / "catalog.json", {"before": True})
    real_write = Path.write_bytes

    def full(self, data):
        real_write(self, data[: len(data) // 2])  # the disk fills half way through
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(BadInputError, match="disk_full: no space left on the device writing .*catalog.json") as caught:
        write_json(path, {"after": True})
    assert "free some space" in str(caught.value)
    monkeypatch.setattr(Path, "write_bytes", real_write)
    assert path.read_text() == '{\n  "before": true\n}\n'  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]  # no temp file left


def test_stale_temp_files_of_killed_runs_are_removed_and_fresh_ones_kept(tmp_path):
    import os
    import time

    from numerflow.tasks.core.store import remove_stale_temp_files

    old = tmp_path / "prices" / "demo" / ".part-00001.parquet.k9x.tmp"
    young = tmp_path / "features" / ".abc.parquet.zz1.tmp"
    kept = tmp_path / "prices" / "demo" / "part-00001.parquet"
    for path in (old, young, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(kept, (two_hours_ago, two_hours_ago))
    assert remove_stale_temp_files(tmp_path) == [old]
    assert not old.exists() and young.exists() and kept.exists()  # a write in progress elsewhere is left alone


# ------------------------------------------------------------------ a damaged store heals (or says what to restore)

END = date(2024, 3, 29)


def _demo_ingest(store, market, options=None):
    from numerflow.tasks.prices.ingest import IngestOptions

    return ingest_like_the_flow(market, store, market.all_tickers(),
                                options=options or IngestOptions(batch_size=4), as_of=END)


@pytest.fixture
def market():
    from numerflow.tasks.prices.sources.demo import DemoMarket

    return DemoMarket(tickers=10, years=0.3, seed=3, end=END)


def _sorted(frame):
    return frame.sort_values(["ticker", "date"]).reset_index(drop=True)


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2], lambda b: b"\x00garbage" * 10, lambda b: b""])
def test_a_damaged_price_part_is_quarantined_and_its_tickers_re_pulled(tmp_path, market, damage):
    store = Store(tmp_path / "data")
    first = _demo_ingest(store, market)
    prices_dir = store.prices_dir(market.name)
    whole = _sorted(read_parquet(prices_dir))
    part = prices_dir / "part-00001.parquet"
    part.write_bytes(damage(part.read_bytes()))

    result = _demo_ingest(store, market)
    assert result.summary["ok"] == first.summary["ok"] and result.summary["failed"] == 0
    quarantined = list((prices_dir / "_quarantine").glob("part-00001.parquet.*"))
    assert len([q for q in quarantined if not q.name.endswith(".why.txt")]) == 1
    why = next(q for q in quarantined if q.name.endswith(".why.txt")).read_text()
    assert "cannot be read as Parquet" in why and "re-pulled" in why
    pd.testing.assert_frame_equal(_sorted(read_parquet(prices_dir)), whole)  # healed, nothing lost or doubled


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2, 3]", b"\xff\xfe\x00binary"])
def test_a_damaged_ingest_catalog_is_rebuilt_from_the_parts(tmp_path, market, garbage):
    from numerflow.tasks.prices.ingest import ingest_dir

    store = Store(tmp_path / "data")
    _demo_ingest(store, market)
    catalog_path = ingest_dir(store, market.name) / "catalog.json"
    parts_before = read_json(catalog_path)["parts"]
    whole = _sorted(read_parquet(store.prices_dir(market.name)))
    catalog_path.write_bytes(garbage)

    _demo_ingest(store, market)
    assert read_json(catalog_path)["parts"] == parts_before  # each ticker stays in its part
    assert list((catalog_path.parent / "_quarantine").glob("catalog.json.*.why.txt"))
    pd.testing.assert_frame_equal(_sorted(read_parquet(store.prices_dir(market.name))), whole)


@pytest.mark.parametrize("garbage", [b'{"version": 1, "submissions": {"signals/1/m": {', b"\x00\x01\x02"])
def test_a_damaged_submission_ledger_is_named_and_never_reset(tmp_path, garbage):
    from numerflow.tasks.numerai.ledger import SubmissionLedger

    ledger = SubmissionLedger(tmp_path / "submissions" / "ledger.json")
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_bytes(garbage)
    with pytest.raises(BadInputError, match="corrupt_file: .*ledger.json is not valid JSON"):
        ledger.get("signals", 1, "m")
    with pytest.raises(BadInputError, match="corrupt_file"):
        ledger.record({"tournament": "signals", "round": 1, "model_name": "m", "submission_id": "s"})
    assert ledger.path.read_bytes() == garbage  # never silently replaced by an empty ledger


def _trained_model(tmp_path):
    import lightgbm as lgb
    import numpy as np

    from numerflow.tasks.model.training import save_model

    store = Store(tmp_path / "data")
    rng = np.random.default_rng(0)
    booster = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(rng.random((200, 3)), label=rng.random(200)),
                        num_boost_round=5)
    meta = {"model_id": "20240101T000000000000Z", "created_at": "2099-01-01T00:00:00+00:00",
            "features": ["a", "b", "c"], "lineage": None, "validation_metrics": {"corr": 0.0}}
    return store, save_model(store, meta["model_id"], booster, meta)


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 3],  # truncated mid-tree
    lambda text: text.replace("leaf_value=", "leaf_value=9", 1),  # edited: parses, but is not the trained model
    lambda text: "",
])
def test_a_damaged_model_file_is_detected_quarantined_and_retrained(tmp_path, damage):
    from numerflow.tasks.model.training import MODEL_FILE, latest_model, load_model, needs_training

    store, model_dir = _trained_model(tmp_path)
    assert needs_training(store, 7, ["a", "b", "c"], now=None)[0] is False  # healthy: reused
    model_file = model_dir / MODEL_FILE
    model_file.write_text(damage(model_file.read_text()))
    with pytest.raises(BadInputError, match="corrupt_file: .*model.txt is damaged.*--retrain"):
        load_model(model_dir)
    must, reason = needs_training(store, 7, ["a", "b", "c"])
    assert must and "is damaged" in reason and "retraining" in reason
    assert latest_model(store) is None  # set aside, so the round trains a new one
    assert (store.models_dir() / "_quarantine").is_dir()


# ------------------------------------------------------------------ one market per store


def test_another_demo_seed_in_the_same_data_dir_never_mixes_its_bars(tmp_path, market):
    from numerflow.tasks.prices.sources.demo import DemoMarket

    store = Store(tmp_path / "data")
    other = DemoMarket(tickers=10, years=0.3, seed=4, end=END)
    _demo_ingest(store, market)
    _demo_ingest(store, other)
    assert other.name != market.name
    fresh = Store(tmp_path / "fresh")
    _demo_ingest(fresh, other)
    pd.testing.assert_frame_equal(_sorted(read_parquet(store.prices_dir(other.name))),
                                  _sorted(read_parquet(fresh.prices_dir(other.name))))
    assert read_json(store.prices_dir(other.name) / "_source.json")["seed"] == 4


def test_the_files_store_refuses_bars_from_another_folder(tmp_path):
    from numerflow.tasks.prices.sources.files import FilePriceSource

    for folder in ("vendor_a", "vendor_b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "p.csv").write_text("ticker,date,close\nAAPL US,2024-03-01,10\nAAPL US,2024-03-04,11\n")
    store = Store(tmp_path / "data")
    ingest_like_the_flow(FilePriceSource(tmp_path / "vendor_a"), store, ["AAPL US"], as_of=END)
    with pytest.raises(BadInputError, match="store_mismatch: .*vendor_a.*vendor_b.*would be mixed"):
        ingest_like_the_flow(FilePriceSource(tmp_path / "vendor_b"), store, ["AAPL US"], as_of=END)


# ------------------------------------------------------------------ bring-your-own price files


def test_a_future_dated_bar_is_refused_naming_the_file_and_row(tmp_path):
    from numerflow.tasks.prices.sources.files import load_price_files

    path = tmp_path / "bars.csv"
    path.write_text("ticker,date,close\nAAPL US,2024-03-14,10\nAAPL US,2024-03-15,10\nAAPL US,2024-03-18,11\n")
    with pytest.raises(BadInputError, match=r"1 bars are dated after today.*bars.csv row 3: AAPL US 2024-03-18"):
        load_price_files(path, today=pd.Timestamp("2024-03-15 12:00"))
    assert len(load_price_files(path, today=pd.Timestamp("2024-03-18 12:00"))) == 3


def test_today_is_the_exchange_s_when_the_files_say_where_it_trades(tmp_path):
    from numerflow.tasks.prices.sources.files import load_price_files

    # 15:30 UTC on March 15th is already March 16th in Tokyo, still March 15th in New York.
    now = pd.Timestamp("2024-03-15 15:30")
    path = tmp_path / "bars.csv"
    path.write_text("ticker,date,close,timezone\n7203 JP,2024-03-16,10,Asia/Tokyo\n")
    assert len(load_price_files(path, today=now)) == 1
    path.write_text("ticker,date,close,timezone\nAAPL US,2024-03-16,10,America/New_York\n")
    with pytest.raises(BadInputError, match="row 1: AAPL US 2024-03-16"):
        load_price_files(path, today=now)
    path.write_text("ticker,date,close,timezone\nAAPL US,2024-03-15,10,Mars/Olympus\n")
    with pytest.raises(BadInputError, match="not an IANA time zone"):
        load_price_files(path, today=now)


@pytest.mark.parametrize("payload", [b"\x00\xff\x10\x80" * 64, b"\xff\xfenumerai_ticker,yahoo_symbol\n"])
def test_a_binary_overrides_file_is_a_clear_error(tmp_path, payload):
    from numerflow.tasks.prices.tickers import load_overrides

    path = tmp_path / "overrides.csv"
    path.write_bytes(payload)
    with pytest.raises(BadInputError, match="invalid_overrides: ticker overrides file .*overrides.csv is not a UTF-8 text CSV"):
        load_overrides(path)


# ------------------------------------------------------------------ submissions: size and universe


def _universe(data_dir, tickers):
    from numerflow.tasks.numerai.universe import write_universe

    write_universe(Store(data_dir), "signals", "round-1001", pd.DataFrame({"numerai_ticker": tickers}))


def _signals_csv(path, tickers):
    import numpy as np

    values = (np.arange(len(tickers)) + 0.5) / len(tickers)
    pd.DataFrame({"numerai_ticker": tickers, "signal": values}).to_csv(path, index=False)
    return path


UNIVERSE = [f"T{i:03d} US" for i in range(150)]


def test_tickers_outside_the_universe_are_dropped_and_counted(no_keys, capsys):
    _universe(no_keys / "data", UNIVERSE)
    path = _signals_csv(no_keys / "mine.csv", UNIVERSE[:140] + [f"X{i} US" for i in range(20)])
    assert main(["submit", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["validation"]["dropped_not_in_universe"] == 20 and out["validation"]["rows"] == 140
    sent = pd.read_csv(out["path"])
    assert out["path"] != str(path) and sorted(sent["numerai_ticker"]) == sorted(UNIVERSE[:140])
    assert read_json(out["record"])["file"] == out["path"]  # the record names the file that would be sent


def test_a_file_mostly_outside_the_universe_is_refused(no_keys, capsys):
    _universe(no_keys / "data", UNIVERSE)
    path = _signals_csv(no_keys / "wrong.csv", UNIVERSE[:100] + [f"X{i} US" for i in range(400)])
    assert main(["submit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not_in_universe: 400 of 500 tickers" in err and "(80%)" in err and "max_off_universe_share" in err
    assert not (no_keys / "data" / "submissions").exists()


def test_a_submission_file_over_the_size_limit_is_refused_before_it_is_read(no_keys, monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_SUBMISSION__MAX_FILE_MB", "0.001")
    path = _signals_csv(no_keys / "big.csv", UNIVERSE)
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("a too large file must not be read"))
    assert main(["submit", str(path)]) == 2
    err = capsys.readouterr().err
    assert "submission_too_large" in err and "over the 0.001 MB limit" in err


# ------------------------------------------------------------------ LightGBM parameters, judged before the ingest


@pytest.mark.parametrize("params, message", [
    ('{"objective": "regresion"}', "Unknown objective type name: regresion"),
    ('{"objective": "regression", "num_leaves": -3}', "num_leaves"),
    ('{"objective": "regression", "bagging_fraction": 2}', "bagging_fraction"),
])
def test_lightgbm_parameters_it_refuses_fail_before_the_ingest(params, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_TRAINING__PARAMS", params)
    assert main(["run", "--demo", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "invalid_config: training.params are refused by LightGBM" in err and message in err
    assert not (tmp_path / "data" / "prices").exists()  # nothing ingested


# ------------------------------------------------------------------ housekeeping: unchanged prices stay unchanged


def test_an_unchanged_re_ingest_writes_nothing_and_keeps_the_features_snapshot(tmp_path, market):
    import os

    from numerflow.tasks.core.config import TargetSettings
    from numerflow.tasks.model.dataset import price_snapshot_id

    store = Store(tmp_path / "data")
    first = _demo_ingest(store, market)
    prices_dir = store.prices_dir(market.name)
    parts = sorted(prices_dir.glob("part-*.parquet"))
    stamps = {p: p.stat().st_mtime_ns for p in parts}
    snapshot = price_snapshot_id(prices_dir, TargetSettings())
    assert first.summary["rows"] == len(read_parquet(prices_dir))

    again = _demo_ingest(store, market)  # the overlap window is re-fetched, and it is identical
    assert again.summary["rows"] == 0  # nothing new or changed: no "bars written"
    assert {p: p.stat().st_mtime_ns for p in parts} == stamps  # no part rewritten
    assert price_snapshot_id(prices_dir, TargetSettings()) == snapshot

    for part in parts:  # a copy or a restore changes mtimes, not content: still the same snapshot
        os.utime(part, ns=(1, 1))
    assert price_snapshot_id(prices_dir, TargetSettings()) == snapshot


def test_a_demo_market_too_big_for_the_memory_left_is_refused_before_it_is_generated():
    from numerflow.tasks.prices.sources.demo import check_demo_fits

    check_demo_fits(600, 6, available=2 * 10**9)  # the default (~0.9 M bars, ~0.5 GB) fits in 2 GB
    with pytest.raises(BadInputError, match=r"5000 tickers x 20 years is 26.1 M daily bars; .* about 13.1 GB .* 8.0 GB"):
        check_demo_fits(5000, 20, available=8 * 10**9)
