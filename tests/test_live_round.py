"""The live round (`numerflow run --model X`, flows/round.py, mode="live") end to end, for real:

the REAL numerapi client against the fake Numerai server on 127.0.0.1 (universe, rounds,
training data, models, presigned upload) and the REAL yfinance against the fake Yahoo
transport (tests/fakes/yahoo.py), through Prefect (the session harness).

Universe: Signals tickers in five countries (KR listings on KOSDAQ, so the ingest must fall
back from `.KS` to `.KQ`), one ticker no rule can resolve; Crypto symbols quoted `SYMBOL-USD`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_fixtures import universe_parquet
from fakes.numerai_server import FakeNumeraiServer, closed_round, open_round
from fakes.yahoo import FakeYahoo, make_bars, reset_yfinance

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import read_parquet
from numerflow.tasks.prices import configured as prices_flow_module
from numerflow.tasks.prices.ratelimit import TokenBucket
from numerflow.tasks.prices.sources.yahoo import YahooSource

TODAY = dt.date.today()
HISTORY_START = TODAY - dt.timedelta(days=int(2.2 * 365))

# (country, how many, Yahoo suffix the listing really has, timezone, currency)
MARKETS = [
    ("US", 60, "", "America/New_York", "USD"),
    ("GB", 20, ".L", "Europe/London", "GBP"),
    ("JP", 20, ".T", "Asia/Tokyo", "JPY"),
    ("HK", 12, ".HK", "Asia/Hong_Kong", "HKD"),
    ("KR", 12, ".KQ", "Asia/Seoul", "KRW"),  # KOSDAQ: the rules try .KS first
]
UNRESOLVABLE = "ODD ZZ"  # no country rule: unresolved, listed in the report and the ledger


def signals_universe() -> list[tuple[str, str, str, str]]:
    """(numerai_ticker, yahoo symbol, timezone, currency) for 124 listings."""
    rows = []
    for country, n, suffix, tz, currency in MARKETS:
        for i in range(n):
            if country == "HK":
                local, symbol = f"{i + 1}", f"{i + 1:04d}"  # `1 HK` → 0001.HK
            elif country in ("JP", "KR"):
                local = symbol = f"{(1000 + i) if country == 'JP' else (100000 + i):d}"
            else:
                local = symbol = f"{country}{i:03d}"
            rows.append((f"{local} {country}", f"{symbol}{suffix}", tz, currency))
    return rows


CRYPTO_SYMBOLS = [f"C{i:03d}" for i in range(110)]


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def numerai_training_files(tickers: list[str]) -> tuple[bytes, bytes]:
    """Numerai-shaped train/validation: weekly Friday rows with 5-bin targets (and the feature
    columns Numerai ships, which numerflow leaves alone). Targets end ~1 month before today."""
    fridays = pd.date_range(HISTORY_START + dt.timedelta(days=60), TODAY - dt.timedelta(days=35), freq="W-FRI")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        [(t, d.strftime("%Y-%m-%d")) for d in fridays for t in tickers], columns=["numerai_ticker", "date"]
    )
    frame["feature_country"] = frame["numerai_ticker"].str[-2:]
    frame["feature_momentum"] = rng.random(len(frame)).astype("float32")
    frame["target"] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], len(frame)).astype("float32")
    frame["target_raw_return_20"] = rng.normal(0, 0.05, len(frame)).astype("float32")
    cut = fridays[int(len(fridays) * 0.8)].strftime("%Y-%m-%d")
    return _parquet(frame[frame["date"] < cut]), _parquet(frame[frame["date"] >= cut])


def signals_yahoo(tz_cache_dir: Path, end: dt.date = TODAY) -> FakeYahoo:
    """The fake Yahoo with every Signals listing's bars from HISTORY_START to ``end``."""
    reset_yfinance(tz_cache_dir)
    fake = FakeYahoo()
    for n, (_, symbol, tz, currency) in enumerate(signals_universe()):
        fake.add(symbol, make_bars(HISTORY_START, end, price=20 + n, seed=n), timezone=tz, currency=currency)
    return fake


