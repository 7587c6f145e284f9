"""Numerai's own view read back: neutral churn and its penalty (= numerai-tools), each round's payout
configuration (``roundScoreConfigs``) and the payout preview, diagnostics uploaded, polled, kept and
compared with numerflow's own figures, and live scores for Classic, through the REAL numerapi client
against the fake Numerai server."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_server import FakeNumeraiServer, open_round
from numerai_tools import scoring as nt_scoring
from numerai_tools import signals as nt_signals

from numerflow.flows.cli import main
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, write_json, write_parquet
from numerflow.tasks.numerai import diagnostics as diag
from numerflow.tasks.numerai.churn import neutral_churn, neutral_churn_penalty
from numerflow.tasks.numerai.payout import local_estimates, parse_round_payout, payout_preview

# --------------------------------------------------------------------------- neutral churn


def _signal_and_neutralizers(rng: np.random.Generator, tickers: list[str], k: int = 4):
    neutralizers = pd.DataFrame(rng.normal(size=(len(tickers), k)), index=tickers,
                                columns=[f"neutralizer_{i}" for i in range(k)])
    signal = pd.Series(neutralizers.to_numpy() @ rng.normal(size=k) + rng.normal(size=len(tickers)), index=tickers)
    return signal, neutralizers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neutral_churn_equals_numerai_tools(seed):
    rng = np.random.default_rng(seed)
    tickers = [f"T{i:04d} US" for i in range(600)]
    s1, n1 = _signal_and_neutralizers(rng, tickers)
    s2 = s1 + rng.normal(scale=0.5, size=len(s1))
    n2 = n1 + rng.normal(scale=0.1, size=n1.shape)
    # Real submissions: a few tickers come and go, ties happen.
    s2 = s2.drop(s2.index[:30])
    s1.iloc[:10] = s1.iloc[0]
    ours = neutral_churn(s1, s2, n1, n2)
    theirs = nt_signals.neutral_churn(s1.copy(), s2.copy(), n1.copy(), n2.copy())
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert 0 < ours < 2


def test_neutral_churn_sees_through_factor_moves_that_plain_churn_counts():
    rng = np.random.default_rng(7)
    tickers = [f"T{i:04d} US" for i in range(500)]
    residual = pd.Series(rng.normal(size=500), index=tickers)
    factors = pd.DataFrame(rng.normal(size=(500, 2)), index=tickers, columns=["a", "b"])
    # The same residual idea, a very different factor tilt: plain churn is large, neutral churn small.
    s1 = residual + 3 * factors["a"]
    s2 = residual - 3 * factors["a"]
    assert nt_signals.churn(s1.sort_index(), s2.sort_index()) > 1.0
    assert neutral_churn(s1, s2, factors, factors) < 0.1


def test_neutral_churn_needs_common_ids():
    rng = np.random.default_rng(3)
    s1, n1 = _signal_and_neutralizers(rng, [f"A{i}" for i in range(200)])
    s2, n2 = _signal_and_neutralizers(rng, [f"B{i}" for i in range(200)])
    assert neutral_churn(s1, s2, n1, n2) is None


@pytest.mark.parametrize("value", [0.0, 0.05, 0.1, 0.1000001, 0.15, 0.3, 1.0, 2.0])
@pytest.mark.parametrize("threshold,scale", [(0.1, 10.0), (0.2, 5.0), (0.0, 50.0)])
def test_neutral_churn_penalty_equals_numerai_tools(value, threshold, scale):
    assert neutral_churn_penalty(value, threshold, scale) == pytest.approx(
        nt_signals.neutral_churn_penalty(value, threshold, scale), abs=1e-12)


@pytest.mark.parametrize("args", [(math.nan,), (-0.1,), (2.5,), (0.2, 3.0), (0.2, 0.1, 0.0), (0.2, 0.1, math.inf)])
def test_neutral_churn_penalty_refuses_what_numerai_tools_only_asserts(args):
    with pytest.raises(BadInputError, match="invalid_neutral_churn"):
        neutral_churn_penalty(*args)


# --------------------------------------------------------------------------- payout configuration


def _config(name, display, *, payout, multiplier=None, clip=None, factor=None):
    return {"id": f"c-{name}", "scoreConfigId": name, "name": name, "version": "1", "displayName": display,
            "isPayout": payout, "isCanonScore": payout, "defaultMultiplier": multiplier, "minMultiplier": None,
            "maxMultiplier": None, "clipThreshold": clip, "payoutFactor": factor, "stakeThreshold": None,
            "totalScoreDays": 20, "returnsLagDays": 2, "dataDelayDays": 1, "universe": None,
            "roundNumberStart": 1, "roundNumberEnd": None, "scoringStart": None, "scoringEnd": None}


SIGNALS_CONFIGS = [
    _config("alpha", "alpha", payout=True, multiplier=0.3, clip=0.017),
    _config("meta_portfolio_contribution", "mpc", payout=True, multiplier=0.8, clip=0.017),
    _config("corr", "CORR20", payout=False),
]


def test_a_signals_preview_estimates_alpha_and_says_mpc_is_unknown():
    payout = parse_round_payout({"number": 1007, "payoutFactor": "0.5", "roundScoreConfigs": SIGNALS_CONFIGS},
                                "signals")
    assert [s.display_name for s in payout.paying] == ["alpha", "mpc"]
    estimates, sources = local_estimates({"alpha": {"mean": 0.02, "n_eras": 30}, "corr": {"mean": 0.05}}, "signals")
    preview = payout_preview(payout, estimates, sources=sources, stake=100.0)
    alpha, mpc = preview.lines
    assert alpha.estimate == 0.02 and "30 eras" in alpha.source
    assert mpc.estimate is None and "other users' stakes" in mpc.source
    assert preview.partial and preview.raw_score == pytest.approx(0.3 * 0.02)
    assert preview.fraction == pytest.approx(0.5 * 0.3 * 0.02)  # under the clip
    assert preview.amount == pytest.approx(100 * 0.5 * 0.3 * 0.02)
    assert "mpc unknown" in preview.text() and "partial" in preview.text()


def test_the_clip_bounds_the_preview_and_the_churn_penalty_cuts_only_gains():
    payout = parse_round_payout({"number": 9, "payoutFactor": 2.0, "roundScoreConfigs": SIGNALS_CONFIGS}, "signals")
    high = payout_preview(payout, {"alpha": 0.5}, stake=10.0, churn_penalty=0.25)
    assert high.fraction == pytest.approx(0.017) and high.amount == pytest.approx(10 * 0.017 * 0.25)
    low = payout_preview(payout, {"alpha": -0.5}, stake=10.0, churn_penalty=0.25)
    assert low.fraction == pytest.approx(-0.017) and low.amount == pytest.approx(-10 * 0.017)  # a burn is not cut


def test_a_score_without_config_or_estimate_is_said_not_guessed():
    # Classic: CORR pays, MMC's config is missing from the round: only CORR is previewed.
    classic = parse_round_payout({"number": 800, "payoutFactor": 1.0, "roundScoreConfigs": [
        _config("v2_corr20", "corr20v2", payout=True, multiplier=0.5, clip=0.05)]}, "classic")
    estimates, sources = local_estimates({"corr": {"mean": 0.03, "n_eras": 10}, "mmc": {"mean": 0.01}}, "classic")
    preview = payout_preview(classic, estimates, sources=sources)
    assert [line.display_name for line in preview.lines] == ["corr20v2"]
    assert preview.lines[0].estimate == 0.03 and not preview.partial
    assert preview.fraction == pytest.approx(0.015) and preview.amount is None  # no stake: a share only
    # No multiplier given for the paying score: no number is made up.
    bare = parse_round_payout({"number": 5, "roundScoreConfigs": [_config("mmc", "mmc", payout=True)]}, "crypto")
    crypto_estimates, crypto_sources = local_estimates({}, "crypto")
    nothing = payout_preview(bare, crypto_estimates, sources=crypto_sources, stake=5)
    assert nothing.fraction is None and nothing.lines[0].estimate is None
    assert "no paying score has a local estimate" in nothing.text()
    empty = payout_preview(parse_round_payout({"number": 5, "roundScoreConfigs": []}, "signals"), {"alpha": 0.1})
    assert empty.fraction is None and "no paying score" in empty.text()


def test_garbage_in_the_payout_configuration_is_a_clear_error():
    from numerflow.tasks.core.errors import NumerflowError

    with pytest.raises(NumerflowError, match="non-number"):
        parse_round_payout({"number": 1, "roundScoreConfigs": [_config("alpha", "alpha", payout=True,
                                                                       multiplier="lots")]}, "signals")


# --------------------------------------------------------------------------- diagnostics files


def _validation_predictions(rng: np.random.Generator, n_tickers: int = 150, weeks: int = 30) -> pd.DataFrame:
    dates = pd.bdate_range("2024-01-01", periods=weeks * 5)
    tickers = [f"T{i:03d} US" for i in range(n_tickers)]
    frame = pd.DataFrame({"ticker": np.tile(tickers, len(dates)), "date": np.repeat(dates, n_tickers)})
    signal = rng.normal(size=len(frame))
    frame["target"] = pd.cut(signal + rng.normal(scale=3, size=len(frame)), 5, labels=False) / 4
    frame["prediction"] = signal
    return frame


def test_the_signals_diagnostics_file_has_friday_eras_complete_and_ranked():
    rng = np.random.default_rng(0)
    predictions = _validation_predictions(rng)
    # A Friday with too few tickers is incomplete: Numerai refuses such eras.
    thin_friday = predictions["date"] == pd.Timestamp("2024-01-05")
    predictions = predictions[~thin_friday | (predictions["ticker"] < "T050")]
    frame = diag.signals_diagnostics_frame(predictions, min_tickers=100)
    assert list(frame.columns) == ["numerai_ticker", "date", "signal"]
    dates = pd.to_datetime(frame["date"])
    assert (dates.dt.dayofweek == 4).all() and "2024-01-05" not in set(frame["date"])
    assert frame.groupby("date").size().min() == 150
    assert frame["signal"].between(0, 1, inclusive="neither").all()
    with pytest.raises(BadInputError, match="invalid_diagnostics: .*Friday"):
        diag.signals_diagnostics_frame(predictions[predictions["date"].dt.dayofweek != 4])


def test_the_classic_diagnostics_file_is_id_and_prediction():
    frame = diag.classic_diagnostics_frame(pd.DataFrame({"id": ["a", "b", "c"], "era": ["1", "1", "1"],
                                                         "prediction": [0.3, 0.1, 0.2]}))
    assert list(frame.columns) == ["id", "prediction"] and frame["prediction"].tolist() == pytest.approx(
        [5 / 6, 1 / 6, 3 / 6])


def test_era_keys_match_across_spellings():
    assert diag.era_key("era0575") == diag.era_key("0575") == diag.era_key(575) == "575"
    assert diag.era_key(pd.Timestamp("2024-03-01")) == diag.era_key("2024-03-01T00:00:00+00:00") == "2024-03-01"


# --------------------------------------------------------------------------- diagnostics end to end


def _numerai_style_scorer(targets: pd.DataFrame, shift: float = 0.0):
    """What Numerai does with an uploaded Signals diagnostics file, here with numerai-tools: CORR per
    era against the targets, plus the summary fields."""
    table = targets.assign(date=targets["date"].dt.strftime("%Y-%m-%d")).set_index(["ticker", "date"])["target"]

    def score(body: bytes) -> dict:
        upload = pd.read_csv(io.BytesIO(body))
        eras = []
        for date, group in upload.groupby("date"):
            preds = group.set_index("numerai_ticker")["signal"].sort_index()
            target = table.xs(date, level="date").reindex(preds.index)
            corr = nt_scoring.numerai_corr(preds.to_frame(), target).iloc[0]
            eras.append({"era": date, "validationCorr": float(corr) + shift, "validationAlpha": None,
                         "validationFncV4": None, "validationMmc": None})
        values = np.array([e["validationCorr"] for e in eras])
        return {"validationCorrMean": float(values.mean()), "validationCorrSharpe": float(values.mean() / values.std()),
                "perEraDiagnostics": eras}

    return score


def _register_model(data_dir, name: str, predictions: pd.DataFrame) -> None:
    store = Store(data_dir)
    path = write_parquet(store.root / "predictions" / f"{name}-validation.parquet", predictions)
    model_dir = store.models_dir() / f"20260101T000000-{name}"
    model_dir.mkdir(parents=True)
    (model_dir / "model.txt").write_text("tree\n")
    write_json(model_dir / "meta.json", {"model_id": model_dir.name, "lineage": {"model": name},
                                         "validation_predictions": str(path),
                                         "validation_metrics": {"alpha": {"mean": 0.004, "n_eras": 30}}})


@pytest.fixture
def verdict_env(tmp_path, monkeypatch):
    with FakeNumeraiServer() as fake:
        fake.state.models.append({"id": "model-classic-1", "name": "my_classic", "tournament": 8})
        fake.set_round("signals", open_round(1007))
        fake.add_round("signals", {**open_round(1007), "payoutFactor": "0.5", "roundScoreConfigs": SIGNALS_CONFIGS})
        monkeypatch.setenv("NUMERAI_PUBLIC_ID", fake.state.public_id)
        monkeypatch.setenv("NUMERAI_SECRET_KEY", fake.state.secret_key)
        monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake.url)
        monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([{"name": "my_signals", "stake": 100}]))
        monkeypatch.setenv("NUMERFLOW_DIAGNOSTICS__POLL_WAITS_SECONDS", "[0, 0, 0]")
        yield fake


def test_diagnostics_are_uploaded_polled_kept_and_agree_with_local_scoring(verdict_env, capsys):
    fake = verdict_env
    rng = np.random.default_rng(11)
    predictions = _validation_predictions(rng)
    _register_model(load_settings().data_dir, "my_signals", predictions)
    fake.state.diagnostics_pending_polls = 2
    fake.state.diagnostics_scorer = _numerai_style_scorer(predictions)

    assert main(["diagnostics", "--upload", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (uploaded,) = fake.state.diagnostics
    assert uploaded["variables"]["modelId"] == "model-signals-1" and uploaded["variables"]["tournament"] == 11
    sent = pd.read_csv(io.BytesIO(uploaded["body"]))
    assert list(sent.columns) == ["numerai_ticker", "date", "signal"] and sent["date"].nunique() == 30
    assert len(fake.calls("diagnostics")) == 3  # pending, pending, done: the bounded schedule
    (model,) = report["models"]
    assert model["latest"]["status"] == "done" and model["latest"]["diagnostics_id"] == uploaded["id"]
    (corr,) = model["agreement"]
    local = diag.local_per_era(predictions)["corr"]
    assert corr["score"] == "corr" and corr["eras"] == 30 and not corr["flagged"]
    assert corr["local_mean"] == pytest.approx(local.mean(), abs=1e-12)
    assert abs(corr["difference"]) < 1e-9  # the same eras, the same numbers
    history = diag.history(Store(load_settings().data_dir), "signals")
    assert history[["model", "status"]].values.tolist() == [["my_signals", "done"]]
    assert history["corr_mean"].iloc[0] == pytest.approx(local.mean(), abs=1e-9)

    # Shown again later without fetching: from the history, no query.
    calls = len(fake.state.graphql_calls)
    assert main(["diagnostics", "--no-fetch"]) == 0
    out = capsys.readouterr().out
    assert "my_signals: diagnostics" in out and "done" in out and "corr" in out
    assert len(fake.state.graphql_calls) == calls


def test_a_pending_upload_is_polled_later_and_a_drift_is_flagged(verdict_env, capsys):
    fake = verdict_env
    rng = np.random.default_rng(12)
    predictions = _validation_predictions(rng)
    _register_model(load_settings().data_dir, "my_signals", predictions)
    fake.state.diagnostics_pending_polls = 5  # longer than the schedule: still pending when the command ends
    fake.state.diagnostics_scorer = _numerai_style_scorer(predictions, shift=0.02)
    assert main(["diagnostics", "--upload"]) == 0
    assert "pending" in capsys.readouterr().out
    store = Store(load_settings().data_dir)
    assert diag.history(store, "signals")["status"].tolist() == ["pending"]

    fake.state.diagnostics_pending_polls = 0
    assert main(["diagnostics", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (corr,) = report["models"][0]["agreement"]
    assert corr["flagged"] and corr["difference"] == pytest.approx(-0.02, abs=1e-9)
    assert diag.history(store, "signals")["status"].tolist() == ["done"]  # the same upload, now done


def test_diagnostics_without_keys_or_model_say_what_to_do(verdict_env, monkeypatch, capsys):
    assert main(["diagnostics", "--upload"]) == 2
    assert "no registered model with validation predictions" in capsys.readouterr().err
    monkeypatch.delenv("NUMERAI_SECRET_KEY")
    monkeypatch.delenv("NUMERAI_PUBLIC_ID")
    assert main(["diagnostics"]) == 2
    assert "--no-fetch" in capsys.readouterr().err
    assert main(["diagnostics", "--no-fetch"]) == 0
    assert "no diagnostics yet" in capsys.readouterr().out


def test_status_shows_the_rounds_payout_configuration_and_each_models_preview(verdict_env, capsys):
    _register_model(load_settings().data_dir, "my_signals", _validation_predictions(np.random.default_rng(1)))
    assert main(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    payout = status["payout"]
    assert payout["round"] == 1007 and payout["payout_factor"] == 0.5
    assert "0.3×alpha + 0.8×mpc" in payout["text"] and "CORR20" in payout["text"]
    (model,) = payout["models"]
    assert model["model"] == "my_signals" and model["stake"] == 100 and model["partial"]
    assert model["amount"] == pytest.approx(100 * 0.5 * 0.3 * 0.004)
    assert main(["status"]) == 0
    assert "mpc unknown" in capsys.readouterr().out


def test_classic_live_scores_are_fetched_and_shown(verdict_env, monkeypatch, capsys):
    fake = verdict_env
    for n in (800, 801):
        fake.add_score("model-classic-1", n, "corr20v2", 0.01 * (n - 799), day=20)
        fake.add_score("model-classic-1", n, "mmc", 0.001, day=20)
    monkeypatch.setenv("NUMERFLOW_MODELS", json.dumps([{"name": "my_classic"}]))
    assert main(["scores", "--tournament", "classic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tournament"] == "classic"
    (calls,) = {c["variables"]["tournament"] for c in fake.calls("submissionScores")},
    assert calls == {8}
    (model,) = report["models"]
    assert [r["round"] for r in model["rounds"]] == [801, 800] and model["rounds"][0]["corr20v2"] == pytest.approx(0.02)
