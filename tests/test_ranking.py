import numpy as np
import pandas as pd
from numerai_tools.scoring import tie_kept_rank

from numerflow.tasks.core.ranking import HeldRowRanks, group_codes, rank_by_group, rank_rows


def test_rank_by_group_equals_numerai_tools_tie_kept_rank_per_group():
    rng = np.random.default_rng(0)
    n = 5000
    dates = rng.integers(0, 30, n)
    # Rounded values force many ties; some NaNs must be ignored, not counted.
    values = np.round(rng.normal(size=n), 1)
    values[rng.random(n) < 0.05] = np.nan
    ours = rank_by_group(values, group_codes(dates))
    frame = pd.DataFrame({"date": dates, "v": values})
    for _date, block in frame.groupby("date"):
        expected = tie_kept_rank(block[["v"]])["v"].to_numpy()
        np.testing.assert_allclose(ours[block.index.to_numpy()], expected, rtol=0, atol=1e-12, equal_nan=True)


def test_rank_by_group_is_strictly_inside_unit_interval_and_keeps_nan():
    values = np.array([3.0, np.nan, 1.0, 1.0, 2.0])
    ranks = rank_by_group(values, np.zeros(5, dtype=np.int64))
    assert np.isnan(ranks[1])
    assert ranks[2] == ranks[3]  # ties keep one rank
    finite = ranks[~np.isnan(ranks)]
    assert (finite > 0).all() and (finite < 1).all()
    assert ranks[0] == finite.max()


def test_padded_and_lexsort_paths_agree_with_pandas_on_unbalanced_groups():
    from numerflow.tasks.core import ranking

    rng = np.random.default_rng(1)
    # One huge group and many tiny ones forces the lexsort fallback; balanced groups the padded path.
    unbalanced = np.r_[np.zeros(5000, dtype=np.int64), np.arange(1, 50).repeat(2)]
    balanced = rng.integers(0, 40, 5000)
    for groups in (unbalanced, balanced):
        values = np.round(rng.normal(size=len(groups)), 1)
        values[rng.random(len(groups)) < 0.1] = np.nan
        frame = pd.DataFrame({"g": groups, "v": values})
        expected = frame.groupby("g")["v"].transform(lambda s: (s.rank(method="average") - 0.5) / s.count())
        np.testing.assert_allclose(ranking.rank_by_group(values, groups), expected, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(ranking._rank_lexsort(values, groups), expected, atol=1e-12, equal_nan=True)


def test_all_nan_group_and_single_value_group():
    values = np.array([np.nan, np.nan, 5.0, 1.0, 2.0])
    groups = np.array([0, 0, 1, 2, 2])
    ranks = rank_by_group(values, groups)
    assert np.isnan(ranks[:2]).all()
    assert ranks[2] == 0.5
    assert ranks[3] == 0.25 and ranks[4] == 0.75


def test_rank_rows_equals_tie_kept_rank_per_row_across_blocks_and_in_place(monkeypatch):
    from numerflow.tasks.core import ranking

    monkeypatch.setattr(ranking, "_BLOCK_VALUES", 64)  # 7 columns -> 9 rows per block: many blocks
    rng = np.random.default_rng(3)
    matrix = np.round(rng.normal(size=(50, 7)), 0)  # heavy ties
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    matrix[4] = np.nan  # a row with no values
    matrix[5, :3] = [np.inf, -np.inf, np.inf]  # real infinities rank (and +inf ties)
    expected = tie_kept_rank(pd.DataFrame(matrix.T)).to_numpy().T
    before = matrix.copy()
    np.testing.assert_allclose(ranking.rank_rows(matrix), expected, atol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(matrix, before)  # input untouched when out is not given
    as_float32 = ranking.rank_rows(matrix, out=np.empty(matrix.shape, dtype=np.float32))
    np.testing.assert_array_equal(as_float32, expected.astype(np.float32))
    ranking.rank_rows(matrix, out=matrix)
    np.testing.assert_allclose(matrix, expected, atol=1e-12, equal_nan=True)
    assert np.isnan(matrix[4]).all()


def test_held_row_ranks_equal_rank_rows_bit_for_bit_with_ties_infinities_and_absent_cells():
    """Ranking rows built from a few held state rows (sorted once each) gives rank_rows' exact float64 ranks."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        k, width, m = int(rng.integers(1, 8)), int(rng.integers(1, 40)), int(rng.integers(1, 60))
        states = np.round(rng.normal(size=(k, width)), 1 if trial % 2 else 6)  # many ties / almost none
        states[rng.random((k, width)) < 0.2] = np.nan
        states[rng.random((k, width)) < (0.1 if trial % 3 == 0 else 0)] = np.inf
        states[rng.random((k, width)) < (0.1 if trial % 4 == 0 else 0)] = -np.inf
        state_of_row = rng.integers(0, k, m)
        present = rng.random((m, width)) < 0.7
        expected = rank_rows(np.where(present, states[state_of_row], np.nan))
        ranked, columns = HeldRowRanks(states).rank(state_of_row, present)
        got = np.full((m, width), -1.0)
        np.put_along_axis(got, columns, ranked, axis=1)
        assert np.array_equal(got, expected, equal_nan=True)
