"""The scores flow: every model's recent live scores into the store on its own small schedule
(the work: ``tasks/numerai/live_scores.py``)."""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.numerai.live_scores import model_names, refresh_scores

log = logging.getLogger(__name__)


@flow(name="scores", log_prints=True, retries=0, timeout_seconds=1800)
def scores_flow(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fetch every model's recent live scores into the history; notify missed rounds and floor breaches.

    Args:
        overrides: any settings as nested JSON, e.g. {"scores": {"floor": 0.0, "alert_rounds": 5}}.
    """
    from prefect.states import Completed

    from numerflow.tasks.numerai.client import resolve_keys

    settings = load_settings(**(overrides or {}))
    if not model_names(settings) or resolve_keys(settings.numerai) is None:
        reason = "skipped: no Numerai API keys or no model configured, so no live scores to fetch"
        log.info(reason)
        return Completed(name="Skipped", message=reason)  # type: ignore[return-value]
    report = refresh_scores(settings)
    for alert in report.alerts:
        log.warning(alert["text"])
    return report.as_dict()
