"""Failure notifications: a JSON POST to a webhook naming the failed stage and the cause.

Secrets never leave: the message is scrubbed of every configured secret value (Numerai keys,
the webhook URL itself) before it is sent or logged. The POST has its own timeout and is
retried only on transient errors (network, 429, 5xx); a notification failure is logged and
never fails the run a second time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import requests

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import TransientError, is_transient

log = logging.getLogger(__name__)

_SECRET_ENV = ("NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY", "NUMERFLOW_NUMERAI__PUBLIC_ID",
               "NUMERFLOW_NUMERAI__SECRET_KEY", "NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL")
REDACTED = "[redacted]"
MAX_CAUSE_CHARS = 2000


def secret_values(settings: Settings | None) -> list[str]:
    """Every secret value this process knows (settings and env), longest first."""
    values = [os.environ.get(name) for name in _SECRET_ENV]
    if settings is not None:
        for secret in (settings.numerai.public_id, settings.numerai.secret_key,
                       settings.orchestration.notify_webhook_url):
            values.append(secret.get_secret_value() if secret is not None else None)
    return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def failure_message(
    *, flow_name: str, flow_run_name: str, stage: str, cause: str, state_name: str,
    flow_run_id: str | None = None, ui_url: str | None = None, secrets: Iterable[str] = (),
) -> dict[str, Any]:
    """The webhook payload: ``text`` for chat webhooks (Slack/Discord-style) plus structured fields."""
    secrets = list(secrets)
    cause = scrub(str(cause), secrets)[:MAX_CAUSE_CHARS]
    link = f"{ui_url.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui_url and flow_run_id else None
    text = f"numerflow {flow_name} run {flow_run_name} {state_name.lower()} at stage '{stage}': {cause}"
    if link:
        text += f" — {link}"
    return {"text": scrub(text, secrets), "flow": flow_name, "flow_run": flow_run_name, "flow_run_id": flow_run_id,
            "state": state_name, "stage": stage, "cause": cause, "url": link}


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 10.0, attempts: int = 3,
                 backoff_seconds: float = 2.0, sleep=time.sleep) -> int:
    """POST ``payload`` as JSON; retries transient failures with exponential backoff. Returns the status.

    Raises ``TransientError`` when every attempt failed transiently; a 4xx raises ``requests.HTTPError``
    at once. Error texts never contain the URL (it may embed a token).
    """
    last: BaseException | None = None
    for attempt in range(attempts):
        try:
            response = requests.post(url, json=payload, timeout=timeout)
            response.raise_for_status()
            return response.status_code
        except requests.RequestException as exc:
            if not is_transient(exc):
                status = exc.response.status_code if exc.response is not None else "?"
                raise requests.HTTPError(f"notification webhook refused the message (HTTP {status})") from None
            last = exc
            if attempt + 1 < attempts:
                sleep(backoff_seconds * 2**attempt)
    raise TransientError(f"notification webhook unreachable after {attempts} attempts "
                         f"({type(last).__name__})", tag="notify_failed")


def notify_failure(settings: Settings, **message: Any) -> dict[str, Any] | None:
    """Send the failure message when a webhook is configured; never raises. Returns the payload sent."""
    secrets = secret_values(settings)
    payload = failure_message(secrets=secrets, **message)
    url = settings.orchestration.notify_webhook_url
    if url is None:
        log.info("no orchestration.notify_webhook_url: failure not sent anywhere: %s", payload["text"])
        return None
    try:
        post_webhook(url.get_secret_value(), payload, timeout=settings.orchestration.notify_timeout_seconds)
    except Exception as exc:  # noqa: BLE001 - a failed notification must not mask the run's own failure
        log.warning("failure notification not delivered: %s", scrub(str(exc), secrets))
        return None
    return payload
