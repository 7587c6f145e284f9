"""``numerflow setup``: the Prefect-native failure notification.

Creates (or updates) a ``CustomWebhookNotificationBlock`` holding the webhook URL as a block
secret, and an automation that fires it when a ``scheduled-round`` flow run fails or crashes;
the message carries the run's state message, which names the stage and the cause
(flows/scheduled.py). Besides this, the round flow's own on_failure/on_crashed hook posts
directly (tasks/round/alerts.py), so a notification goes out even without the automation.
"""

from __future__ import annotations

from typing import Any, cast

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError

WEBHOOK_BLOCK = "numerflow-failures"
AUTOMATION = "numerflow-round-failed"
ROUND_FLOW = "scheduled-round"


def setup_notifications(settings: Settings) -> dict[str, Any]:
    """Create/update the webhook block and the automation (idempotent). Call with PREFECT_API_URL set."""
    from prefect.automations import Automation
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    url = settings.orchestration.notify_webhook_url
    if url is None:
        raise BadInputError("no webhook configured: set orchestration.notify_webhook_url "
                            "(NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL) first", tag="no_webhook")
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise BadInputError("no Prefect API configured: set PREFECT_API_URL to the server the deployments run on "
                            "(a temporary server would forget the automation)", tag="no_prefect_api")
    # The URL may embed a token: it lives in the block's secrets, templated into the URL.
    block = CustomWebhookNotificationBlock(
        name=WEBHOOK_BLOCK, url="{{webhook_url}}", method="POST",
        json_data={"text": "{{subject}}: {{body}}"}, secrets={"webhook_url": url.get_secret_value()},
        allow_private_urls=True, timeout=int(settings.orchestration.notify_timeout_seconds),
    )
    block_id = block.save(WEBHOOK_BLOCK, overwrite=True)
    automation = Automation(
        name=AUTOMATION,
        description="numerflow: a scheduled round failed or crashed",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": ROUND_FLOW},
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            posture=Posture.Reactive, threshold=1,
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="numerflow round {{ flow_run.name }} {{ flow_run.state.name }}",
            body="{{ flow_run.state.message }} ({{ flow_run|ui_url }})",
        )],
    )
    replaced = _delete_existing(AUTOMATION)
    automation_id = cast(Automation, automation.create()).id  # sync context: not a coroutine
    return {"block": WEBHOOK_BLOCK, "block_id": str(block_id), "automation": AUTOMATION,
            "automation_id": str(automation_id), "replaced": replaced}


def _delete_existing(name: str) -> int:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(name)
        for old in existing:
            client.delete_automation(old.id)
    return len(existing)