@pytest.fixture
def yahoo(tmp_path):
    fake = signals_yahoo(tmp_path / "yf-tz")
    for n, symbol in enumerate(CRYPTO_SYMBOLS):
        # Crypto trades every day, weekends included.
        days = pd.date_range(HISTORY_START, TODAY, freq="D")
        bars = make_bars(HISTORY_START, HISTORY_START + dt.timedelta(days=len(days) * 3 // 2), price=5 + n,
                         seed=1000 + n)
        bars = bars.iloc[: len(days)].set_axis(pd.Index(days.date, name="date"))
        fake.add(f"{symbol}-USD", bars, timezone="UTC", currency="USD", instrument_type="CRYPTOCURRENCY")
    return fake


@pytest.fixture
def numerai():
    with FakeNumeraiServer() as fake:
        tickers = [t for t, *_ in signals_universe()] + [UNRESOLVABLE]
        fake.set_round("signals", open_round(1200, hours_left=6))
        fake.set_round("crypto", open_round(700, hours_left=6))
        fake.add_dataset("signals", "signals/v1.0/live.parquet", universe_parquet(["OLD US"]))
        fake.add_dataset("signals", "signals/v2.1/live.parquet", universe_parquet(tickers))
        train, validation = numerai_training_files(tickers[:-1])
        fake.add_dataset("signals", "signals/v2.1/train.parquet", train)
        fake.add_dataset("signals", "signals/v2.1/validation.parquet", validation)
        fake.add_dataset("crypto", "crypto/v2.0/live_universe.parquet",
                         _parquet(pd.DataFrame({"symbol": CRYPTO_SYMBOLS})))
        yield fake


@pytest.fixture
def live_env(numerai, yahoo, monkeypatch, tmp_path):
    """Environment of `numerflow run`: keys, endpoint, Yahoo prices, fast training; the fake-backed
    YahooSource seeded into tasks.prices.configured's source cache (the seam every ingest task reads)."""
    env = {
        "NUMERAI_PUBLIC_ID": numerai.state.public_id,
        "NUMERAI_SECRET_KEY": numerai.state.secret_key,
        "NUMERFLOW_NUMERAI_API_URL": numerai.url,
        "NUMERFLOW_NUMERAI__TIMEOUT_SECONDS": "5",
        "NUMERFLOW_DATA_DIR": str(tmp_path / "data"),
        "NUMERFLOW_PRICE_SOURCE": "yahoo",
        "NUMERFLOW_TRAINING__NUM_BOOST_ROUND": "15",
        "NUMERFLOW_TRAINING__PARAMS": json.dumps({"objective": "regression", "learning_rate": 0.1, "num_leaves": 8,
                                                   "min_data_in_leaf": 50, "verbose": -1}),
        "NUMERFLOW_TRAINING__NUM_THREADS": "2",
        "NUMERFLOW_YAHOO__BATCH_SIZE": "64",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    source = YahooSource(limiter=TokenBucket(10_000, 100), transport=yahoo, workers=4, pause_on_429_seconds=0)
    monkeypatch.setitem(prices_flow_module._sources, prices_flow_module.source_key(settings), source)
    return settings


def _ledger(settings) -> dict:
    path = Path(settings.data_dir) / "submissions" / "ledger.json"
    return json.loads(path.read_text())["submissions"] if path.exists() else {}


@pytest.mark.slow
def test_live_signals_round_uploads_once_then_skips(prefect_harness, live_env, numerai, yahoo):
    from numerflow.flows.round import round_flow

    result = round_flow(mode="live", model_name="my_signals")

    # Upload: the exact bytes of the submission file, for the right model and round.
    submission_path = Path(result.submission.path)
    assert result.upload.status == "uploaded"
    (upload,) = numerai.state.uploads
    assert upload["body"] == submission_path.read_bytes()
    assert submission_path.read_bytes().startswith(b"numerai_ticker,signal\n")
    (created,) = numerai.state.submissions
    assert created["operation"] == "createSignalsSubmission"
    assert created["variables"]["modelId"] == "model-signals-1"
    auth = numerai.calls("submissionUploadSignalsAuth")[-1]["variables"]
    assert auth["modelId"] == "model-signals-1" and auth["tournament"] == 11
    assert result.upload.round["number"] == 1200

    # The ledger: one entry, for this round and model, with the file's hash and Numerai's id.
    (entry,) = _ledger(live_env).values()
    assert (entry["tournament"], entry["round"], entry["model_name"]) == ("signals", 1200, "my_signals")
    assert entry["submission_id"] == created["id"]
    assert entry["sha256"] == result.submission.sha256

    # Every resolvable ticker got prices; KOSDAQ listings via the second candidate.
    submitted = pd.read_csv(submission_path)
    assert len(submitted) == 124 and UNRESOLVABLE not in set(submitted["numerai_ticker"])
    assert yahoo.history_requests("100000.KQ") and yahoo.chart_requests("100000.KS")
    ledger = read_parquet(Path(result.prices.ledger_path))
    assert ledger.set_index("ticker").loc["100000 KR", "symbol"] == "100000.KQ"
    assert ledger.set_index("ticker").loc[UNRESOLVABLE, "status"] == "unresolved"

    # Resolution summary and artifact.
    n = result.resolution
    assert n.totals == {"resolved": 112, "ambiguous": 12, "unresolved": 1, "total": 125}
    by_country = {r["country"]: r for r in n.report}
    assert by_country["KR"]["ambiguous"] == 12 and by_country["ZZ"]["unresolved"] == 1
    candidates = json.loads(Path(n.candidates_path).read_text())
    assert candidates["1 HK"] == ["0001.HK"] and candidates[UNRESOLVABLE] == []
    assert result.universe.round_number == 1200 and result.round_label == "round-1200"
    assert result.window["number"] == 1200
    _assert_artifact("ticker-resolution", "ZZ")

    # Trained on Numerai's targets (their train/validation files), not our own.
    assert result.model.numerai_targets.target_column == "target"
    assert result.model.trained is True

    # Second run of the same round: skipped, nothing uploaded again, model reused.
    again = round_flow(mode="live", model_name="my_signals")
    assert again.upload.status == "skipped"
    assert "already submitted" in again.upload.message
    assert len(numerai.state.uploads) == 1 and len(numerai.state.submissions) == 1
    assert len(_ledger(live_env)) == 1
    assert again.model.trained is False


@pytest.mark.slow
def test_closed_round_refuses_with_the_times_and_uploads_nothing(prefect_harness, live_env, numerai, yahoo):
    from numerflow.flows.round import round_flow

    closed = closed_round(1201)
    numerai.set_round("signals", closed)
    with pytest.raises(BadInputError, match=r"round 1201 is closed: it opens .* UTC, closes .* UTC") as caught:
        round_flow(mode="live", model_name="my_signals")
    close = pd.Timestamp(closed["closeStakingTime"])
    assert f"{close:%Y-%m-%d %H:%M}" in str(caught.value)
    assert numerai.state.uploads == [] and numerai.state.submissions == []
    assert _ledger(live_env) == {}
    assert yahoo.log == []  # refused before any price was fetched


@pytest.mark.slow
def test_live_crypto_round_uploads_symbol_signal(prefect_harness, live_env, numerai, yahoo):
    from numerflow.flows.round import round_flow

    result = round_flow(mode="live", tournament="crypto", model_name="my_crypto")

    submission_path = Path(result.submission.path)
    (upload,) = numerai.state.uploads
    assert upload["body"] == submission_path.read_bytes()
    assert upload["body"].split(b"\n", 1)[0] == b"symbol,signal"
    (created,) = numerai.state.submissions
    assert created["operation"] == "create_submission"
    assert created["variables"]["modelId"] == "model-crypto-1" and created["variables"]["tournament"] == 12
    submitted = pd.read_csv(submission_path)
    assert sorted(submitted["symbol"]) == CRYPTO_SYMBOLS
    assert submitted["signal"].between(0, 1, inclusive="neither").all()
    # Crypto bars have their own store: never ranked together with stocks.
    assert result.prices.source == "yahoo-crypto"
    assert yahoo.history_requests("C000-USD")
    assert result.resolution.totals == {"resolved": 110, "ambiguous": 0, "unresolved": 0, "total": 110}
    assert result.model.numerai_targets is None  # the fake lists no crypto training data
    (entry,) = _ledger(live_env).values()
    assert (entry["tournament"], entry["round"], entry["model_name"]) == ("crypto", 700, "my_crypto")


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["v1", "v2", "v2-ensemble"])
def test_live_crypto_round_trains_on_numerais_target_in_either_layout(prefect_harness, live_env, numerai, yahoo,
                                                                      monkeypatch, layout):
    """Numerai's Crypto data in the docs' layout (v1 columns: train_targets.parquet + live_universe.parquet)
    and in the example notebook's (v2: train.parquet + live.parquet, ``symbol`` as the index, feature_*,
    target_binned_return_20/60): the round trains on Numerai's target and submits ``symbol,signal``
    through the real CryptoAPI. With v2 the ``numerai`` feature set predicts from live.parquet; an ensemble
    of both v2 targets (each purged on its own calendar span) with the ``both`` feature set."""
    from fakes.numerai_crypto import crypto_v1_files, crypto_v2_files

    from numerflow.flows.round import round_flow

    start, end = HISTORY_START + dt.timedelta(days=90), TODAY - dt.timedelta(days=40)
    if layout == "v1":
        train, _ = crypto_v1_files(CRYPTO_SYMBOLS, start, end)
        numerai.add_dataset("crypto", "crypto/v2.0/train_targets.parquet", train)
    else:
        train, live = crypto_v2_files(CRYPTO_SYMBOLS, start, end, TODAY - dt.timedelta(days=1))
        numerai.add_dataset("crypto", "crypto/v2.0/train.parquet", train)
        numerai.add_dataset("crypto", "crypto/v2.0/live.parquet", live)
        monkeypatch.setenv("NUMERFLOW_TRAINING__FEATURE_SET", "numerai" if layout == "v2" else "both")
    if layout == "v2-ensemble":
        monkeypatch.setenv("NUMERFLOW_NUMERAI__ENSEMBLE_TARGETS",
                           json.dumps(["target_binned_return_20", "target_binned_return_60"]))

    result = round_flow(mode="live", tournament="crypto", model_name="my_crypto")

    targets = result.model.numerai_targets
    assert targets is not None and targets.version == "crypto/v2.0"
    assert targets.target_column == ("target" if layout == "v1" else "target_binned_return_20")
    assert result.universe.dataset.endswith("live_universe.parquet" if layout == "v1" else "live.parquet")
    trained_on = read_parquet(Path(targets.path))
    span = (trained_on["target_end_date"] - trained_on["numerai_date"]).dt.days
    assert (span == (40 if layout == "v1" else 28)).all()  # calendar days: 30 or 20, lag 2, margin
    if layout == "v2-ensemble":
        (_, sixty), = [m for m in targets.members if m[0] == "target_binned_return_60"]
        rows = read_parquet(Path(sixty))
        assert ((rows["target_end_date"] - rows["numerai_date"]).dt.days == 78).all()
    features = json.loads((Path(result.model.model_dir) / "meta.json").read_text())["features"]
    if layout == "v1":
        assert "feature_ret_20d" in features and not any(f.startswith("feature_bollinger") for f in features)
    elif layout == "v2":
        assert features[0].startswith("feature_bollinger") and "feature_ret_20d" not in features
    (upload,) = numerai.state.uploads
    assert upload["body"].split(b"\n", 1)[0] == b"symbol,signal"
    (created,) = numerai.state.submissions
    assert created["operation"] == "create_submission" and created["variables"]["tournament"] == 12
    submitted = pd.read_csv(Path(result.submission.path))
    assert sorted(submitted["symbol"]) == CRYPTO_SYMBOLS
    assert submitted["signal"].between(0, 1, inclusive="neither").all()


@pytest.mark.slow
def test_scheduled_crypto_round_submits_reports_and_completes(prefect_harness, live_env, numerai, yahoo):
    """The unattended Crypto round: universe ids in ``symbol`` all the way to the run report, which
    comes after the upload, so a report that cannot read them fails a round that already submitted."""
    from numerflow.flows.scheduled import scheduled_round_flow

    state = scheduled_round_flow.with_options(retries=0)(mode="live", tournament="crypto", model_name="my_crypto",
                                                         return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result.upload.status == "uploaded" and len(numerai.state.uploads) == 1
    assert result.prices.coverage == {"covered": 110, "universe": 110, "share": 1.0, "outside": 0}
    _assert_artifact("round-report", "110 of 110 universe tickers have prices (100.0%)")
    _assert_artifact("round-report", "yahoo-crypto")
    # Crypto's run report: MMC (no Crypto meta model for a live round's validation dates), never ALPHA.
    _assert_artifact("round-report", "validation MMC per weekly era: not scored")


def test_crypto_prices_get_their_own_store_and_usd_candidates(tmp_path, monkeypatch):
    """`numerflow ingest --tournament crypto`'s ticker list, and the store names (no flow run)."""
    from numerflow.tasks.core.store import Store, write_parquet

    settings = load_settings(data_dir=tmp_path, tournament="crypto", price_source="yahoo")
    write_parquet(Store(tmp_path).universe_path("crypto", "round-700"), pd.DataFrame({"symbol": ["BTC", "ETH"]}))
    assert prices_flow_module.tickers_to_ingest(settings) == {"BTC": ["BTC-USD"], "ETH": ["ETH-USD"]}
    inner = YahooSource(limiter=TokenBucket(10_000, 100), transport=FakeYahoo())
    monkeypatch.setitem(prices_flow_module._sources, prices_flow_module.source_key(settings), inner)
    wrapped = prices_flow_module.price_source(settings)
    assert wrapped.name == prices_flow_module.source_name(settings) == "yahoo-crypto"
    assert wrapped.fetch_outcomes == inner.fetch_outcomes  # same session and limiter
    signals = settings.model_copy(update={"tournament": "signals"})
    assert prices_flow_module.price_source(signals) is inner
    assert prices_flow_module.source_name(signals) == "yahoo"


def _assert_artifact(key: str, contains: str) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == key]
    assert artifacts, f"no artifact {key}"
    assert any(contains in json.dumps(a.data, default=str) for a in artifacts)


@pytest.mark.slow
def test_live_round_with_a_target_ensemble_both_feature_sets_and_alpha(prefect_harness, live_env, numerai, yahoo,
                                                                       monkeypatch):
    """Numerai's features (train/validation for history, live.parquet for the round) next to ours,
    an ensemble of two targets, and ALPHA from the validation neutralizer the fake serves."""
    from fakes.numerai_v21 import neutralizer_frames, parquet_bytes

    from numerflow.flows.round import round_flow

    tickers = [t for t, *_ in signals_universe()] + [UNRESOLVABLE]
    rng = np.random.default_rng(3)
    last_close = (pd.Timestamp(TODAY) - pd.offsets.BDay(1)).strftime("%Y-%m-%d")
    numerai.add_dataset("signals", "signals/v2.1/live.parquet", universe_parquet(tickers, extra={
        "date": [last_close] * len(tickers), "feature_country": [t[-2:] for t in tickers],
        "feature_momentum": rng.random(len(tickers)).astype("float32")}))
    validation = pd.read_parquet(io.BytesIO(numerai.state.datasets[11]["signals/v2.1/validation.parquet"]))
    neutral, weights = neutralizer_frames(tickers[:-1], pd.to_datetime(validation["date"].unique()), 6)
    numerai.add_dataset("signals", "signals/v2.1/validation_neutralizer.parquet", parquet_bytes(neutral))
    numerai.add_dataset("signals", "signals/v2.1/validation_sample_weights.parquet", parquet_bytes(weights))
    monkeypatch.setenv("NUMERFLOW_NUMERAI__ENSEMBLE_TARGETS", '["target", "target_raw_return_20"]')
    monkeypatch.setenv("NUMERFLOW_NUMERAI__ENSEMBLE_WEIGHTS", "[2, 1]")
    monkeypatch.setenv("NUMERFLOW_TRAINING__FEATURE_SET", "both")

    result = round_flow(mode="live", model_name="my_signals")

    assert result.upload.status == "uploaded" and len(numerai.state.uploads) == 1
    meta = json.loads((Path(result.model.model_dir) / "meta.json").read_text())
    assert meta["kind"] == "ensemble"
    assert [(m["target"], round(m["weight"], 3)) for m in meta["members"]] == [("target", 0.667),
                                                                              ("target_raw_return_20", 0.333)]
    assert {"feature_momentum", "feature_country", "feature_ret_20d"} <= set(meta["features"])
    assert result.model.alpha is not None and result.model.alpha["n_eras"] > 3
    assert "+features:both" in result.model.lineage_source and "target@0.667" in result.model.lineage_source
    report = Path(result.model.report.markdown).read_text()
    header = next(line for line in report.splitlines() if line.startswith("| per weekly era"))
    assert header.endswith("| ALPHA |")
    assert "`target_raw_return_20`" in report
    assert result.submission.checks["churn"].startswith("churn")


# ------------------------------------------------------------------ no secret anywhere, after any failure


def _prefect_database_bytes() -> bytes:
    """The harness server's SQLite database (and its WAL), after the API log worker has flushed."""
    from prefect.logging.handlers import APILogHandler
    from prefect.settings import get_current_settings

    APILogHandler().flush()
    url = get_current_settings().server.database.connection_url.get_secret_value()
    database = Path(url.split("///", 1)[1])
    return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))


