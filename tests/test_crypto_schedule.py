"""The scheduled Crypto round: its crons read from Numerai's recent Crypto rounds (list_rounds for
tournament 12, never hard-coded), its deployment, and the round guard skipping a closed or an
already-submitted Crypto round (a real Prefect run of the scheduled round flow)."""

from __future__ import annotations

import datetime as dt

import pytest
from fakes.numerai_fixtures import fake_numerai, keys, make_client, sleeps  # noqa: F401 - fixtures
from fakes.numerai_server import closed_round, iso
from test_round_guard import live_params, run_round

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.crypto.schedule import crons_from_rounds, crypto_crons
from numerflow.tasks.numerai.ledger import SubmissionLedger

#: Two weeks of Crypto rounds: Tuesday-Friday open at 12:00 UTC, Saturday at 13:00 (a made-up pattern:
#: the point is that the crons follow whatever Numerai lists).
MONDAY = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)


def _rounds() -> list[dict]:
    rounds, number = [], 800
    for week in range(2):
        for day, hour in ((1, 12), (2, 12), (3, 12), (4, 12), (5, 13)):
            opens = MONDAY + dt.timedelta(weeks=week, days=day, hours=hour)
            rounds.append({"number": number, "openTime": iso(opens), "closeTime": iso(opens + dt.timedelta(days=30)),
                           "closeStakingTime": iso(opens + dt.timedelta(hours=1))})
            number += 1
    return rounds


def test_crons_follow_numerais_crypto_rounds(fake_numerai, make_client):
    for raw in _rounds():
        fake_numerai.add_round("crypto", raw)
    settings = load_settings(numerai={"api_url": fake_numerai.url}, crypto={"minutes_after_open": 20})
    crons = crypto_crons(settings, make_client("crypto", with_keys=False))
    assert crons == ["20 12 * * 2,3,4,5", "20 13 * * 6"]
    (call,) = fake_numerai.calls("rounds")
    assert call["variables"]["tournament"] == 12
    # Configured crons win, and nothing is asked.
    assert crypto_crons(load_settings(crypto={"crons": ["5 14 * * 2-6"]})) == ["5 14 * * 2-6"]
    with pytest.raises(BadInputError, match="invalid_schedule: Numerai lists no recent Crypto rounds"):
        crons_from_rounds([], 30)


def test_the_crypto_deployment_uses_the_crons_read_from_numerai(fake_numerai, monkeypatch):
    from numerflow.flows.deployments import build_deployments

    for raw in _rounds():
        fake_numerai.add_round("crypto", raw)
    settings = load_settings(numerai={"api_url": fake_numerai.url, "timeout_seconds": 5},
                             crypto={"deploy": True, "model_name": "my_crypto"})
    deployments = {d.name: d for d in build_deployments(settings)}
    crypto = deployments["numerflow-crypto"]
    assert crypto.parameters == {"mode": "live", "tournament": "crypto", "model_name": "my_crypto"}
    assert [(s.schedule.cron, s.schedule.timezone) for s in crypto.schedules] == [
        ("30 12 * * 2,3,4,5", "UTC"), ("30 13 * * 6", "UTC")]
    assert crypto.concurrency_limit == 1
    assert "numerflow-crypto" not in {d.name for d in build_deployments(load_settings())}  # opt-in


def _crypto_params(fake, data_dir) -> dict:
    return {**live_params(fake, data_dir), "tournament": "crypto", "model_name": "my_crypto"}


def test_scheduled_crypto_round_skips_a_closed_round(prefect_harness, fake_numerai, tmp_path):
    fake_numerai.set_round("crypto", closed_round(501))
    state = run_round(**_crypto_params(fake_numerai, tmp_path / "data"))
    assert state.is_completed() and state.name == "Skipped"
    assert state.message.startswith("round closed: round 501 closed at")
    assert fake_numerai.calls("listDatasets") == []  # finished before any round work


def test_scheduled_crypto_round_skips_an_already_submitted_round(prefect_harness, fake_numerai, tmp_path):
    data_dir = tmp_path / "data"
    SubmissionLedger.for_settings(load_settings(data_dir=data_dir)).record(
        {"tournament": "crypto", "round": 501, "model_name": "my_crypto", "submission_id": "sub-7",
         "uploaded_at": "2026-11-21T18:40:00+00:00", "sha256": "0" * 64})
    state = run_round(**_crypto_params(fake_numerai, data_dir))
    assert state.name == "Skipped" and state.message.startswith("skipped: already submitted for round 501")
    assert fake_numerai.calls("listDatasets") == []
