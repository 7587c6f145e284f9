"""Bad input a user (or a CRLF env file) can give: each case ends in a clear, tagged error that
names the problem, shows no secret, and leaves nothing written outside the data dir."""

from __future__ import annotations

import pytest

from numerflow.flows.cli import main
from numerflow.tasks.core.config import NumeraiSettings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.numerai.client import resolve_keys

PUBLIC = "PUBLICID0123456789ABCDEF"
SECRET = "SECRETKEY0123456789ABCDEFGHIJKLMN"


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize("public, secret", [(PUBLIC + "\r", SECRET + "\r\n"), ("  " + PUBLIC, SECRET + "\n")])
def test_keys_from_a_crlf_env_file_are_stripped(public, secret):
    keys = resolve_keys(NumeraiSettings(), env={"NUMERAI_PUBLIC_ID": public, "NUMERAI_SECRET_KEY": secret})
    assert keys is not None and keys.secrets() == (PUBLIC, SECRET)


@pytest.mark.parametrize("secret", [SECRET[:10] + "\n" + SECRET[10:], SECRET[:10] + "\r" + SECRET[10:],
                                    SECRET[:10] + "é" + SECRET[10:], SECRET[:10] + " " + SECRET[10:],
                                    SECRET[:10] + "\x00" + SECRET[10:]])
@pytest.mark.parametrize("where", ["env", "settings", "block"])
def test_keys_with_control_or_non_ascii_characters_are_refused_without_showing_them(secret, where):
    env: dict[str, str] = {}
    settings = NumeraiSettings()
    loader = None
    if where == "env":
        env = {"NUMERAI_PUBLIC_ID": PUBLIC, "NUMERAI_SECRET_KEY": secret}
    elif where == "settings":
        settings = NumeraiSettings(public_id=PUBLIC, secret_key=secret)
    else:
        settings = NumeraiSettings(secret_block="keys")

        def loader(name):
            return PUBLIC, secret
    with pytest.raises(BadInputError, match="invalid_keys: the Numerai secret key") as caught:
        resolve_keys(settings, env=env, **({"secret_loader": loader} if loader else {}))
    message = str(caught.value)
    assert "numerai_keys" in message
    for part in (SECRET[:10], SECRET[10:], secret):
        assert part not in message


# ------------------------------------------------------------------ ids that become paths


@pytest.mark.parametrize("run_id", ["../../../../x", "a/b", "..", ".hidden", "a..b", "x" * 200, "run id"])
def test_ingest_run_id_that_would_leave_the_data_dir_is_refused(run_id, tmp_path, capsys):
    code = main(["ingest", "--run-id", run_id, "--data-dir", str(tmp_path / "data"), "--source", "demo"])
    assert code == 2
    err = capsys.readouterr().err
    assert "invalid_id" in err and "ingest run id" in err
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written, inside or outside


# ------------------------------------------------------------------ submissions, in a dry run (no keys)


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    for name in ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _csv(path, text: str):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "no-such.csv", "does not exist"),
        (lambda d: _csv(d / "empty.csv", ""), "is empty"),
        (lambda d: (d / "folder.csv").mkdir() or d / "folder.csv", "is a directory"),
        (lambda d: (d / "bin.csv").write_bytes(b"\x00\xff\x10\x80" * 50) or d / "bin.csv", "submission"),
        (lambda d: _csv(d / "cols.csv", "ticker,prediction\nAAPL US,0.5\n"), "invalid_submission_headers"),
        (lambda d: _csv(d / "abc.csv", "numerai_ticker,signal\nAAPL US,abc\nMSFT US,0.2\n"),
         "not numbers, e.g. ['abc']"),
        (lambda d: _csv(d / "zero.csv", "numerai_ticker,signal\nAAPL US,0.0\nMSFT US,0.5\n"),
         "got min 0.0, max 0.5"),
        (lambda d: _csv(d / "dup.csv", "numerai_ticker,signal\nAAPL US,0.1\nAAPL US,0.5\n"), "duplicate tickers"),
    ],
)
def test_a_dry_run_checks_the_file_like_a_real_upload(no_keys, capsys, make, message):
    path = make(no_keys)
    code = main(["submit", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "np.float64" not in err
    assert not (no_keys / "data" / "submissions").exists()  # no "would upload" record for a bad file


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[training]\nnum_boost_rounds = 5\n", "training.num_boost_rounds: unknown option (did you mean num_boost_round?)"),
        ("[demo]\ntickerz = 7\n", "demo.tickerz: unknown option (did you mean tickers?)"),
        ("[training\nnum_boost_round = 5\n", "is not valid TOML"),
        ("data_dir = \n", "is not valid TOML"),
    ],
)
def test_bad_config_files_are_named_and_explained(toml, message, tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings

    config = tmp_path / "numerflow.toml"
    config.write_text(toml)
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    with pytest.raises(BadInputError, match="invalid_config") as caught:
        load_settings()
    assert message in str(caught.value)
    if "TOML" in message:
        assert str(config) in str(caught.value) and "line" in str(caught.value)


def test_a_missing_config_file_is_an_error_not_the_defaults(tmp_path, monkeypatch):
    from numerflow.tasks.core.config import load_settings

    monkeypatch.setenv("NUMERFLOW_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(BadInputError, match="NUMERFLOW_CONFIG names .*nope.toml, which is not a file"):
        load_settings()


def test_a_json_setting_that_is_not_json_is_a_clear_error(monkeypatch):
    from numerflow.tasks.core.config import load_settings

    monkeypatch.setenv("NUMERFLOW_TRAINING__PARAMS", "not json")
    with pytest.raises(BadInputError, match="invalid_config: .*written as JSON"):
        load_settings()


def test_the_cli_reports_a_bad_config_before_anything_runs(tmp_path, monkeypatch, capsys):
    config = tmp_path / "numerflow.toml"
    config.write_text("[demo]\ntickerz = 7\n")
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(config))
    assert main(["run", "--demo", "--data-dir", str(tmp_path / "data")]) == 2
    assert "did you mean tickers?" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# ------------------------------------------------------------------ demo options, refused at parse time


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--years", "inf"], "--years: must be a finite number > 0, got inf"),
        (["--years", "nan"], "--years: must be a finite number > 0, got nan"),
        (["--signal", "inf"], "--signal: must be a finite number ≥ 0, got inf"),
        (["--years", "1000000"], "demo.years: Input should be less than or equal to 50"),
        (["--signal", "1e9"], "demo.signal: Input should be less than or equal to 10"),
        (["--tickers", "10000000"], "demo.tickers: Input should be less than or equal to 20000"),
        (["--tickers", "99"], "--tickers 99 is below Numerai's minimum of 100"),
    ],
)
def test_demo_options_out_of_range_are_refused_before_anything_runs(argv, message, tmp_path, capsys):
    try:
        code = main(["run", "--demo", *argv, "--data-dir", str(tmp_path / "data")])
    except SystemExit as exit_info:  # argparse's own refusals
        code = exit_info.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "data").exists()
