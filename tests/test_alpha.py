"""ALPHA over all dates equals numerai-tools ``scoring.alpha`` per date, and means what it says:
a signal that is a neutralizer factor has no ALPHA, one orthogonal to them keeps it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numerai_tools import scoring

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.model.alpha import alpha_by_date, alpha_by_date_of_columns
from numerflow.tasks.model.scoring import numerai_corr_by_date


def weighted_orthonormal(raw: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Columns [1, raw] made orthonormal under the weights (Nᵀ diag(w) N = I), as Numerai's are."""
    design = np.column_stack([np.ones(len(raw)), raw])
    q, _ = np.linalg.qr(np.sqrt(weights)[:, None] * design)
    return q / np.sqrt(weights)[:, None]


def random_panel(rng, n_dates=6, n_tickers=300, k=8, orthonormal=False, nan_share=0.0):
    rows = []
    for d in range(n_dates):
        n = n_tickers - d * 7  # dates of different sizes
        weights = rng.uniform(0.2, 2.0, n)
        raw = rng.normal(size=(n, k))
        neutralizers = weighted_orthonormal(raw, weights) if orthonormal else raw
        frame = pd.DataFrame(neutralizers, columns=[f"neutralizer_{j}" for j in range(neutralizers.shape[1])])
        frame["date"] = pd.Timestamp("2025-01-03") + pd.Timedelta(weeks=d)
        frame["ticker"] = [f"T{i:04d} US" for i in rng.permutation(n)]
        frame["weight"] = weights
        frame["target"] = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n)
        prediction = rng.normal(size=n)
        prediction[: n // 10] = np.round(prediction[: n // 10], 1)  # ties
        if nan_share:
            prediction[rng.random(n) < nan_share] = np.nan
        frame["prediction"] = prediction
        rows.append(frame)
    return pd.concat(rows, ignore_index=True).sample(frac=1.0, random_state=0).reset_index(drop=True)


def reference_alpha(panel: pd.DataFrame) -> pd.Series:
    columns = [c for c in panel.columns if c.startswith("neutralizer_")]
    out = {}
    for date, day in panel.groupby("date"):
        day = day.set_index("ticker").sort_index()
        out[date] = scoring.alpha(day[["prediction"]], day[columns], day["weight"], day["target"])["prediction"]
    return pd.Series(out, dtype="float64")


@pytest.mark.parametrize("nan_share", [0.0, 0.1])
def test_alpha_equals_numerai_tools_per_date(nan_share):
    panel = random_panel(np.random.default_rng(3), nan_share=nan_share)
    columns = [c for c in panel.columns if c.startswith("neutralizer_")]
    ours = alpha_by_date(panel["prediction"], panel["target"], panel[columns], panel["weight"], panel["date"])
    expected = reference_alpha(panel)
    assert ours.index.equals(expected.index)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    assert np.abs(ours).max() > 1e-3  # the scores are not trivially zero


def test_many_signals_in_one_pass_score_as_each_alone(monkeypatch):
    import numerflow.tasks.model.alpha as alpha_module

    rng = np.random.default_rng(5)
    panel = random_panel(rng)
    columns = [c for c in panel.columns if c.startswith("neutralizer_")]
    signals = pd.DataFrame({"prediction": panel["prediction"], "noise": rng.normal(size=len(panel)),
                            "holes": rng.normal(size=len(panel))})
    signals.loc[rng.random(len(panel)) < 0.2, "holes"] = np.nan  # its own NaN rows: not the others'
    signals.loc[:40, "noise"] = np.nan
    together = alpha_by_date_of_columns(signals, panel["target"], panel[columns], panel["weight"], panel["date"])
    assert list(together.columns) == list(signals.columns)
    for name in signals.columns:
        alone = alpha_by_date(signals[name], panel["target"], panel[columns], panel["weight"], panel["date"])
        np.testing.assert_allclose(together[name].to_numpy(), alone.to_numpy(), rtol=0, atol=1e-12)
    assert np.abs(together["prediction"]).max() > 1e-3
    monkeypatch.setattr(alpha_module, "_ALPHA_BLOCK_CELLS", 300 * 20)  # one date per block
    np.testing.assert_allclose(alpha_by_date_of_columns(signals, panel["target"], panel[columns], panel["weight"],
                                                        panel["date"]).to_numpy(), together.to_numpy(), atol=1e-12)


def test_float32_neutralizers_and_many_small_blocks_give_the_same_scores(monkeypatch):
    import numerflow.tasks.model.alpha as alpha_module

    panel = random_panel(np.random.default_rng(4))
    columns = [c for c in panel.columns if c.startswith("neutralizer_")]
    args = (panel["prediction"], panel["target"], panel[columns].to_numpy(np.float32), panel["weight"], panel["date"])
    whole = alpha_by_date(*args)
    monkeypatch.setattr(alpha_module, "_ALPHA_BLOCK_CELLS", 300 * 8)  # one date per block
    np.testing.assert_allclose(alpha_by_date(*args).to_numpy(), whole.to_numpy(), atol=1e-12)
    # float32 neutralizers are scored as numerai-tools scores their float64 values.
    panel[columns] = panel[columns].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(whole.to_numpy(), reference_alpha(panel).to_numpy(), atol=1e-9)


def test_a_factor_signal_has_corr_but_no_alpha_an_orthogonal_one_keeps_it():
    rng = np.random.default_rng(5)
    panel = random_panel(rng, n_dates=40, n_tickers=800, k=5, orthonormal=True)
    factor = panel["neutralizer_1"].to_numpy()
    factor = factor / factor.std()  # the orthonormal column has scale 1/sqrt(n)
    own = rng.normal(size=len(panel))  # a signal the neutralizers know nothing about
    panel["target"] = factor + own + rng.normal(scale=2.0, size=len(panel))
    columns = [c for c in panel.columns if c.startswith("neutralizer_")]

    def alpha_t_stat(prediction: np.ndarray) -> tuple[float, float]:
        scores = alpha_by_date(prediction, panel["target"], panel[columns], panel["weight"], panel["date"])
        return scores.mean(), scores.mean() / (scores.std(ddof=1) / np.sqrt(len(scores)))

    _, factor_t = alpha_t_stat(factor)
    own_mean, own_t = alpha_t_stat(own)
    factor_corr = numerai_corr_by_date(factor, panel["target"], panel["date"])
    assert factor_corr.mean() > 0.1  # CORR sees the factor's return...
    assert abs(factor_t) < 3, factor_t  # ...ALPHA does not pay for it
    assert own_mean > 0 and own_t > 5, own_t


def test_bad_input_is_refused():
    with pytest.raises(BadInputError, match="scoring_bad_input"):
        alpha_by_date([0.1, 0.2], [0.5, 0.5], np.ones((3, 2)), [1.0, 1.0], ["a", "a"])
    with pytest.raises(BadInputError, match="infinite"):
        alpha_by_date([0.1, 0.2], [0.5, 0.5], np.array([[1.0], [np.inf]]), [1.0, 1.0], ["a", "a"])
