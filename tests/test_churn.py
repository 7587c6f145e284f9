"""Churn and turnover against the model's own recent submissions, equal to numerai-tools, and the
gate before upload: ``refuse`` blocks the real upload (fake Numerai, real numapi), ``warn`` uploads
and says so."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from fakes.numerai_fixtures import (  # noqa: F401 - fixtures
    fake_numerai,
    keys,
    make_client,
    numerai_settings,
    sleeps,
    us_tickers,
)
from numerai_tools import scoring, signals

from numerflow.tasks.core.config import SubmissionSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.churn import (
    check_against_history,
    churn,
    portfolio_weights,
    recent_submissions,
    record_submission,
    turnover,
)
from numerflow.tasks.numerai.submit import submit_file
from numerflow.tasks.numerai.universe import fetch_universe


def _pair(rng, n=400, drift=0.3, drop=20):
    ids = [f"T{i:04d} US" for i in range(n)]
    a = pd.Series(rng.normal(size=n), index=ids)
    b = pd.Series(a.to_numpy() + drift * rng.normal(size=n), index=ids)
    b.iloc[:5] = b.iloc[5]  # ties
    return a.iloc[drop:], b.iloc[: n - drop]  # 95 % common tickers


def test_churn_and_turnover_equal_numerai_tools():
    rng = np.random.default_rng(0)
    for drift in (0.05, 0.3, 2.0):
        a, b = _pair(rng, drift=drift)
        assert churn(a, b) == pytest.approx(signals.churn(a, b), abs=1e-9)
        # numerai-tools' weights: rank → gaussianise → power 1.5, centred and normalised (neutral to the mean).
        def reference_weights(s: pd.Series) -> pd.Series:
            frame = s.sort_index().to_frame("s")
            return scoring.weight_normalize(scoring.center(scoring.tie_kept_rank__gaussianize__pow_1_5(frame)))["s"]
        np.testing.assert_allclose(portfolio_weights(a).sort_index().to_numpy(), reference_weights(a).to_numpy(),
                                   atol=1e-12)
        assert turnover(a, b) == pytest.approx(signals.turnover(reference_weights(a), reference_weights(b)), abs=1e-9)
    assert churn(a, a) == pytest.approx(0.0, abs=1e-12)


def test_too_few_common_tickers_is_not_compared():
    rng = np.random.default_rng(1)
    a, b = _pair(rng, drop=120)  # 70 % common
    assert churn(a, b) is None and turnover(a, b) is None


def test_history_keeps_the_last_week_newest_first(tmp_path):
    store = Store(tmp_path)
    now = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
    frame = pd.DataFrame({"numerai_ticker": us_tickers(150), "signal": np.linspace(0.01, 0.99, 150)})
    for days, label in [(10, "round-990"), (3, "round-997"), (1, "round-999"), (0, "round-1000")]:
        record_submission(store, "signals", "m", label, frame, now - dt.timedelta(days=days))
    recent = recent_submissions(store, "signals", "m", lookback_days=7, limit=5, exclude_round="round-1000", now=now)
    assert [p.round_label for p in recent] == ["round-999", "round-997"]
    assert recent_submissions(store, "signals", "m", lookback_days=7, limit=1, now=now)[0].round_label == "round-1000"


def _write(path, tickers, signal):
    pd.DataFrame({"numerai_ticker": tickers, "signal": signal}).to_csv(path, index=False)
    return path


@pytest.fixture
def last_week(numerai_settings, make_client):
    """The universe of round 1001 and this model's submission of two days ago."""
    store = Store(numerai_settings.data_dir)
    fetch_universe(make_client(with_keys=False), store)
    tickers = us_tickers(150)
    previous = pd.DataFrame({"numerai_ticker": tickers, "signal": (np.arange(150) + 0.5) / 150})
    record_submission(store, "signals", "my_signals", "round-1000", previous,
                      dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    return tickers


def test_refuse_blocks_the_upload_naming_the_churn_and_threshold(fake_numerai, numerai_settings, make_client,
                                                                 last_week, tmp_path):
    settings = numerai_settings.model_copy(update={"submission": SubmissionSettings(churn_gate="refuse")})
    reversed_signal = (np.arange(150)[::-1] + 0.5) / 150  # the opposite ranking: churn 2
    path = _write(tmp_path / "sub.csv", last_week, reversed_signal)
    with pytest.raises(BadInputError, match="churn_gate") as err:
        submit_file(path, settings, client=make_client())
    assert "churn 2.000 >= threshold 0.150" in str(err.value)
    assert fake_numerai.state.uploads == [] and fake_numerai.state.submissions == []


def test_warn_uploads_and_says_so(fake_numerai, numerai_settings, make_client, last_week, tmp_path):
    rng = np.random.default_rng(2)
    signal = pd.Series((np.arange(150) + 0.5) / 150 + rng.normal(scale=0.3, size=150)).rank(pct=True) - 0.5 / 150
    path = _write(tmp_path / "sub.csv", last_week, signal.to_numpy())
    outcome = submit_file(path, numerai_settings, client=make_client())  # default gate: warn
    assert outcome.status == "uploaded" and len(fake_numerai.state.uploads) == 1
    report = outcome.validation["churn"]
    assert report["max_churn"] > 0.15 and report["compared_with"][0]["round"] == "round-1000"
    assert "churn gate warning: churn" in outcome.message and "threshold 0.150" in outcome.message
    # The upload is kept for the next round's comparison.
    store = Store(numerai_settings.data_dir)
    assert [p.round_label for p in recent_submissions(store, "signals", "my_signals", lookback_days=7, limit=5)][0] \
        == "round-1001"


def test_within_thresholds_no_warning_and_first_submission_has_nothing_to_compare(tmp_path):
    settings = SubmissionSettings(churn_gate="refuse")
    store = Store(tmp_path)
    frame = pd.DataFrame({"numerai_ticker": us_tickers(150), "signal": (np.arange(150) + 0.5) / 150})
    first = check_against_history(store, settings, "signals", "m", "round-1", frame)
    assert first["warning"] is None and first["max_churn"] is None and "nothing to compare" in first["note"]
    record_submission(store, "signals", "m", "round-1", frame)
    same = check_against_history(store, settings, "signals", "m", "round-2", frame)
    assert same["max_churn"] == pytest.approx(0.0, abs=1e-12) and same["warning"] is None
