"""Crypto's scores and payout: `numerflow scores --tournament crypto` (Numerai's live Crypto scores through
the real CryptoAPI, names as the API gives them) and Crypto's roundScoreConfigs in the payout preview
(stake × clip(payout_factor × MMC, ±0.05)), with the model's validation MMC when one was scored."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fakes.numerai_server import FakeNumeraiServer, closed_round, open_round
from test_numerai_verdict import _config

from numerflow.flows.cli import main
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.store import Store
from numerflow.tasks.numerai.payout import local_estimates, parse_round_payout, payout_preview
from numerflow.tasks.numerai.scores import read_history

NOW = dt.datetime.now(dt.UTC)
CRYPTO_CONFIGS = [_config("mmc", "mmc", payout=True, multiplier=1.0, clip=0.05),
                  _config("corr", "corr", payout=False)]


def test_crypto_payout_preview_uses_its_score_configs_and_the_validation_mmc():
    payout = parse_round_payout({"number": 900, "payoutFactor": 0.8, "roundScoreConfigs": CRYPTO_CONFIGS}, "crypto")
    assert [s.display_name for s in payout.paying] == ["mmc"]
    estimates, sources = local_estimates({"corr": {"mean": 0.05}, "mmc": {"mean": 0.03, "n_eras": 20}}, "crypto")
    preview = payout_preview(payout, estimates, sources=sources, stake=10.0)
    assert preview.fraction == pytest.approx(0.8 * 0.03) and preview.amount == pytest.approx(10 * 0.8 * 0.03)
    assert preview.lines[0].source == "validation MMC, mean of 20 eras"
    clipped = payout_preview(payout, {"mmc": 0.2}, stake=10.0)
    assert clipped.fraction == pytest.approx(0.05)  # Crypto's clip
    # A live model: Numerai publishes no Crypto meta model, so its MMC is unknown, said and not guessed.
    unknown, why = local_estimates({"corr": {"mean": 0.05}}, "crypto")
    assert unknown["mmc"] is None and "meta model" in why["mmc"]
    assert payout_preview(payout, unknown, sources=why).fraction is None


@pytest.fixture
def crypto_numerai(tmp_path, monkeypatch):
    with FakeNumeraiServer() as fake:
        fake.set_round("crypto", open_round(906))
        for n in range(900, 906):
            fake.add_round("crypto", closed_round(n, now=NOW - dt.timedelta(days=906 - n)))
            fake.add_score("model-crypto-1", n, "corr", 0.01 * (n - 899), day=20)
            fake.add_score("model-crypto-1", n, "mmc", 0.004, day=20)
        fake.add_round("crypto", {**open_round(906), "payoutFactor": "0.8", "roundScoreConfigs": CRYPTO_CONFIGS})
        monkeypatch.setenv("NUMERAI_PUBLIC_ID", fake.state.public_id)
        monkeypatch.setenv("NUMERAI_SECRET_KEY", fake.state.secret_key)
        monkeypatch.setenv("NUMERFLOW_NUMERAI_API_URL", fake.url)
        monkeypatch.setenv("NUMERFLOW_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("NUMERFLOW_NUMERAI__MODEL_NAME", "my_crypto")
        yield fake


def test_scores_for_crypto_come_from_the_crypto_api_with_numerais_names(crypto_numerai, capsys):
    assert main(["scores", "--tournament", "crypto", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    calls = crypto_numerai.calls("submissionScores")
    assert calls and all(c["variables"]["tournament"] == 12 and c["variables"]["modelId"] == "model-crypto-1"
                         for c in calls)
    history = read_history(Store(load_settings().data_dir), "crypto")
    assert set(history["metric"]) == {"corr", "mmc"}  # the names Numerai gives, none hard-coded
    (model,) = report["models"]
    assert model["model"] == "my_crypto" and model["rounds"][0]["round"] == 905
    assert model["rounds"][0]["corr"] == pytest.approx(0.06) and model["rounds"][0]["mmc"] == pytest.approx(0.004)
    assert report["tournament"] == "crypto"


def test_status_for_crypto_previews_crypto_s_payout_configuration(crypto_numerai, capsys):
    assert main(["status", "--tournament", "crypto", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    payout = status["payout"]
    assert payout["round"] == 906 and payout["payout_factor"] == pytest.approx(0.8)
    assert [s["display_name"] for s in payout["scores"] if s["is_payout"]] == ["mmc"]
    assert "mmc" in payout["text"]
