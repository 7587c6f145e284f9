"""benchmarks/bench_round.py at a small size: a smoke check of its cases (never timed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_round import main  # noqa: E402


@pytest.mark.slow
def test_first_round_daily_round_and_baseline_run_and_are_reported(tmp_path, capsys):
    results = main(["--tickers", "120", "--years", "2.5", "--cases", "first,daily,baseline",
                    "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "round.json")])
    first, daily, baseline = results
    assert [r["case"] for r in results] == ["first", "daily", "baseline"]
    # The first round trains on weekly eras; the daily round, one business day later, reuses it.
    assert first["model"]["trained"] and not daily["model"]["trained"]
    assert daily["model"]["id"] == first["model"]["id"]
    assert daily["dataset"]["last_date"] > first["dataset"]["last_date"]
    # The demo market appends like a real source: the daily ingest stores about one new bar per live
    # ticker and re-pulls only the few whose dividend fell on the new day.
    assert daily["prices"]["repulled"] <= 5 and 0 < daily["prices"]["rows"] < 0.05 * first["prices"]["rows"]
    # The baseline fits every daily training row of the same split: ~5 per weekly row.
    assert 4 * first["train_rows"] < baseline["train_rows"] < 6 * first["train_rows"]
    for result in results:
        assert result["peak_rss_gb"] > 0 and result["wall_s"] > 0
        assert result["validation"]["n_eras"] == first["validation"]["n_eras"]
    assert {"ingest", "dataset", "train", "predict"} <= {s["stage"] for s in first["stages"]}
    assert (tmp_path / "round.json").exists()
    table = capsys.readouterr().out
    assert "| **baseline** | **whole**" in table and "era CORR mean ± SE" in table
