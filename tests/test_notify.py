"""Failure notifications reach a local webhook receiver, name the stage and the cause, carry no
secrets; a failed round flow is never re-run in its process (the schedule retries)."""

from __future__ import annotations

import json

import pytest
import requests
from fakes.webhook import SECRET, Receiver

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import TransientError
from numerflow.tasks.round.alerts import REDACTED, failure_message, notify_failure, post_webhook


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def test_message_names_stage_and_cause_and_scrubs_secrets():
    msg = failure_message(flow_name="scheduled-round", flow_run_name="brave-fox", stage="ingest",
                          cause=f"bad_input: cannot read /data/{SECRET}/prices.csv", state_name="Failed",
                          flow_run_id="abc", ui_url="http://ui:4200", secrets=[SECRET])
    assert msg["stage"] == "ingest" and "stage 'ingest'" in msg["text"]
    assert "cannot read" in msg["text"] and SECRET not in json.dumps(msg) and REDACTED in msg["cause"]
    assert msg["url"] == "http://ui:4200/runs/flow-run/abc"


def test_post_retries_transient_statuses_then_succeeds():
    sleeps: list[float] = []
    with Receiver(statuses=[503, 429]) as r:
        assert post_webhook(r.url, {"text": "x"}, sleep=sleeps.append, backoff_seconds=1) == 200
    assert len(r.messages) == 3 and sleeps == [1, 2]  # exponential backoff


def test_post_does_not_retry_a_refusal_and_hides_the_url():
    with Receiver(statuses=[404]) as r:
        with pytest.raises(requests.HTTPError) as info:
            post_webhook(r.url, {"text": "x"}, sleep=lambda s: None)
    assert len(r.messages) == 1 and "404" in str(info.value) and SECRET not in str(info.value)


def test_unreachable_webhook_is_transient_and_notify_never_raises(caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/{SECRET}"
    with pytest.raises(TransientError, match="notify_failed"):
        post_webhook(dead, {"text": "x"}, timeout=1, attempts=2, sleep=lambda s: None)
    settings = load_settings(orchestration={"notify_webhook_url": dead, "notify_timeout_seconds": 1})
    assert notify_failure(settings, flow_name="f", flow_run_name="r", stage="s", cause="c", state_name="Failed") is None
    assert SECRET not in caplog.text


def test_no_webhook_configured_sends_nothing():
    assert notify_failure(load_settings(), flow_name="f", flow_run_name="r", stage="s", cause="c",
                          state_name="Failed") is None


# ------------------------------------------------------------------ a real failed round (Prefect harness)


def test_failed_round_notifies_the_webhook_once_and_is_not_rerun(prefect_harness, receiver, tmp_path, monkeypatch):
    from numerflow.flows.scheduled import scheduled_round_flow

    monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", receiver.url)
    missing = tmp_path / "nowhere" / "prices.csv"  # no price file at all: the ingest stops, naming it
    state = scheduled_round_flow(mode="demo", data_dir=str(tmp_path / "data"), tickers=110, years=1,
                                 overrides={"price_source": "files", "files": {"path": str(missing)}},
                                 return_state=True)
    assert state.is_failed()
    assert "stage 'ingest' failed (bad input)" in state.message
    (message,) = receiver.messages
    assert message["stage"] == "ingest" and message["flow"] == "scheduled-round" and message["state"] == "Failed"
    assert "stage 'ingest'" in message["text"] and "prices.csv does not exist" in message["cause"]
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
    assert run.run_count == 1


def test_transient_failure_notifies_once_with_its_stage(prefect_harness, receiver, tmp_path, monkeypatch):
    import numerflow.flows.scheduled as scheduled
    import numerflow.tasks.round.pending as pending

    calls: list[int] = []

    def flaky_guard(*args, **kwargs):
        calls.append(1)
        raise TransientError(f"Numerai answered 503 to key {SECRET}", tag="numerai_unavailable")

    monkeypatch.setattr(pending, "demo_round_guard", flaky_guard)
    monkeypatch.setenv("NUMERAI_SECRET_KEY", SECRET)
    monkeypatch.setenv("NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL", receiver.url)
    state = scheduled.scheduled_round_flow(mode="demo", data_dir=str(tmp_path / "data"), tickers=110, years=1,
                                           return_state=True)
    assert state.is_failed() and len(calls) == 1  # not re-run in-process: the next firing is the retry
    (message,) = receiver.messages
    assert message["stage"] == "guard" and "numerai_unavailable: Numerai answered 503" in message["cause"]
    assert SECRET not in json.dumps(message) and REDACTED in message["cause"]  # secrets never leave


def test_setup_creates_the_webhook_block_and_automation_idempotently(prefect_harness):
    from prefect import get_client
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from numerflow.flows.notify import AUTOMATION, WEBHOOK_BLOCK, setup_notifications

    settings = load_settings(orchestration={"notify_webhook_url": f"http://127.0.0.1:9/hook/{SECRET}"})
    first = setup_notifications(settings)
    again = setup_notifications(settings)
    assert again["replaced"] == 1 and again["block_id"] == first["block_id"]
    block = CustomWebhookNotificationBlock.load(WEBHOOK_BLOCK)
    assert SECRET not in block.url and block.secrets.get_secret_value()["webhook_url"].endswith(SECRET)
    with get_client(sync_client=True) as client:
        (automation,) = client.read_automations_by_name(AUTOMATION)
    assert automation.trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert automation.trigger.match_related.root["prefect.resource.name"] == "scheduled-round"
    (action,) = automation.actions
    assert str(action.block_document_id) == first["block_id"] and "flow_run.state.message" in action.body


def test_setup_without_a_webhook_is_bad_input():
    from numerflow.flows.notify import setup_notifications
    from numerflow.tasks.core.errors import BadInputError

    with pytest.raises(BadInputError, match="no_webhook"):
        setup_notifications(load_settings())
