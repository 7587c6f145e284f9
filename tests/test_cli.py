"""The CLI refuses bad input before anything runs or is written."""

from __future__ import annotations

import pytest

from numerflow.flows.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--demo", "--tickers", "0"], "--tickers: must be a whole number ≥ 1, got 0"),
        (["run", "--demo", "--years", "-1"], "--years: must be a finite number > 0, got -1"),
        (["run", "--demo", "--signal", "-0.5"], "--signal: must be a finite number ≥ 0, got -0.5"),
        (["run", "--demo", "--tickers", "many"], "--tickers: invalid _positive_int value: 'many'"),
        (["run", "--demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_exit_2_with_a_message_and_write_nothing(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--data-dir", str(tmp_path / "data")] if argv[0] == "run" else argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_help_explains_the_demo_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--demo", "--tickers", "--years", "--signal", "--seed", "--retrain", "--json"):
        assert option in out


def test_invalid_configuration_file_is_reported_before_the_round_starts(capsys, tmp_path, monkeypatch):
    config = tmp_path / "numerflow.toml"
    config.write_text("[training]\nnum_boost_round = 0\n")
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    code = main(["run", "--demo", "--data-dir", str(tmp_path / "data")])
    assert code == 2
    err = capsys.readouterr().err
    assert "invalid_config" in err and "training.num_boost_round" in err
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--demo", "--tournament", "crypto", "--tickers", "50"], "--tickers 50 is below Numerai's minimum"),
        # A live round needs Yahoo for Numerai's tickers: refused before Prefect starts or Numerai is asked.
        (["run", "--model", "m"], "live rounds ingest Numerai tickers through Yahoo or your own files"),
    ],
)
def test_rounds_it_cannot_run_are_refused_before_anything_starts(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "demo")
    code = main([*argv, "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_run_prints_each_stage_as_it_starts_and_ends_with_its_duration(prefect_harness, capsys, tmp_path,
                                                                        monkeypatch):
    import json
    import re

    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_BOOST_ROUND", "20")
    monkeypatch.setenv("NUMERFLOW_TRAINING__NUM_THREADS", "1")
    code = main(["run", "--demo", "--tickers", "120", "--years", "2.5", "--json", "--data-dir", str(tmp_path / "d")])
    assert code == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["upload"]["status"] == "dry_run"  # stdout stays machine-readable
    assert re.search(r"^ingest \[#+\] (\d+)/\1 batches$", err, re.M), err  # the ingest's progress bar
    lines = [line for line in err.splitlines() if line.startswith("numerflow: ")]
    stages = ["preflight", "universe", "resolution", "ingest", "dataset", "train", "predict", "validate", "upload"]
    expected = [pattern for name in stages for pattern in (rf"numerflow: {name} …$", rf"numerflow: {name} done in \d+\.\d s$")]
    assert len(lines) == len(expected), lines
    assert all(re.match(pattern, line) for pattern, line in zip(expected, lines, strict=True)), lines
    # A stage that fails says so, with its duration, and the round stops there.
    monkeypatch.setenv("NUMERFLOW_PRICE_SOURCE", "files")
    monkeypatch.setenv("NUMERFLOW_FILES__PATH", str(tmp_path / "nowhere.csv"))
    assert main(["run", "--demo", "--tickers", "120", "--years", "1", "--data-dir", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    # (a missing price file stops the ingest itself, with the file's name, not a later stage)
    assert re.search(r"numerflow: ingest FAILED after \d+\.\d s", err) and "numerflow: dataset" not in err
    assert "nowhere.csv does not exist" in err
