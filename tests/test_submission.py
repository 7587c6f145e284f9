import numpy as np
import pandas as pd
import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.numerai.submission import build_submission, validate_submission, write_submission


def universe(n=150):
    return pd.Series([f"T{i:03d} US" for i in range(n)])


def predictions(n=150, values=None):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"ticker": universe(n), "prediction": rng.normal(size=n) if values is None else values})


def test_signal_is_tie_kept_rank_strictly_inside_unit_interval():
    values = np.r_[np.arange(149, dtype=float), 0.0]  # one tie at the bottom
    sub = build_submission(predictions(values=values))
    assert list(sub.columns) == ["numerai_ticker", "signal"]
    assert sub["signal"].between(0, 1, inclusive="neither").all()
    assert sub["signal"].iloc[0] == sub["signal"].iloc[-1]  # ties keep one rank
    assert sub["signal"].iloc[148] == sub["signal"].max()
    # order is preserved: rank is monotone in the prediction
    assert np.all(np.diff(sub["signal"].iloc[:149]) > 0)
    summary = validate_submission(sub, universe())
    assert summary["in_universe"] == 150


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_predictions_refused(bad):
    values = np.arange(150, dtype=float)
    values[3] = bad
    with pytest.raises(BadInputError, match="invalid_predictions: 1 predictions are NaN or infinite"):
        build_submission(predictions(values=values))


def test_duplicates_refused_and_nothing_written(tmp_path):
    sub = build_submission(predictions())
    sub.loc[1, "numerai_ticker"] = sub.loc[0, "numerai_ticker"]
    with pytest.raises(BadInputError, match="duplicate tickers"):
        validate_submission(sub, universe())


def test_fewer_than_min_universe_tickers_refused():
    sub = build_submission(predictions(99))
    with pytest.raises(BadInputError, match="not_enough_tickers: only 99 of 99"):
        validate_submission(sub, universe())
    # Tickers outside the universe do not count towards the minimum.
    outsiders = build_submission(pd.DataFrame({"ticker": [f"X{i} GB" for i in range(150)],
                                               "prediction": np.arange(150.0)}))
    with pytest.raises(BadInputError, match="only 0 of 150"):
        validate_submission(outsiders, universe())


def test_values_on_the_boundary_refused_even_though_numerai_tools_accepts_them():
    sub = build_submission(predictions())
    sub.loc[0, "signal"] = 0.0
    with pytest.raises(BadInputError, match=r"strictly inside \(0, 1\)"):
        validate_submission(sub, universe())


def test_write_is_atomic_and_hash_matches_bytes(tmp_path):
    import hashlib

    sub = build_submission(predictions())
    path, sha = write_submission(sub, tmp_path / "r" / "submission.csv")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha
    assert data.splitlines()[0] == b"numerai_ticker,signal"
    back = pd.read_csv(path)
    np.testing.assert_allclose(back["signal"], sub["signal"], rtol=0, atol=0)
    assert [p.name for p in path.parent.iterdir()] == ["submission.csv"]
