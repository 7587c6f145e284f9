"""Bad input a user (or a CRLF env file) can give: each case ends in a clear, tagged error that
names the problem, shows no secret, and leaves nothing written outside the data dir."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from fakes.ingest_steps import ingest_like_the_flow
from test_live_round import live_env, numerai, yahoo  # noqa: F401 - fixtures of a live round

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


@pytest.mark.parametrize("path", [None, "empty", "missing"])
def test_ingest_of_files_without_price_files_is_one_line_before_the_flow_starts(path, tmp_path, monkeypatch, capfd):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "files")
    if path is not None:
        monkeypatch.setenv("NUMERFLOW_FILES__PATH", str(tmp_path / path))
    code = main(["ingest", "--data-dir", str(tmp_path / "data")])
    out, err = capfd.readouterr()
    assert code == 2
    assert ("files.path is not set" if path is None else "invalid_price_files") in err
    assert "Traceback" not in out + err and "flow run" not in (out + err).lower()  # no flow was started


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
        (["--tickers", "20000", "--years", "50"], "is 261.0 M daily bars; its round needs about 52.2 GB"),
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


def test_a_future_dated_bar_is_excluded_naming_the_file_and_row(tmp_path):
    from numerflow.tasks.prices.sources.files import load_price_files

    path = tmp_path / "bars.csv"
    path.write_text("ticker,date,close\nAAPL US,2024-03-14,10\nAAPL US,2024-03-15,10\nAAPL US,2024-03-18,11\n")
    checked = load_price_files(path, today=pd.Timestamp("2024-03-15 12:00"))
    (example,) = checked.problems["future_date"]["examples"]
    assert example["file"].endswith("bars.csv") and (example["row"], example["ticker"], example["date"]) == (
        3, "AAPL US", "2024-03-18")
    assert len(checked.bars) == 2 and checked.tickers.loc["AAPL US", "excluded_reasons"] == {"future_date": 1}
    assert len(load_price_files(path, today=pd.Timestamp("2024-03-18 12:00")).bars) == 3


def test_today_is_the_exchange_s_when_the_files_say_where_it_trades(tmp_path):
    from numerflow.tasks.prices.sources.files import load_price_files

    # 15:30 UTC on Thursday March 14th is already Friday the 15th in Tokyo, still the 14th in New York.
    now = pd.Timestamp("2024-03-14 15:30")
    path = tmp_path / "bars.csv"
    path.write_text("ticker,date,close,timezone\n7203 JP,2024-03-15,10,Asia/Tokyo\n")
    assert len(load_price_files(path, today=now).bars) == 1
    path.write_text("ticker,date,close,timezone\nAAPL US,2024-03-14,10,America/New_York\n"
                    "AAPL US,2024-03-15,10,America/New_York\n")
    checked = load_price_files(path, today=now)
    assert len(checked.bars) == 1 and checked.problems["future_date"]["examples"][0]["row"] == 2
    path.write_text("ticker,date,close,timezone\nAAPL US,2024-03-14,10,America/New_York\n"
                    "AAPL US,2024-03-13,10,Mars/Olympus\n")
    assert load_price_files(path, today=now).problems["unknown_timezone"]["count"] == 1


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

    check_demo_fits(600, 6, available=2 * 10**9)  # the default (~0.9 M bars, ~0.3 GB) fits in 2 GB
    check_demo_fits(5000, 20, available=6 * 10**9)  # Numerai's size (measured 4.65 GB) fits in 6 GB
    with pytest.raises(BadInputError, match=r"5000 tickers x 20 years is 26.1 M daily bars; .* about 5.2 GB .* 5.0 GB"):
        check_demo_fits(5000, 20, available=5 * 10**9)


# ================================================================== second sweep (issue 24)


# ================================================================== WRONG RESULTS: each a refusal or a correct result


# ------------------------------------------------------------------ dates in feature sources and headlines: never guessed


def _source_csv(tmp_path, stamps, **options):
    from numerflow.tasks.core.config import FeatureSourceSettings, FeaturesSettings

    path = tmp_path / "mine.csv"
    path.write_text("numerai_ticker,timestamp,value\n" + "".join(f"AAA US,{s},{i}\n" for i, s in enumerate(stamps)))
    return path, FeaturesSettings(sources=[FeatureSourceSettings(name="mine", path=path, **options)])


def _load(tmp_path, settings):
    from numerflow.tasks.model.plugins import load_sources

    return load_sources(settings, pd.DataFrame({"date": pd.bdate_range("2025-01-01", periods=5)}), tmp_path, "demo")


def _available(tmp_path, stamps, **options):
    _, settings = _source_csv(tmp_path, stamps, **options)
    return [str(t.date()) for t in _load(tmp_path, settings)[0].frame["available_at"]]


@pytest.mark.parametrize("stamps, options, message", [
    (["04/07/2025", "05/07/2025"], {}, "line 2, column 'timestamp': '04/07/2025' is ambiguous"),
    (["13/07/2025", "14/07/2025"], {}, "its rows read day first (e.g. '13/07/2025')"),
    (["07/13/2025", "07/14/2025"], {}, "its rows read month first (e.g. '07/13/2025')"),
    (["04/07/2025", "13/07/2025", "07/14/2025"], {}, "mixes date orders: line 3 has '13/07/2025' (day first) and "
                                                     "line 4 has '07/14/2025' (month first)"),
    (["04.07.2025 16:00", "2025-07-05"], {}, "'04.07.2025 16:00' is ambiguous"),
    (["04/07/25"], {"dayfirst": True}, "two-digit year"),
    (["04/07/2025", "07/14/2025"], {"dayfirst": True}, "line 3, column 'timestamp': '07/14/2025' cannot be day first"),
    (["13/07/2025"], {"dayfirst": False}, "'13/07/2025' cannot be month first"),
    (["2025-07-04"], {"timestamp_format": "%d/%m/%Y"}, "'2025-07-04' is not a date or date-time (1 such rows); "
                                                      "match timestamp_format '%d/%m/%Y'"),
])
def test_an_ambiguous_or_contradicted_date_column_is_refused_naming_file_row_and_fix(tmp_path, stamps, options,
                                                                                      message):
    path, settings = _source_csv(tmp_path, stamps, **options)
    with pytest.raises(BadInputError) as refused:
        _load(tmp_path, settings)
    text = str(refused.value)
    assert str(path) in text and message in text, text
    if "ambiguous" in message:
        assert "set dayfirst = true (or false) or timestamp_format" in text and "ISO 8601" in text  # the fix


@pytest.mark.parametrize("stamps, options, expected", [
    (["2025-07-04", "2025-07-13T16:30:00-04:00"], {}, ["2025-07-04", "2025-07-13"]),  # ISO: as written
    (["4 Jul 2025", "13 July 2025 16:00"], {}, ["2025-07-04", "2025-07-13"]),  # the month named: unambiguous
    (["04/07/2025", "13/07/2025 09:30"], {"dayfirst": True}, ["2025-07-04", "2025-07-13"]),
    (["04/07/2025", "07/13/2025"], {"dayfirst": False}, ["2025-04-07", "2025-07-13"]),
    (["4.7.2025", "2025-07-05"], {"dayfirst": True}, ["2025-07-04", "2025-07-05"]),
    (["04/07/2025 16:00"], {"timestamp_format": "%d/%m/%Y %H:%M"}, ["2025-07-04"]),
    (["07/04/2025"], {"timestamp_format": "%m/%d/%Y"}, ["2025-07-04"]),
])
def test_iso_month_named_and_explicitly_ordered_dates_are_read_as_the_user_says(tmp_path, stamps, options, expected):
    assert _available(tmp_path, stamps, **options) == expected


@pytest.mark.parametrize("when, message", [
    ("04/07/2025 10:30", "'04/07/2025 10:30' is ambiguous"),
    ("13/07/2025", "its rows read day first"),
])
def test_headlines_with_numeric_day_month_dates_are_refused_not_guessed(tmp_path, when, message):
    from numerflow.tasks.features.news_sentiment import read_headlines

    path = tmp_path / "news.json"
    path.write_text(json.dumps([{"title": "Shares soar", "date": when, "tickers": ["AAPL"]}]))
    with pytest.raises(BadInputError, match="ambiguous_dates") as refused:
        read_headlines(path)
    assert message in str(refused.value) and "ISO 8601" in str(refused.value)
    assert "[[features.sources]]" not in str(refused.value)


def test_headlines_dated_as_the_news_api_does_or_in_iso_are_read(tmp_path):
    from numerflow.tasks.features.news_sentiment import read_headlines

    path = tmp_path / "news.json"
    path.write_text(json.dumps([{"title": "Shares soar", "date": "Fri, 04 Jul 2025 10:30:00 -0400", "tickers": ["AAPL"]},
                                {"title": "Shares sink", "date": "2025-07-04T14:31:00Z", "tickers": ["MSFT"]}]))
    dates = read_headlines(path)["date"].dt.strftime("%Y-%m-%d %H:%M").tolist()
    assert dates == ["2025-07-04 14:30", "2025-07-04 14:31"]


# ------------------------------------------------------------------ availability rules: checked whichever path they come from


def _prices_panel(tickers=("AAA US", "BBB US", "CCC US"), n=40):
    days = pd.bdate_range("2024-01-01", periods=n)
    frame = pd.DataFrame({"ticker": [t for t in tickers for _ in days], "date": list(days) * len(tickers)})
    frame["adj_close"] = 10.0 + pd.RangeIndex(len(frame)) % 7
    for column in ("open", "high", "low", "close"):
        frame[column] = frame["adj_close"]
    frame["volume"], frame["currency"] = 1000.0, "USD"
    return frame


def _load_plugin(tmp_path, name):
    from numerflow.tasks.core.config import FeatureSourceSettings, FeaturesSettings
    from numerflow.tasks.model.plugins import load_sources

    settings = FeaturesSettings(sources=[FeatureSourceSettings(name="mine", plugin=name)])
    return load_sources(settings, _prices_panel(), tmp_path, "files")


@pytest.mark.parametrize("plugin, message", [
    ("fakes.plugins:early", "invalid_feature_source: Availability(lag_hours=-48) is not a lag"),
    ("fakes.plugins:nan_lag", "Availability(lag_hours=nan) is not a lag"),
])
def test_a_plugins_availability_is_checked_like_a_tables(tmp_path, plugin, message):
    with pytest.raises(BadInputError, match="feature_plugin_failed") as refused:
        _load_plugin(tmp_path, plugin)
    assert f"feature plug-in {plugin!r}" in str(refused.value) and message in str(refused.value)


@pytest.mark.parametrize("options, message", [
    ({"lag_hours": -1}, "features.sources.0.lag_hours"),
    ({"max_age_days": 0}, "features.sources.0.max_age_days"),
])
def test_a_tables_availability_is_refused_when_settings_load(options, message):
    from numerflow.tasks.core.config import load_settings

    with pytest.raises(BadInputError, match="invalid_config") as refused:
        load_settings(features={"sources": [{"name": "mine", "path": "x.csv", **options}]})
    assert message in str(refused.value)


# ------------------------------------------------------------------ schedules that would never run


@pytest.mark.parametrize("option, value", [
    ("schedule", {"round_crons": ["0 0 31 2 *"]}),
    ("schedule", {"daily_submit_crons": ["10 12 * * 2-6", "0 6 31 4 *"]}),
    ("schedule", {"train_cron": "0 0 30 2 *"}),
    ("scores", {"cron": "0 8 31 11 *"}),
    ("classic", {"crons": ["0 0 31 6 *"]}),
])
def test_a_cron_with_no_next_run_is_refused_when_settings_load(option, value):
    from numerflow.tasks.core.config import load_settings

    with pytest.raises(BadInputError, match="invalid_config") as refused:
        load_settings(**{option: value})
    assert f"{option}.{next(iter(value))}" in str(refused.value) and "never runs" in str(refused.value)


def test_a_cron_that_fires_rarely_is_kept():
    from numerflow.tasks.core.config import load_settings

    assert load_settings(schedule={"train_cron": "0 6 29 2 *"}).schedule.train_cron == "0 6 29 2 *"  # leap days


def test_serve_check_refuses_an_impossible_cron(monkeypatch, capsys):
    from numerflow.deployments.serve import main as serve_main

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never reached: the settings fail first
    monkeypatch.setenv("NUMERFLOW_SCHEDULE__ROUND_CRONS", '["0 0 31 2 *"]')
    assert serve_main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "schedule.round_crons" in err and "'0 0 31 2 *' never runs" in err


# ------------------------------------------------------------------ each model's targets, weights and objective, judged in preflight in every mode


@pytest.mark.parametrize("mode, entry, message", [
    ("demo", {"target": "target_does_not_exist"}, "this round trains on its own target"),
    ("demo", {"ensemble_targets": ["target", "target_chili_60"]}, "would be ignored"),
    ("live", {"target": "target_does_not_exist"}, "cannot tell the horizon of target column 'target_does_not_exist'"),
    ("live", {"ensemble_targets": ["target", "target_chili_60"], "ensemble_weights": [1.0]}, "do not fit the targets"),
    ("live", {"ensemble_targets": ["target", "target_chili_60"], "ensemble_weights": [0, 0]}, "not all zero"),
    ("live", {"ensemble_targets": ["target", "target"]}, "list a target twice"),
    ("live", {"ensemble_weights": [1.0, 2.0]}, "do not fit the targets ['target']"),
])
def test_each_models_targets_and_weights_are_judged_in_preflight_in_every_mode(tmp_path, mode, entry, message):
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.round.models import round_models
    from numerflow.tasks.round.tournaments import judge_models

    settings = load_settings(data_dir=str(tmp_path), models=[{"name": "good"}, {"name": "bad", **entry}])
    models, failures = judge_models(round_models(settings), mode)
    assert [m.name for m in models] == ["good"] and [f.name for f in failures] == ["bad"]
    assert message in failures[0].message and failures[0].stage == "preflight"


def test_the_single_models_unknown_target_stops_a_demo_before_anything_moves(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_NUMERAI__TARGET_COLUMN", "target_does_not_exist")
    assert main(["run", "--demo", "--data-dir", str(tmp_path / "data")]) == 2
    assert "invalid_targets" in capsys.readouterr().err
    assert not (tmp_path / "data" / "prices").exists()


@pytest.mark.parametrize("where, value", [("numerai", {"ensemble_weights": [float("nan"), 1.0]}),
                                          ("models", [{"name": "a", "ensemble_weights": [-1.0, 2.0]}]),
                                          ("classic", {"weights": [float("inf")]})])
def test_nan_negative_or_infinite_ensemble_weights_are_refused_when_settings_load(where, value):
    from numerflow.tasks.core.config import load_settings

    with pytest.raises(BadInputError, match="ensemble weights must be finite numbers >= 0"):
        load_settings(**{where: value})


@pytest.mark.parametrize("params, message", [
    ({"objective": "multiclass", "num_class": 5}, "objective 'multiclass' predicts one score per class"),
    ({"objective": "softmax", "num_class": 5}, "ranks, not classes"),
    ({"objective": "lambdarank"}, "query groups"),
    ({"objective": "binary"}, "needs 0/1 labels"),
    ({"objective": "gamma"}, "needs targets above 0"),
    ({"objective": "ova", "num_class": 5}, "objective 'ova' predicts one score per class"),
])
def test_objectives_that_cannot_fit_the_targets_fail_their_model_in_preflight(tmp_path, params, message):
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.round.models import round_models
    from numerflow.tasks.round.tournaments import judge_models

    settings = load_settings(data_dir=str(tmp_path), models=[{"name": "good"}, {"name": "bad", "params": params}])
    models, failures = judge_models(round_models(settings), "demo")
    (bad,) = failures
    assert [m.name for m in models] == ["good"] and message in bad.message and "regression" in bad.message


# ================================================================== RAW CRASHES: each a tagged one-line error with a non-zero exit


# ------------------------------------------------------------------ plug-ins that fail, and sources that reach nothing


@pytest.mark.parametrize("plugin, message", [
    ("fakes.plugins:raises", "feature plug-in 'fakes.plugins:raises' raised KeyError: 'close_price'"),
    ("fakes.plugins:divides", "raised ZeroDivisionError: division by zero"),
    ("fakes.plugins:returns_none", "'fakes.plugins:returns_none' returned NoneType; return a DataFrame"),
    ("fakes.plugins:returns_dict", "returned dict {'ticker'"),
    ("fakes.plugins:returns_output_of_a_list", "returned a PluginOutput whose frame is list"),
    ("fakes.plugins:returns_output_with_a_dict_rule", "returned availability {'lag_hours': 24}"),
    ("fakes.plugin_broken_import:values", "failed while importing: RuntimeError: VENDOR_TOKEN is not set"),
    ("fakes.plugins:not_a_function", "is a int, not a function"),
    ("fakes.no_such_module:values", "cannot be loaded (ModuleNotFoundError: No module named 'fakes.no_such_module')"),
])
def test_a_plugin_that_fails_or_returns_the_wrong_thing_is_named_with_its_exception(tmp_path, plugin, message):
    with pytest.raises(BadInputError) as refused:
        _load_plugin(tmp_path, plugin)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_plugins_failing_fingerprint_is_named(tmp_path):
    from numerflow.tasks.core.config import FeatureSourceSettings, FeaturesSettings
    from numerflow.tasks.model.plugins import sources_fingerprint

    settings = FeaturesSettings(sources=[FeatureSourceSettings(name="mine", plugin="fakes.plugins:bad_fingerprint")])
    with pytest.raises(BadInputError, match=r"'fakes.plugins:bad_fingerprint'.fingerprint raised OSError: cannot stat"):
        sources_fingerprint(settings, tmp_path, "files")


def _dataset_with(tmp_path, source):
    from numerflow.tasks.core.config import FeaturesSettings, TargetSettings
    from numerflow.tasks.model.dataset import build_dataset

    store = Store(tmp_path / "data")
    from numerflow.tasks.core.store import write_parquet

    write_parquet(store.prices_dir("files") / "part-00000.parquet", _prices_panel())
    return build_dataset(store, "files", TargetSettings(horizon=5, lag=1), FeaturesSettings(sources=[source]))


@pytest.mark.parametrize("kind, message", [
    ("strangers", "120 have a ticker with no price bars (e.g. 'ZAAA US'"),
    ("future", "become usable only after the last bar (2024-02-23"),
    ("table_strangers", "2 have a ticker with no price bars (e.g. 'XYZ US'"),
    ("table_future", "2 become usable only after the last bar"),
])
def test_a_feature_source_none_of_whose_rows_join_is_refused_saying_what_to_check(tmp_path, kind, message):
    from numerflow.tasks.core.config import FeatureSourceSettings

    if kind.startswith("table"):
        path = tmp_path / "mine.csv"
        rows = ["XYZ US,2024-01-05,1", "XYZ US,2024-01-08,2"] if kind == "table_strangers" else \
            ["AAA US,2025-01-05,1", "BBB US,2025-01-08,2"]
        path.write_text("numerai_ticker,timestamp,value\n" + "\n".join(rows) + "\n")
        source = FeatureSourceSettings(name="mine", path=path)
    else:
        source = FeatureSourceSettings(name="mine", plugin=f"fakes.plugins:{kind}")
    with pytest.raises(BadInputError, match="feature_source_unjoined: feature source 'mine'") as refused:
        _dataset_with(tmp_path, source)
    text = str(refused.value)
    assert "none of its" in text and "joins the price panel" in text
    assert message in text, text


def test_a_plugin_with_no_rows_gives_an_empty_feature_not_a_crash(tmp_path):
    from numerflow.tasks.core.config import FeatureSourceSettings

    info = _dataset_with(tmp_path, FeatureSourceSettings(name="mine", plugin="fakes.plugins:empty"))
    report = json.loads(Path(info.path).with_suffix(".coverage.json").read_text())
    assert report["features"]["feature_mine_value"]["mean_coverage"] == 0
    assert report["excluded"] == ["feature_mine_value"]  # reported and left out of the model
    assert "feature_mine_value" not in pd.read_parquet(info.path).columns


# ------------------------------------------------------------------ answers from Numerai that do not parse


@pytest.mark.parametrize("field, value", [("date", "yesterday-ish"), ("roundResolveTime", "2026-13-45T99:00:00Z")])
def test_live_scores_whose_dates_do_not_parse_are_a_one_line_error(field, value, tmp_path, monkeypatch, capsys):
    from fakes.numerai_server import FakeNumeraiServer, open_round

    with FakeNumeraiServer() as fake:
        fake.set_round("signals", open_round(1006))
        fake.add_round("signals", open_round(1006))
        fake.add_score("model-signals-1", 1005, "CORR20", 0.01)
        fake.state.scores["model-signals-1"][0][field] = value
        monkeypatch.setenv("NUMERAI_PUBLIC_ID", fake.state.public_id)
        monkeypatch.setenv("NUMERAI_SECRET_KEY", fake.state.secret_key)
        monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake.url)
        monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([{"name": "my_signals"}]))
        assert main(["scores", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "numerai_unexpected_response: unexpected answer from Numerai to submissionScores" in err
    assert value in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ files that are not text


@pytest.mark.parametrize("payload, line", [
    (b"NUMERFLOW_DATA_DIR=data\nNUMERAI_SECRET_KEY=caf\xe9\n", 2),  # latin-1
    (b"\xff\xfeN\x00U\x00M\x00", 1),  # UTF-16 with a byte-order mark
])
def test_an_env_file_that_is_not_utf8_is_named_with_its_line_and_no_value(payload, line, tmp_path, monkeypatch,
                                                                           capsys):
    env = tmp_path / ".env"
    env.write_bytes(payload)
    monkeypatch.setenv("NUMERFLOW_ENV_FILE", str(env))
    assert main(["status", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert f"invalid_config: env file {env} is not UTF-8 text (line {line})" in err and "caf" not in err


# ------------------------------------------------------------------ the Prefect server is not there


@pytest.mark.parametrize("argv", [[], ["--check"]])
def test_serve_without_a_reachable_prefect_api_names_the_url_and_how_to_start_it(argv, tmp_path, monkeypatch, capsys):
    from numerflow.deployments.serve import main as serve_main

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # the discard port: nothing listens
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
    assert serve_main(argv) in (1, 2)
    err = capsys.readouterr().err
    assert "the Prefect API at http://127.0.0.1:9/api is unreachable (ConnectError" in err
    assert "prefect server start" in err and "PREFECT_API_URL" in err and "Traceback" not in err


# ================================================================== MESSAGES: the outcome was right, the words were not


# ------------------------------------------------------------------ a failure inside a round reads in one line; --json says what failed and what succeeded


SMALL = ["--tickers", "130", "--years", "1.5"]  # a small demo market: a whole round in seconds


def _numerflow_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("numerflow: ") and "…" not in line
            and " done in " not in line and " FAILED after " not in line]


@pytest.mark.slow
def test_bad_input_inside_a_round_prints_its_stage_in_one_line_and_json_and_logs_the_traceback(
        prefect_harness, tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.setenv("NUMERFLOW_FEATURES__SOURCES", json.dumps([{"name": "mine", "plugin": "fakes.plugins:raises"}]))
    assert main(["run", "--demo", "--json", *SMALL, "--data-dir", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "| ERROR" not in captured.err
    (line,) = _numerflow_lines(captured.err)
    assert line.startswith("numerflow: dataset failed: feature_plugin_failed: feature plug-in "
                           "'fakes.plugins:raises' raised KeyError: 'close_price'")
    payload = json.loads(captured.out)
    assert payload["ok"] is False and payload["error"] == {
        "tag": "feature_plugin_failed", "stage": "dataset",
        "message": "feature plug-in 'fakes.plugins:raises' raised KeyError: 'close_price'; fix the plug-in or drop "
                   "it from features"}
    log = Path(payload["log"])
    assert f"(log: {log})" in line and "Traceback" in log.read_text() and "KeyError: 'close_price'" in log.read_text()


@pytest.mark.parametrize("verbose", [False, True])
def test_prefects_failure_reports_go_to_the_log_file_unless_verbose(verbose, tmp_path):
    import argparse
    import io
    import logging

    from numerflow.tasks.round.console import round_console

    console = logging.StreamHandler(io.StringIO())
    root = logging.getLogger()
    root.addHandler(console)
    args = argparse.Namespace(verbose=verbose)
    try:
        with round_console(args, tmp_path):
            try:
                raise KeyError("close_price")
            except KeyError:
                logging.getLogger("prefect.task_runs").error("Task run failed with exception", exc_info=True)
            logging.getLogger("prefect.flow_runs").warning("No open round, and no keys: a dry run")
    finally:
        root.removeHandler(console)
    shown = console.stream.getvalue()
    assert "No open round" in shown  # warnings stay on the console
    if verbose:
        assert "Traceback" in shown and not (tmp_path / "logs").exists()
    else:
        assert "Traceback" not in shown and "Task run failed" not in shown
        logged = args.log_path.read_text()
        assert "Task run failed" in logged and "KeyError: 'close_price'" in logged and "No open round" in logged


def test_an_unexpected_error_still_shows_its_traceback_and_json_names_it(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr("numerflow.tasks.round.tournaments.judge_models", broken)
    with pytest.raises(RuntimeError, match="disk controller on fire"):  # Python prints it: exit 1 with traceback
        main(["run", "--demo", "--json", "--data-dir", str(tmp_path / "data")])
    payload = json.loads(capsys.readouterr().out)
    assert payload["error"]["tag"] == "RuntimeError" and "disk controller on fire" in payload["error"]["message"]


@pytest.mark.slow
def test_json_on_a_partial_failure_gives_the_uploaded_models_submission_id(prefect_harness, live_env, numerai,
                                                                            monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([
        {"name": "my_signals"}, {"name": "other_signals", "params": {"monotone_constraints": [1, -1]}},
        {"name": "third", "target": "target_no_horizon"}]))
    assert main(["run", "--json"]) == 2
    captured = capsys.readouterr()
    payload = json.loads(captured.out)
    assert payload["ok"] is False and payload["error"]["tag"] == "models_failed"
    (uploaded,) = payload["models"]
    assert uploaded["name"] == "my_signals" and uploaded["upload"] == "uploaded"
    assert uploaded["submission_id"] and uploaded["submission_id"] in json.dumps(numerai.state.submissions, default=str)
    assert payload["failures"]["other_signals"].startswith("lightgbm_refused: LightGBM could not train this model")
    assert "cannot tell the horizon of target column 'target_no_horizon'" in payload["failures"]["third"]
    assert "(2 of 3 models failed: other_signals, third)" not in captured.err  # third never reached train
    assert "(1 of 2 models failed: other_signals)" in captured.err


# ------------------------------------------------------------------ a model LightGBM refuses to fit fails as itself


@pytest.mark.slow
def test_models_lightgbm_refuses_to_fit_fail_as_themselves_and_the_others_keep_their_summary(
        prefect_harness, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([
        {"name": "good"}, {"name": "mono", "params": {"monotone_constraints": [1, 1]}},
        {"name": "gam", "params": {"objective": "gamma"}}]))
    assert main(["run", "--demo", *SMALL, "--data-dir", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert "numerflow: train done in" in captured.err and "(1 of 2 models failed: mono)" in captured.err
    (line,) = _numerflow_lines(captured.err)
    assert "StageFailed" not in line and "stage_failed" not in line and "hpp, line" not in line
    assert ("mono: lightgbm_refused: LightGBM could not train this model: Check failed: "
            "(static_cast<size_t>(train_data_->num_total_features())) == (config->monotone_constraints.size()); "
            "give monotone_constraints one entry per feature") in line
    assert "gam: invalid_config: objective 'gamma' needs targets above 0, and the targets include 0" in line
    assert "numerflow round demo-" in captured.out and "2 of 3 models failed" not in captured.out
    assert "1 of 3 models done" in captured.out and "  model good" in captured.out and "dry_run" in captured.out


@pytest.mark.slow
def test_a_train_stage_whose_models_all_failed_never_echoes_done(prefect_harness, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([
        {"name": "mono", "params": {"monotone_constraints": [1, 1]}},
        {"name": "mono2", "params": {"monotone_constraints": [1, -1]}}]))
    assert main(["run", "--demo", "--json", *SMALL, "--data-dir", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert "numerflow: train done" not in captured.err
    assert "numerflow: train FAILED after" in captured.err and "(2 of 2 models failed: mono, mono2)" in captured.err
    payload = json.loads(captured.out)
    assert payload["error"]["tag"] == "models_failed" and payload["models"] == []
    assert all(why.startswith("lightgbm_refused: ") for why in payload["failures"].values())


def test_lightgbm_failures_read_with_a_hint_for_each_known_reason():
    from lightgbm.basic import LightGBMError

    from numerflow.tasks.core.failures import describe_failure

    for reason, hint in [
        ("Check failed: (label) > (0) at /x/regression_metric.hpp, line 275 .\n", "needs positive targets"),
        ("Check failed: (static_cast<size_t>(train_data_->num_total_features())) == "
         "(config->monotone_constraints.size()) at /x/gbdt.cpp, line 65 .", "one entry per feature"),
        ("Label must be in [0, 5), but found 0.25 in label", "not classes"),
        ("Something new", "fix the LightGBM parameters"),
    ]:
        text = describe_failure(LightGBMError(reason))
        assert text.startswith("lightgbm_refused: LightGBM could not train this model: ") and hint in text
        assert "\n" not in text and ".cpp" not in text and ".hpp" not in text


# ------------------------------------------------------------------ Classic submissions, in Classic's words


LIVE = pd.Series([f"n{i:04d}" for i in range(150)])


def _classic(ids, values=None):
    ids = list(ids)
    values = values if values is not None else [(i + 0.5) / len(ids) for i in range(len(ids))]
    return pd.DataFrame({"id": ids, "prediction": values})


@pytest.mark.parametrize("make, message", [
    (lambda: _classic(LIVE[3:]), "3 of the 150 live ids are missing (e.g. ['n0000', 'n0001', 'n0002'])"),
    (lambda: _classic([*LIVE, "x1", "x2"]), "2 ids are not live (e.g. ['x1', 'x2'])"),
    (lambda: _classic(LIVE, [0.0, 1.0] + [0.5 + i / 1000 for i in range(148)]),
     "Classic predictions must be strictly inside (0, 1): 2 of 150 are exactly 0 or 1 (numerai-tools' checker lets "
     "the ends through"),
    (lambda: _classic(LIVE, [1.5] + [0.5] * 149), "predictions must be strictly inside (0, 1); got min 0.5, max 1.5"),
    (lambda: _classic(LIVE, [0.5] * 150), "every prediction is the same value"),
    (lambda: _classic([*LIVE[:-1], LIVE.iloc[0]]), "duplicate ids ['n0000']; each id must appear once"),
    (lambda: _classic(LIVE).assign(prediction=["x"] * 150), "the prediction column holds values that are not numbers"),
])
def test_classic_submission_problems_are_said_in_classic_terms(make, message):
    from numerflow.tasks.numerai.submission import validate_submission

    with pytest.raises(BadInputError) as refused:
        validate_submission(make(), LIVE, tournament="classic", min_tickers=100)
    assert message in str(refused.value), str(refused.value)
    assert "ticker" not in str(refused.value) and "signal" not in str(refused.value)


def test_a_hand_made_classic_file_of_0_and_1_is_refused_in_a_dry_run(no_keys, capsys):
    path = no_keys / "classic.csv"
    _classic(LIVE, [0, 1] * 75).to_csv(path, index=False)
    assert main(["submit", "--tournament", "classic", str(path)]) == 2
    assert "Classic predictions must be strictly inside (0, 1): 150 of 150 are exactly 0 or 1" in capsys.readouterr().err


# ------------------------------------------------------------------ one entry of a list, from the environment


@pytest.mark.parametrize("name, value, option", [
    ("NUMERFLOW_MODELS__0__PARAMS", '{"num_leaves": 7}', "models"),
    ("NUMERFLOW_MODELS__1__NAME", "other", "models"),
    ("NUMERFLOW_FEATURES__SOURCES__0__LAG_HOURS", "3", "features.sources"),
    ("NUMERFLOW_SCHEDULE__ROUND_CRONS__0", "0 6 * * 1", "schedule.round_crons"),
])
def test_an_env_variable_for_one_list_entry_is_named_with_how_lists_are_set(name, value, option, tmp_path,
                                                                              monkeypatch):
    from numerflow.tasks.core.config import load_settings

    config = tmp_path / "numerflow.toml"
    config.write_text('[[models]]\nname = "a"\n\n[[models]]\nname = "b"\n')
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    monkeypatch.setenv(name, value)
    with pytest.raises(BadInputError, match="invalid_config") as refused:
        load_settings()
    text = str(refused.value)
    assert text.startswith(f"invalid_config: {name} sets entry") and f"of the list {option}" in text
    assert "a list is set as one JSON value" in text and "Input should be a valid list" not in text


def test_a_list_entry_in_the_env_file_is_named_too(tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings

    env = tmp_path / ".env"
    env.write_text("NUMERFLOW_MODELS__0__TARGET=target_chili_60\n")
    monkeypatch.setenv("NUMERFLOW_ENV_FILE", str(env))
    with pytest.raises(BadInputError, match="NUMERFLOW_MODELS__0__TARGET sets entry 0 of the list models"):
        load_settings()


# ------------------------------------------------------------------ Ctrl-C


@pytest.mark.slow
def test_ctrl_c_during_a_round_prints_one_line_exits_130_and_the_rerun_resumes(prefect_harness, tmp_path, monkeypatch, capsys):
    from numerflow.flows import round as round_module

    real = round_module.build_dataset_task

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(round_module, "build_dataset_task", interrupted)
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    argv = ["run", "--demo", *SMALL, "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "numerflow: interrupted during dataset; re-run to resume" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    prices = sorted((tmp_path / "data" / "prices").rglob("*.parquet"))
    assert prices  # the ingest before the interruption is kept

    monkeypatch.setattr(round_module, "build_dataset_task", real)
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["prices"]["rows"] == 0  # resumed: the stored bars are not fetched again
    assert summary["upload"]["dry_run"] is True


# ------------------------------------------------------------------ a live round on price files says what applies


def test_the_summary_of_a_files_round_says_what_applies_to_files():
    from numerflow.tasks.round.summary import _resolution_text

    files = {"source": "files", "coverage": {"covered": 7, "universe": 8, "share": 7 / 8, "outside": 0}}
    assert _resolution_text(None, files) == ("prices for 7 of 8 universe ids from files (keyed by Numerai's ids: "
                                             "no Yahoo resolution)")
    assert _resolution_text({"resolved": 5, "ambiguous": 1, "unresolved": 2}, {"source": "yahoo"}) == \
        "resolved 5, ambiguous 1, unresolved 2"


@pytest.mark.slow
def test_a_live_round_on_price_files_prints_no_none(prefect_harness, live_env, tmp_path, monkeypatch, capsys):
    from test_live_files import write_prices

    write_prices(tmp_path / "prices.csv")
    monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "files")
    monkeypatch.setenv("NUMERFLOW_FILES__PATH", str(tmp_path / "prices.csv"))
    assert main(["run", "--model", "my_signals"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  numerai ")]
    assert "None" not in line and "universe ids from files (keyed by Numerai's ids: no Yahoo resolution)" in line
