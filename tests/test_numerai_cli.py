"""`numerflow universe / submit / status` against the fake Numerai (real numerapi, 127.0.0.1)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fakes.numerai_fixtures import fake_numerai, us_tickers  # noqa: F401 - fixtures
from fakes.numerai_server import closed_round

from numerflow.flows.cli import main


@pytest.fixture
def cli_env(fake_numerai, monkeypatch, tmp_path):
    # The variable name (below NUMERFLOW_NUMERAI__API_URL and numerflow.toml in precedence).
    monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake_numerai.url)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NUMERFLOW_NUMERAI__MODEL_NAME", "my_signals")
    return tmp_path


def _with_keys(monkeypatch, fake):
    monkeypatch.setenv("NUMERAI_PUBLIC_ID", fake.state.public_id)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", fake.state.secret_key)


def _submission(path, tickers):
    pd.DataFrame({"numerai_ticker": tickers,
                  "signal": [(i + 0.5) / len(tickers) for i in range(len(tickers))]}).to_csv(path, index=False)
    return path


def test_universe_command_snapshots_and_reports_resolution(cli_env, capsys):
    assert main(["universe", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["round"] == 1001 and payload["tickers"] == 150
    assert payload["dataset"] == "signals/v2.1/live.parquet"
    assert payload["resolution"]["totals"] == {"resolved": 150, "ambiguous": 0, "unresolved": 0, "total": 150}
    candidates = json.loads(open(payload["resolution"]["candidates_path"]).read())
    assert candidates["T0000 US"] == ["T0000"]


def test_submit_then_skip_then_force_then_status(cli_env, fake_numerai, monkeypatch, capsys):
    _with_keys(monkeypatch, fake_numerai)
    assert main(["universe"]) == 0
    file = _submission(cli_env / "sub.csv", us_tickers(150))
    assert main(["submit", str(file)]) == 0
    assert "uploaded" in capsys.readouterr().out
    assert main(["submit", str(file)]) == 0
    assert "skipped — pass --force" in capsys.readouterr().out
    assert main(["submit", str(file), "--force", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "uploaded"
    assert len(fake_numerai.state.submissions) == 2
    assert fake_numerai.state.uploads[-1]["body"] == file.read_bytes()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "round 1001, OPEN" in out and "my_signals" in out and fake_numerai.state.submissions[-1]["id"] in out
    assert fake_numerai.state.secret_key not in out


def test_submit_without_keys_is_a_dry_run(cli_env, fake_numerai, capsys):
    assert main(["universe"]) == 0
    file = _submission(cli_env / "sub.csv", us_tickers(150))
    assert main(["submit", str(file)]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN — no Numerai API keys" in out and "format only" not in out  # checked against the universe
    assert fake_numerai.state.uploads == []


def test_a_dry_run_with_no_universe_to_check_against_says_its_format_only_was_checked(cli_env, capsys):
    file = _submission(cli_env / "sub.csv", us_tickers(150))
    assert main(["submit", str(file)]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN" in out and "its format only was checked: no signals universe snapshot" in out


def test_submit_in_a_closed_round_exits_2_with_the_times(cli_env, fake_numerai, monkeypatch, capsys):
    _with_keys(monkeypatch, fake_numerai)
    assert main(["universe"]) == 0
    fake_numerai.set_round("signals", closed_round(1001))
    file = _submission(cli_env / "sub.csv", us_tickers(150))
    assert main(["submit", str(file)]) == 2
    err = capsys.readouterr().err
    assert "round_closed: signals round 1001 is closed: it opens" in err and "closes" in err
    assert fake_numerai.state.uploads == []


def test_submit_for_a_crypto_model_in_signals_exits_2(cli_env, fake_numerai, monkeypatch, capsys):
    _with_keys(monkeypatch, fake_numerai)
    assert main(["universe"]) == 0
    file = _submission(cli_env / "sub.csv", us_tickers(150))
    assert main(["submit", str(file), "--model", "my_crypto"]) == 2
    assert "wrong_tournament_model" in capsys.readouterr().err
    assert main(["status", "--tournament", "crypto", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["round"]["number"] == 501


@pytest.mark.slow
def test_five_concurrent_submits_upload_once(cli_env, fake_numerai, monkeypatch):
    """Exactly once across processes: the ledger lock spans check-then-upload, so of five
    `numerflow submit` processes started together one uploads and four skip."""
    import subprocess
    import sys

    _with_keys(monkeypatch, fake_numerai)
    assert main(["universe"]) == 0
    file = _submission(cli_env / "sub.csv", us_tickers(150))
    procs = [subprocess.Popen([sys.executable, "-m", "numerflow.flows.cli", "submit", str(file), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, [err[-500:] for _, err in results]
    statuses = sorted(json.loads(out)["status"] for out, _ in results)
    assert statuses == ["skipped"] * 4 + ["uploaded"]
    assert len(fake_numerai.state.uploads) == 1 and len(fake_numerai.state.submissions) == 1


def test_universe_command_reads_bloomberg_codes_and_writes_the_template(cli_env, fake_numerai, monkeypatch, capsys):
    from fakes.numerai_fixtures import universe_parquet

    monkeypatch.setenv("NUMERFLOW_YAHOO__LOOKUP", "false")  # no Yahoo search: the rules alone
    tickers = us_tickers(150) + ["VOD LN", "ERICB SS", "SAP GR", "RY CN", "ODD ZZ"]
    fake_numerai.add_dataset("signals", "signals/v2.1/live.parquet", universe_parquet(tickers))
    template = cli_env / "overrides.csv"
    assert main(["universe", "--overrides-template", str(template)]) == 0
    out = capsys.readouterr().out
    assert "country codes read as Bloomberg's" in out
    assert "unresolved ODD ZZ: no Yahoo suffix rule for country ZZ" in out
    assert main(["universe", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    candidates = json.loads(open(payload["resolution"]["candidates_path"]).read())
    # Bloomberg's GR is Germany and CN Canada in this universe; the report counts them there.
    assert candidates["SAP GR"] == ["SAP.DE", "SAP.F"] and candidates["RY CN"] == ["RY.TO", "RY.V"]
    assert candidates["VOD LN"] == ["VOD.L"] and candidates["ERICB SS"] == ["ERIC-B.ST", "ERICB.ST"]
    countries = {row["country"] for row in payload["resolution"]["report"]}
    assert {"DE", "CA", "GB", "SE"} <= countries and not {"LN", "SS", "GR", "CN"} & countries
    assert payload["resolution"]["details"]["country_codes"] == "bloomberg"
    text = template.read_text()
    assert "ODD ZZ," in text and "VOD LN" not in text  # only what is left to fill in
