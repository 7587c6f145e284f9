import pytest

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError


def test_defaults_work_out_of_the_box():
    settings = load_settings()
    assert str(settings.data_dir) == "data"
    assert settings.target.horizon == 20 and settings.target.lag == 2
    assert settings.submission.min_tickers == 100


def test_env_overrides_nested_fields_and_toml_is_read(tmp_path, monkeypatch):
    toml = tmp_path / "numerflow.toml"
    toml.write_text('data_dir = "/srv/nf"\n[demo]\ntickers = 250\nseed = 3\n')
    monkeypatch.setenv("NUMERFLOW_CONFIG", str(toml))
    monkeypatch.setenv("NUMERFLOW_DEMO__SEED", "9")
    settings = load_settings()
    assert str(settings.data_dir) == "/srv/nf"
    assert settings.demo.tickers == 250  # from TOML
    assert settings.demo.seed == 9  # env beats TOML
    assert load_settings(demo={"seed": 1}).demo.tickers == 250  # kwargs merge, not replace


def test_bad_value_names_the_option(monkeypatch):
    with pytest.raises(BadInputError, match=r"invalid_config: .*demo\.tickers"):
        load_settings(demo={"tickers": 0})
    with pytest.raises(BadInputError, match=r"unknown_option|extra|data_dri"):
        load_settings(data_dri="x")


def test_secret_key_is_not_in_repr_or_dump(monkeypatch):
    settings = load_settings(numerai={"public_id": "PUBLICID123", "secret_key": "SUPERSECRETKEY0123456789"})
    assert "SUPERSECRETKEY" not in repr(settings)
    assert "SUPERSECRETKEY" not in str(settings.model_dump())
    assert "SUPERSECRETKEY" not in settings.model_dump_json()


def test_settings_overrides_is_the_one_way_options_become_settings():
    from numerflow.tasks.core.config import settings_overrides

    assert settings_overrides() == {}
    built = settings_overrides(data_dir="/d", tournament="crypto", model_name="m", tickers=120, seed=3,
                               extra={"numerai": {"api_url": "http://x"}, "demo": {"tickers": 200}})
    # extra wins key by key, and keeps the sibling keys of the named options
    assert built == {"data_dir": "/d", "tournament": "crypto", "numerai": {"model_name": "m", "api_url": "http://x"},
                     "demo": {"tickers": 200, "seed": 3}}
    settings = load_settings(**settings_overrides(tickers=150, years=2.5, signal=0.0))
    assert (settings.demo.tickers, settings.demo.years, settings.demo.signal) == (150, 2.5, 0.0)
