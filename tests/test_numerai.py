"""tasks/numerai/ (client, universe, ledger, submit) with the REAL numerapi client and a fake Numerai on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fakes.numerai_fixtures import (  # noqa: F401 - fixtures
    fake_numerai,
    keys,
    make_client,
    numerai_settings,
    sleeps,
    universe_parquet,
    us_tickers,
)
from fakes.numerai_server import NOT_AUTHENTICATED, closed_round, open_round
from pydantic import SecretStr

from numerflow.tasks.core.config import NumeraiSettings
from numerflow.tasks.core.errors import BadInputError, NumerflowError, TransientError
from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.client import (
    NumeraiKeys,
    RoundInfo,
    pick_dataset_version,
    require_open_window,
    resolve_keys,
)
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.numerai.submit import round_status, submit_file
from numerflow.tasks.numerai.universe import fetch_universe, latest_universe_snapshot, read_universe

# ----------------------------------------------------------------------------- datasets & universe


def test_pick_dataset_version_takes_newest_with_a_live_file():
    files = ["signals/v1.0/live.parquet", "signals/v2.0/live.parquet", "signals/v2.1/live.parquet",
             "signals/v10.0/train.parquet", "signals/v2.1/train.parquet", "crypto/v9.0/live.parquet"]
    assert pick_dataset_version(files, "signals") == "signals/v2.1"
    files.append("signals/v10.0/live.parquet")
    assert pick_dataset_version(files, "signals") == "signals/v10.0"  # numeric, not lexical
    assert pick_dataset_version(["crypto/v2.0/live_universe.parquet"], "crypto") == "crypto/v2.0"
    with pytest.raises(BadInputError, match="no_dataset"):
        pick_dataset_version(["signals/v2.1/train.parquet"], "signals")


def test_fetch_universe_discovers_version_downloads_per_round_and_snapshots(fake_numerai, make_client, tmp_path):
    store = Store(tmp_path)
    snap = fetch_universe(make_client(with_keys=False), store)
    assert snap.round_number == 1001 and snap.dataset == "signals/v2.1/live.parquet"
    assert snap.raw_path == tmp_path / "numerai/signals/v2.1/round-1001/live.parquet"
    assert fake_numerai.calls("dataset")[0]["variables"]["filename"] == "signals/v2.1/live.parquet"
    table = pq.read_table(snap.snapshot_path)
    assert table.schema.names == ["numerai_ticker", "composite_figi", "country"]
    frame = table.to_pandas()
    assert frame["numerai_ticker"].tolist() == us_tickers(150)
    assert set(frame["country"]) == {"US"} and frame["composite_figi"].notna().all()
    assert not any(p.name.endswith(".tmp") or p.name.endswith(".temp") for p in tmp_path.rglob("*"))


def test_next_round_redownloads_a_same_size_universe(fake_numerai, make_client, tmp_path):
    store = Store(tmp_path)
    client = make_client(with_keys=False)
    first = fetch_universe(client, store)
    # Same byte size, different tickers (T0000 US → U0000 US): numerapi alone would skip it.
    new_payload = first.raw_path.read_bytes().replace(b"T0", b"U0")
    assert len(new_payload) == first.raw_path.stat().st_size
    assert pd.read_parquet(io.BytesIO(new_payload))["numerai_ticker"].iloc[0] == "U0000 US"
    fake_numerai.add_dataset("signals", "signals/v2.1/live.parquet", new_payload)
    fake_numerai.set_round("signals", open_round(1002))
    second = fetch_universe(client, store)
    assert second.raw_path != first.raw_path
    assert pd.read_parquet(second.snapshot_path)["numerai_ticker"].iloc[0] == "U0000 US"
    assert pd.read_parquet(first.snapshot_path)["numerai_ticker"].iloc[0] == "T0000 US"
    assert fake_numerai.state.downloads.count("signals/v2.1/live.parquet") == 2


def test_crypto_universe_uses_symbol_and_crypto_datasets(fake_numerai, make_client, tmp_path):
    snap = fetch_universe(make_client("crypto", with_keys=False), Store(tmp_path))
    assert snap.dataset == "crypto/v2.0/live_universe.parquet" and snap.round_number == 501
    assert pd.read_parquet(snap.snapshot_path)["symbol"].tolist()[:2] == ["C000", "C001"]
    assert fake_numerai.calls("listDatasets")[0]["variables"]["tournament"] == 12


def test_latest_universe_snapshot_prefers_rounds_by_number_then_demo_dates(tmp_path):
    store = Store(tmp_path)
    assert latest_universe_snapshot(store, "signals") is None  # no directory yet

    def touch(name: str, age_seconds: int):
        path = store.universe_path("signals", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        stamp = 2_000_000_000 - age_seconds
        os.utime(path, (stamp, stamp))  # mtimes contradict the names: they must not decide
        return path

    touch("notes", 0)
    assert latest_universe_snapshot(store, "signals") is None  # not a snapshot name
    touch("demo-2026-11-20", 0)
    newest_demo = touch("demo-2026-12-04", 50)
    touch("demo-2026-13-45", 0)  # not a date
    assert latest_universe_snapshot(store, "signals") == newest_demo
    touch("round-999", 0)
    newest_round = touch("round-1000", 100)  # numeric order, not text order
    assert latest_universe_snapshot(store, "signals") == newest_round  # rounds beat any demo
    assert latest_universe_snapshot(store, "crypto") is None


def _write(path, table: pa.Table):
    pq.write_table(table, path)
    return path


def test_universe_without_ticker_column_is_refused_and_writes_no_snapshot(fake_numerai, make_client, tmp_path):
    buffer = io.BytesIO()
    pd.DataFrame({"ticker": us_tickers(5)}).to_parquet(buffer)
    fake_numerai.add_dataset("signals", "signals/v2.1/live.parquet", buffer.getvalue())
    with pytest.raises(BadInputError, match=r"invalid_universe: .* no 'numerai_ticker' column"):
        fetch_universe(make_client(with_keys=False), Store(tmp_path))
    assert not (tmp_path / "universe").exists()


def test_universe_bad_files(tmp_path):
    dup = _write(tmp_path / "dup.parquet", pa.table([pa.array(["A US"]), pa.array(["B US"])],
                                                    names=["numerai_ticker", "numerai_ticker"]))
    with pytest.raises(BadInputError, match=r"duplicate columns \['numerai_ticker'\]"):
        read_universe(dup)
    empty = _write(tmp_path / "empty.parquet", pa.table({"numerai_ticker": pa.array([], pa.string())}))
    with pytest.raises(BadInputError, match="empty_universe"):
        read_universe(empty)
    twice = _write(tmp_path / "twice.parquet", pa.table({"numerai_ticker": ["A US", "B US", "A US"]}))
    with pytest.raises(BadInputError, match=r"lists 1 tickers twice, e.g. \['A US'\]"):
        read_universe(twice)
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(BadInputError, match="not readable Parquet"):
        read_universe(tmp_path / "junk.parquet")
    ok = _write(tmp_path / "ok.parquet", pa.table({"numerai_ticker": ["A US", None, "B GB"]}))
    assert read_universe(ok)["numerai_ticker"].tolist() == ["A US", "B GB"]


# ----------------------------------------------------------------------------- rounds & models


def test_current_round_is_timezone_aware(fake_numerai, make_client):
    current = make_client(with_keys=False).current_round()
    assert current.number == 1001 and current.open_time.tzinfo is not None
    assert current.is_open()
    fake_numerai.set_round("signals", None)  # Numerai: "Current round not open for submissions"
    assert make_client(with_keys=False).current_round() is None


def test_open_window_guard_gives_the_times():
    utc = dt.UTC
    info = RoundInfo("signals", 7, dt.datetime(2026, 11, 24, 12, tzinfo=utc), dt.datetime(2026, 11, 24, 13, tzinfo=utc))
    require_open_window(info, dt.datetime(2026, 11, 24, 12, 30, tzinfo=utc))
    with pytest.raises(BadInputError) as err:
        require_open_window(info, dt.datetime(2026, 11, 24, 13, 0, tzinfo=utc))
    assert str(err.value) == ("round_closed: signals round 7 is closed: it opens 2026-11-24 12:00 UTC, closes "
                              "2026-11-24 13:00 UTC, now is 2026-11-24 13:00 UTC; nothing was uploaded (submission.queue_late = "
                              "true uploads a late file for Numerai to queue for the next round)")
    with pytest.raises(BadInputError, match="has not opened yet"):
        require_open_window(info, dt.datetime(2026, 11, 24, 11, 59, tzinfo=utc))
    with pytest.raises(BadInputError, match="round_closed: no Numerai round is open"):
        require_open_window(None)


def test_model_resolution(make_client):
    client = make_client()
    assert client.models() == {"my_signals": "model-signals-1", "other_signals": "model-signals-2"}
    assert client.resolve_model_id("other_signals") == "model-signals-2"
    with pytest.raises(BadInputError) as err:
        client.resolve_model_id("nope")
    assert err.value.tag == "unknown_model"
    assert "['my_signals', 'other_signals']" in str(err.value)
    with pytest.raises(BadInputError, match=r"wrong_tournament_model: model 'my_crypto' is a Numerai crypto model"):
        client.resolve_model_id("my_crypto")


# ----------------------------------------------------------------------------- uploads


@pytest.fixture
def prepared(numerai_settings, make_client, tmp_path):
    """A universe snapshot for round 1001 and a valid submission file of its 150 tickers."""
    store = Store(numerai_settings.data_dir)
    fetch_universe(make_client(with_keys=False), store)
    path = tmp_path / "submission.csv"
    tickers = us_tickers(150)
    signal = [(i + 0.5) / len(tickers) for i in range(len(tickers))]
    pd.DataFrame({"numerai_ticker": tickers, "signal": signal}).to_csv(path, index=False)
    return path


def _ledger(settings):
    return SubmissionLedger.for_settings(settings)


def test_full_upload_sends_exact_bytes_and_mutation_variables(fake_numerai, numerai_settings, make_client, prepared):
    outcome = submit_file(prepared, numerai_settings, client=make_client())
    assert outcome.status == "uploaded"
    (upload,) = fake_numerai.state.uploads
    assert upload["body"] == prepared.read_bytes()
    auth = fake_numerai.calls("submissionUploadSignalsAuth")[0]["variables"]
    assert auth == {"filename": "submission.csv", "tournament": 11, "modelId": "model-signals-1"}
    (created,) = fake_numerai.state.submissions
    assert created["operation"] == "createSignalsSubmission"
    assert created["variables"] == {"filename": upload["filename"], "modelId": "model-signals-1",
                                    "triggerId": None, "dataDatestamp": None}
    entry = _ledger(numerai_settings).get("signals", 1001, "my_signals")
    import hashlib

    assert entry["submission_id"] == created["id"] == outcome.submission_id
    assert entry["sha256"] == hashlib.sha256(prepared.read_bytes()).hexdigest()
    assert entry["model_id"] == "model-signals-1" and entry["rows"] == 150


def test_second_run_skips_and_force_reuploads(fake_numerai, numerai_settings, make_client, prepared):
    first = submit_file(prepared, numerai_settings, client=make_client())
    again = submit_file(prepared, numerai_settings, client=make_client())
    assert again.status == "skipped" and "pass --force" in again.message
    assert again.submission_id == first.submission_id
    assert len(fake_numerai.state.uploads) == 1 and len(fake_numerai.state.submissions) == 1
    forced = submit_file(prepared, numerai_settings, client=make_client(), force=True)
    assert forced.status == "uploaded" and forced.submission_id != first.submission_id
    assert len(fake_numerai.state.submissions) == 2
    entry = _ledger(numerai_settings).get("signals", 1001, "my_signals")
    assert entry["submission_id"] == forced.submission_id and entry["forced"] is True
    assert [old["submission_id"] for old in entry["replaced"]] == [first.submission_id]


def _assert_nothing_recorded(settings, fake, *, submissions=0):
    assert _ledger(settings).get("signals", 1001, "my_signals") is None
    assert len(fake.state.submissions) == submissions


def test_closed_round_refuses(fake_numerai, numerai_settings, make_client, prepared):
    fake_numerai.set_round("signals", closed_round(1001))
    with pytest.raises(BadInputError, match=r"round_closed: signals round 1001 is closed: it opens .* UTC, closes"):
        submit_file(prepared, numerai_settings, client=make_client())
    assert fake_numerai.state.uploads == []
    _assert_nothing_recorded(numerai_settings, fake_numerai)


def _closing_round(fake, number: int, datestamp: int) -> dict:
    """A round still open when the round was predicted, closed by the time of the upload."""
    closed = {**closed_round(number), "dataDatestamp": datestamp}
    fake.set_round("signals", closed)
    fake.add_round("signals", closed)
    return closed


def test_a_round_closing_before_the_upload_is_refused_without_queue_late(fake_numerai, numerai_settings,
                                                                          make_client, prepared):
    _closing_round(fake_numerai, 1001, 20261204)
    with pytest.raises(BadInputError, match="is closed.*nothing was uploaded.*queue_late"):
        submit_file(prepared, numerai_settings, client=make_client())
    assert fake_numerai.state.uploads == [] and _ledger(numerai_settings).entries() == []


@pytest.mark.parametrize("round_query_answers", ["closed round", "no round"])
def test_with_queue_late_a_late_upload_is_queued_for_the_next_round(fake_numerai, numerai_settings, make_client,
                                                                    prepared, round_query_answers):
    settings = numerai_settings.model_copy(update={"submission": numerai_settings.submission.model_copy(
        update={"queue_late": True})})
    _closing_round(fake_numerai, 1001, 20261204)
    if round_query_answers == "no round":  # Numerai's current-round query: an error while no round is open
        fake_numerai.set_round("signals", None)
    outcome = submit_file(prepared, settings, client=make_client())
    assert outcome.status == "queued" and "queues for round 1002" in outcome.message
    assert "not a submission to round 1001" in outcome.message
    (created,) = fake_numerai.state.submissions
    assert created["variables"]["dataDatestamp"] == 20261204
    ledger = _ledger(settings)
    assert ledger.get("signals", 1001, "my_signals") is None  # never recorded for the closed round
    entry = ledger.get("signals", 1002, "my_signals")
    assert entry["queued"] is True and entry["predicted_for_round"] == 1001 and entry["data_datestamp"] == 20261204
    # Exactly once: a retry of the same late upload skips.
    again = submit_file(prepared, settings, client=make_client())
    assert again.status == "skipped" and "already queued late" in again.message
    assert len(fake_numerai.state.submissions) == 1
    # Round 1002 opens: a fresh file replaces the queued one (recorded, the queued one kept as replaced).
    fake_numerai.set_round("signals", open_round(1002))
    store = Store(settings.data_dir)
    fetch_universe(make_client(with_keys=False), store)
    fresh = submit_file(prepared, settings, client=make_client())
    assert fresh.status == "uploaded"
    entry = ledger.get("signals", 1002, "my_signals")
    assert "queued" not in entry and entry["replaced"][0]["queued"] is True


def test_graphql_error_on_create_submission(fake_numerai, numerai_settings, make_client, prepared):
    fake_numerai.fail("createSignalsSubmission", message="Invalid submission: too few tickers")
    with pytest.raises(BadInputError, match="numerai_api_error: .*createSignalsSubmission.*too few tickers"):
        submit_file(prepared, numerai_settings, client=make_client())
    _assert_nothing_recorded(numerai_settings, fake_numerai)


def test_http_500_is_retried_without_sleeping_then_transient(fake_numerai, numerai_settings, make_client,
                                                              prepared, sleeps):
    fake_numerai.fail("createSignalsSubmission", "http", status=500, times=3)
    with pytest.raises(TransientError, match="numerai_unavailable: .*createSignalsSubmission failed 3 times.*HTTP 500"):
        submit_file(prepared, numerai_settings, client=make_client(retries=3))
    assert sleeps == [1.0, 2.0]
    assert len(fake_numerai.calls("createSignalsSubmission")) == 3
    _assert_nothing_recorded(numerai_settings, fake_numerai)


def test_one_http_500_then_success(fake_numerai, numerai_settings, make_client, prepared, sleeps):
    fake_numerai.fail("rounds", "http", status=503)
    assert submit_file(prepared, numerai_settings, client=make_client()).status == "uploaded"
    assert sleeps == [1.0]


def test_failed_put_stops_before_the_submission_is_created(fake_numerai, numerai_settings, make_client, prepared):
    fake_numerai.fail("PUT", "http", status=500)
    with pytest.raises(TransientError, match="upload_failed: .*HTTP 500"):
        submit_file(prepared, numerai_settings, client=make_client())
    assert fake_numerai.calls("createSignalsSubmission") == []
    _assert_nothing_recorded(numerai_settings, fake_numerai)
    fake_numerai.fail("PUT", "http", status=403)
    with pytest.raises(BadInputError, match="upload_failed: Numerai's storage refused the file upload .HTTP 403"):
        submit_file(prepared, numerai_settings, client=make_client())


def test_garbage_answer_is_transient(fake_numerai, make_client):
    fake_numerai.fail("rounds", "garbage", times=3)
    with pytest.raises(TransientError, match="invalid JSON"):
        make_client().current_round()


@pytest.mark.parametrize("as_http", [False, True])
def test_bad_keys(fake_numerai, numerai_settings, make_client, prepared, as_http):
    fake_numerai.state.bad_keys_as_http = as_http
    bad = NumeraiKeys(SecretStr("WRONGPUBLIC"), SecretStr("WRONGSECRETVALUE"), "test")
    client = make_client()
    client = type(client)("signals", bad, api_url=fake_numerai.url, timeout=5)
    with pytest.raises(BadInputError) as err:
        submit_file(prepared, numerai_settings, client=client)
    assert err.value.tag == "numerai_auth" and "NUMERAI_SECRET_KEY" in str(err.value)
    assert "WRONGSECRETVALUE" not in str(err.value)
    assert fake_numerai.state.uploads == []
    _assert_nothing_recorded(numerai_settings, fake_numerai)
    if not as_http:
        assert NOT_AUTHENTICATED in str(err.value)


def test_unknown_model_and_other_tournament_model_upload_nothing(fake_numerai, numerai_settings, make_client,
                                                                 prepared):
    with pytest.raises(BadInputError, match="unknown_model: .*\\['my_signals', 'other_signals'\\]"):
        submit_file(prepared, numerai_settings, client=make_client(), model_name="ghost")
    with pytest.raises(BadInputError, match="wrong_tournament_model"):
        submit_file(prepared, numerai_settings, client=make_client(), model_name="my_crypto")
    assert fake_numerai.state.uploads == []
    assert _ledger(numerai_settings).entries() == []


def test_fewer_than_100_universe_tickers_uploads_nothing(fake_numerai, numerai_settings, make_client, prepared):
    frame = pd.read_csv(prepared)
    frame.loc[60:, "numerai_ticker"] = [f"X{i} US" for i in range(len(frame) - 60)]  # 60 in the universe
    frame.to_csv(prepared, index=False)
    with pytest.raises(BadInputError, match="not_enough_tickers: only 60 of 150"):
        submit_file(prepared, numerai_settings, client=make_client())
    assert fake_numerai.state.uploads == []
    _assert_nothing_recorded(numerai_settings, fake_numerai)


def test_no_keys_is_a_dry_run_that_touches_no_network(fake_numerai, numerai_settings, prepared):
    calls_before = len(fake_numerai.state.graphql_calls)
    outcome = submit_file(prepared, numerai_settings)  # conftest removed NUMERAI_* from env
    assert outcome.status == "dry_run" and outcome.message.startswith("DRY RUN — no Numerai API keys")
    assert len(fake_numerai.state.graphql_calls) == calls_before
    record = json.loads(open(outcome.record).read())
    assert record["dry_run"] is True and record["sha256"] == outcome.sha256 and record["rows"] == 150
    assert record["model_name"] == "my_signals" and "upload_predictions" in record["would_call"]
    assert _ledger(numerai_settings).entries() == []


def test_crypto_upload_uses_crypto_api(fake_numerai, numerai_settings, make_client, tmp_path):
    client = make_client("crypto")
    fetch_universe(client, Store(numerai_settings.data_dir))
    path = tmp_path / "crypto.csv"
    symbols = [f"C{i:03d}" for i in range(120)]
    pd.DataFrame({"symbol": symbols, "signal": [(i + 0.5) / 120 for i in range(120)]}).to_csv(path, index=False)
    outcome = submit_file(path, numerai_settings, tournament="crypto", model_name="my_crypto", client=client)
    assert outcome.status == "uploaded" and outcome.round["number"] == 501
    (created,) = fake_numerai.state.submissions
    assert created["operation"] == "create_submission"
    assert created["variables"]["tournament"] == 12 and created["variables"]["modelId"] == "model-crypto-1"
    assert created["body"] == path.read_bytes()
    assert SubmissionLedger.for_settings(numerai_settings).get("crypto", 501, "my_crypto") is not None


def test_diagnostics_upload_stores_the_id(fake_numerai, numerai_settings, make_client, prepared, tmp_path):
    diag = tmp_path / "validation.csv"
    pd.DataFrame({"numerai_ticker": ["T0000 US"] * 2, "date": ["2026-01-02", "2026-01-09"],
                  "signal": [0.25, 0.75]}).to_csv(diag, index=False)
    outcome = submit_file(prepared, numerai_settings, client=make_client(), diagnostics_path=diag)
    (created,) = fake_numerai.state.diagnostics
    assert outcome.diagnostics_id == created["id"] and created["body"] == diag.read_bytes()
    assert created["variables"]["tournament"] == 11
    assert _ledger(numerai_settings).get("signals", 1001, "my_signals")["diagnostics_id"] == created["id"]


def test_round_status_shows_window_and_last_submission(fake_numerai, numerai_settings, make_client, prepared):
    submit_file(prepared, numerai_settings, client=make_client())
    status = round_status(numerai_settings, client=make_client())
    assert status["round"]["number"] == 1001 and status["open"] is True
    assert "opens" in status["window"] and "closes" in status["window"]
    assert status["last_submissions"]["my_signals"]["round"] == 1001


# ----------------------------------------------------------------------------- keys and secrets


def test_resolve_keys_order_and_half_pairs():
    def loader(name):
        assert name == "numerai-keys"
        return "BLOCKPUB", "BLOCKSECRET"

    from_settings = NumeraiSettings(public_id="SPUB", secret_key="SSEC", secret_block="numerai-keys")
    assert resolve_keys(from_settings, env={"NUMERAI_PUBLIC_ID": "E", "NUMERAI_SECRET_KEY": "E"},
                        secret_loader=loader).source == "settings"
    env_keys = resolve_keys(NumeraiSettings(secret_block="numerai-keys"),
                            env={"NUMERAI_PUBLIC_ID": "EPUB", "NUMERAI_SECRET_KEY": "ESEC"}, secret_loader=loader)
    assert env_keys.source == "env" and env_keys.secrets() == ("EPUB", "ESEC")
    block = resolve_keys(NumeraiSettings(secret_block="numerai-keys"), env={}, secret_loader=loader)
    assert block.source == "prefect-secret:numerai-keys" and block.secrets() == ("BLOCKPUB", "BLOCKSECRET")
    assert resolve_keys(NumeraiSettings(), env={}) is None
    with pytest.raises(BadInputError, match="secret key is missing from env") as err:
        resolve_keys(NumeraiSettings(), env={"NUMERAI_PUBLIC_ID": "EPUB"})
    assert "EPUB" not in str(err.value)


def test_secret_never_appears_in_logs_errors_reprs_or_ledger(fake_numerai, numerai_settings, make_client,
                                                             prepared, keys, caplog):
    secret = fake_numerai.state.secret_key
    public = fake_numerai.state.public_id
    caplog.set_level(logging.DEBUG)  # everything, numerapi's, urllib3's and ours
    client = make_client()
    texts = [repr(keys), str(keys), repr(client), repr(client.api)]
    submit_file(prepared, numerai_settings, client=client)
    texts.append(submit_file(prepared, numerai_settings, client=client).message)
    fake_numerai.fail("createSignalsSubmission", message=f"token {public}${secret} rejected")
    with pytest.raises(BadInputError) as err:
        submit_file(prepared, numerai_settings, client=client, force=True)
    texts += [str(err.value), repr(err.value)]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(_ledger(numerai_settings).path.read_text())
    joined = "\n".join(texts)
    assert len(caplog.records) > 0 and "***" in str(err.value)
    assert secret not in joined
    assert public not in joined


def test_unexpected_answer_shape_is_a_clear_error(fake_numerai, make_client, monkeypatch):
    client = make_client()
    monkeypatch.setattr(fake_numerai, "resolve", lambda operation, variables: {"unexpected": True})
    with pytest.raises(NumerflowError, match="numerai_unexpected_response"):
        client.models()


# ----------------------------------------------------------------------------- under a real Prefect server


@pytest.mark.slow
def test_keys_from_a_prefect_secret_block(prefect_harness):
    from prefect.blocks.system import Secret

    Secret(value={"public_id": "BLOCKPUBLIC", "secret_key": "BLOCKSECRET"}).save("numerai-test-keys", overwrite=True)
    keys = resolve_keys(NumeraiSettings(secret_block="numerai-test-keys"), env={})
    assert keys.source == "prefect-secret:numerai-test-keys"
    assert keys.secrets() == ("BLOCKPUBLIC", "BLOCKSECRET") and "BLOCKSECRET" not in repr(keys)
    with pytest.raises(BadInputError, match="could not be loaded"):
        resolve_keys(NumeraiSettings(secret_block="no-such-block"), env={})


@pytest.mark.slow
def test_flow_upload_step_does_the_real_upload(prefect_harness, fake_numerai, numerai_settings, prepared,
                                               monkeypatch):
    from prefect import flow

    from numerflow.flows.round_tasks import upload_submission_task
    from numerflow.tasks.round.results import SubmissionFile

    monkeypatch.setenv("NUMERAI_PUBLIC_ID", fake_numerai.state.public_id)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", fake_numerai.state.secret_key)

    @flow
    def submit_only(force: bool = False):
        return upload_submission_task(numerai_settings, SubmissionFile(str(prepared), "", 0), force=force)

    first = submit_only()
    assert first.status == "uploaded" and first.dry_run is False
    assert fake_numerai.state.uploads[0]["body"] == prepared.read_bytes()
    assert submit_only().status == "skipped"
    assert submit_only(force=True).status == "uploaded"
    assert len(fake_numerai.state.submissions) == 2
