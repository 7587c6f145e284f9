"""benchmarks/bench_append.py at a small size: a smoke check (never timed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_append import main  # noqa: E402


def test_day_two_is_appended_and_equals_the_whole_rebuild(tmp_path, capsys):
    result = main(["--tickers", "150", "--years", "2", "--days", "3", "--workdir", str(tmp_path / "work"),
                   "--out", str(tmp_path / "append.json")])
    steps = result["steps"]
    assert result["bit_identical"] is True
    assert steps["day 1, whole"]["built"].startswith("built whole: no earlier dataset")
    assert steps["day 2, appended"]["built"].startswith("appended")
    assert steps["day 2, whole"]["built"].startswith("built whole")
    # Three new business days of ~150 tickers (some on holiday) on top of day 1's rows.
    assert 3 * 100 < steps["day 2, appended"]["rows"] - steps["day 1, whole"]["rows"] <= 3 * 150
    assert steps["day 2, appended"]["rows"] == steps["day 2, whole"]["rows"]
    assert json.loads((tmp_path / "append.json").read_text())["bit_identical"] is True
    assert "| day 2, appended |" in capsys.readouterr().out