async def _everything_prefect_kept() -> str:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        runs = await client.read_flow_runs(limit=200)
        logs = await client.read_logs(limit=200)
        artifacts = await client.read_artifacts(limit=200)
    return json.dumps([[r.model_dump(mode="json") for r in runs], [entry.model_dump(mode="json") for entry in logs],
                       [a.model_dump(mode="json") for a in artifacts]])


@pytest.mark.slow
def test_no_secret_is_kept_anywhere_after_any_failure(prefect_harness, live_env, numerai, yahoo, monkeypatch,
                                                      capfd, caplog):
    import asyncio

    from fakes.webhook import Receiver

    from numerflow.flows.scheduled import scheduled_round_flow

    secret, public = numerai.state.secret_key, numerai.state.public_id
    header = f"Token {public}${secret}"
    flow = scheduled_round_flow.with_options(retries=0)
    failure_paths = [
        # A CRLF env file's keys (stripped, so they work) and a server that echoes the auth header.
        ({"NUMERAI_SECRET_KEY": secret + "\r\n"}, ("createSignalsSubmission", "graphql_error", 200, header), "upload"),
        ({}, ("submissionUploadSignalsAuth", "http", 400, f"bad request for {header}"), "upload"),
        ({}, ("rounds", "http", 503, f"unavailable {header}"), "guard"),
        # A key with a control character inside: refused before any request, and never shown.
        ({"NUMERAI_SECRET_KEY": secret[:8] + "\r" + secret[8:]}, None, "guard"),
    ]
    with Receiver() as webhook:
        monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", webhook.url)
        for env, fault, failed_stage in failure_paths:
            with monkeypatch.context() as case:
                for name, value in env.items():
                    case.setenv(name, value)
                if fault is not None:
                    operation, kind, status, message = fault
                    numerai.fail(operation, kind, status=status, message=message, times=10)
                state = flow(mode="live", model_name="my_signals", force=True, return_state=True)
                numerai.state.faults.clear()
            assert state.is_failed(), state.message
            assert f"stage '{failed_stage}' failed" in state.message
            assert secret not in state.message and secret[8:] not in state.message
        assert len(webhook.messages) == len(failure_paths)
        sent_to_webhook = json.dumps(webhook.messages)

    assert numerai.state.submissions == []  # every path failed before Numerai accepted anything
    out, err = capfd.readouterr()
    stored = b"".join(p.read_bytes() for p in Path(live_env.data_dir).rglob("*") if p.is_file())
    kept = {
        "stdout/stderr": out + err,
        "python logs": caplog.text,
        "webhook": sent_to_webhook,
        "prefect runs, logs, artifacts": asyncio.run(_everything_prefect_kept()),
        "prefect database": _prefect_database_bytes().decode("latin-1"),
        "data dir": stored.decode("latin-1"),
    }
    for where, text in kept.items():
        for part in (secret, secret[8:], header):
            assert part not in text, f"the secret key is in the {where}"
    assert "invalid_keys" in kept["prefect runs, logs, artifacts"]  # the failures themselves were kept


@pytest.mark.slow
def test_two_scheduled_rounds_started_at_once_upload_once(prefect_harness, live_env, numerai, yahoo):
    from concurrent.futures import ThreadPoolExecutor

    from numerflow.flows.scheduled import scheduled_round_flow

    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(scheduled_round_flow, mode="live", model_name="my_signals", return_state=True)
                for _ in range(2)]
        states = [run.result() for run in runs]
    assert all(state.is_completed() for state in states), [s.message for s in states]
    assert len(numerai.state.uploads) == 1 and len(numerai.state.submissions) == 1
    assert len(_ledger(live_env)) == 1
    outcomes = sorted(s.name if s.name == "Skipped" else s.result().upload.status for s in states)
    # One uploaded; the other skipped at its upload (it waited on the ledger lock, then found the
    # entry) or, had it started later, at its guard.
    assert outcomes in (["Skipped", "uploaded"], ["skipped", "uploaded"]), outcomes
