"""Which models a scheduled firing still has to run (the round guard, per model of the round)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from numerflow.tasks.core.config import Settings
from numerflow.tasks.numerai.client import client_for
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.round.guard import GuardDecision, demo_round_guard, demo_round_label, live_round_guard
from numerflow.tasks.round.models import RoundModel
from numerflow.tasks.round.results import Mode
from numerflow.tasks.round.submit import model_submission_dir


def demo_label(settings: Settings) -> str:
    """The demo round's label: the demo market's end date (Signals), or the Classic demo's parameters."""
    if settings.tournament == "classic":
        from numerflow.tasks.round.classic import demo_label as classic_demo_label

        return classic_demo_label(settings)
    from numerflow.tasks.prices.configured import demo_market

    return demo_round_label(demo_market(settings).end)


def models_to_run(settings: Settings, mode: Mode, force: bool,
                  models: list[RoundModel]) -> tuple[GuardDecision, list[RoundModel]]:
    """Should this firing run at all, and for which models? Demo: not for a model whose round was
    recorded. Live: not if the round is closed or too little time is left before the close, and
    not for a model already submitted. A ``submit = false`` model runs whenever another does."""
    if mode == "demo":
        label = demo_label(settings)
        decisions = [demo_round_guard(model_submission_dir(m.settings, label, m.folder), label, force=force)
                     for m in models]
    else:
        current = client_for(settings, settings.tournament).current_round()
        ledger = SubmissionLedger.for_settings(settings)
        now = dt.datetime.now(dt.UTC)
        min_left = dt.timedelta(minutes=settings.schedule.min_minutes_before_deadline)
        decisions = [live_round_guard(current, ledger.get(settings.tournament, current.number, m.name)
                                      if current is not None and m.name else None,
                                      now=now, force=force, min_time_left=min_left) for m in models]
    submitting = [i for i, m in enumerate(models) if m.submit] or list(range(len(models)))
    pending = [i for i in submitting if decisions[i].proceed]
    if not pending:
        return decisions[submitting[0]], []
    keep = [m for i, m in enumerate(models) if i in pending or not m.submit]
    decision = decisions[pending[0]]
    if len(models) > 1:
        decision = replace(decision, reason=f"{decision.reason}; models to run: {', '.join(m.label for m in keep)}")
    return decision, keep


def unsubmitted(settings: Settings, round_number: int, models: list[RoundModel]) -> list[str]:
    """The submitting models with no ledger entry for the round (an unnamed model counts as unsubmitted)."""
    ledger = SubmissionLedger.for_settings(settings)
    return [m.label for m in models if m.submit
            and (not m.name or ledger.get(settings.tournament, round_number, m.name) is None)]
