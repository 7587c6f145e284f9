"""The round guard: should a scheduled round run at all?

A scheduled round fires several times per window (Saturday, then Sunday and Monday retries),
so most firings must finish at once: the round is closed, or this model already submitted for
it. Pure functions over the round window and the submission ledger; the flow
(flows/scheduled.py) turns a "skip" into a Completed state whose message is the reason.
A late run never uploads: the guard refuses a round past (or too close to) its deadline, and
the upload itself re-checks the window (``tasks.numerai.client.require_open_window``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from numerflow.tasks.numerai.client import RoundInfo

DEMO_RECORD = "upload-record.json"


@dataclass(frozen=True)
class GuardDecision:
    """``proceed`` or not, and why, in words fit for a Prefect state message."""

    proceed: bool
    reason: str
    round_label: str | None = None
    round_number: int | None = None
    close_time: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def live_round_guard(
    round_info: RoundInfo | None,
    ledger_entry: dict | None,
    *,
    now: dt.datetime,
    force: bool = False,
    min_time_left: dt.timedelta = dt.timedelta(minutes=20),
) -> GuardDecision:
    """Decide for a live Numerai round.

    ``ledger_entry`` is this model's ``SubmissionLedger`` entry for the current round (None when
    not submitted, or when the model is unknown). ``force`` re-submits an already submitted
    round but never opens a closed one.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if round_info is None:
        return GuardDecision(False, f"round closed: Numerai has no round open at {now:%Y-%m-%d %H:%M} UTC")
    label = f"round-{round_info.number}"
    close = round_info.close_time.isoformat()
    common: dict[str, Any] = {"round_label": label, "round_number": round_info.number, "close_time": close}
    if now < round_info.open_time:
        return GuardDecision(False, f"round closed: round {round_info.number} has not opened yet "
                             f"({round_info.window()})", **common)
    if now >= round_info.close_time:
        return GuardDecision(False, f"round closed: round {round_info.number} closed at "
                             f"{round_info.close_time:%Y-%m-%d %H:%M} UTC; a late run uploads nothing", **common)
    if ledger_entry is not None and not force:
        return GuardDecision(False, f"skipped: already submitted for round {round_info.number} "
                             f"(submission {ledger_entry.get('submission_id')} at {ledger_entry.get('uploaded_at')})",
                             **common)
    left = round_info.close_time - now
    if left < min_time_left:
        return GuardDecision(False, f"round closed: round {round_info.number} closes at "
                             f"{round_info.close_time:%Y-%m-%d %H:%M} UTC, only {left.total_seconds() / 60:.0f} min "
                             f"left (< {min_time_left.total_seconds() / 60:.0f} min needed); nothing uploaded",
                             **common)
    return GuardDecision(True, f"round {round_info.number} open until {round_info.close_time:%Y-%m-%d %H:%M} UTC"
                         f"{' (forced re-submission)' if ledger_entry is not None else ''}", **common)


def demo_round_label(market_end: dt.date) -> str:
    """The demo market's round: one per market end date (the demo's "Friday")."""
    return f"demo-{market_end.isoformat()}"


def demo_round_guard(submission_dir: Path, round_label: str, *, force: bool = False) -> GuardDecision:
    """The demo round is idempotent: its upload record marks it submitted; a re-run skips unless forced."""
    record = Path(submission_dir) / DEMO_RECORD
    if record.exists() and not force:
        return GuardDecision(False, f"skipped: already submitted for round {round_label} (record {record})",
                             round_label=round_label)
    return GuardDecision(True, f"demo round {round_label}{' (forced re-submission)' if record.exists() else ''}",
                         round_label=round_label)


def missed_round(decision: GuardDecision, *, expected_start: dt.datetime | None, unsubmitted: list[str]) -> str | None:
    """Why this round was missed, when it was: the guard refused it for time (closed, or too little
    left) while models had not submitted, and this run was due before the close (it was blocked,
    queued or started late). A run first due after the close, or a round all models submitted, is
    not a miss. None: nothing to report."""
    if decision.proceed or decision.close_time is None or not unsubmitted:
        return None
    if not decision.reason.startswith("round closed") or "has not opened yet" in decision.reason:
        return None
    if expected_start is not None and expected_start >= dt.datetime.fromisoformat(decision.close_time):
        return None
    return (f"round {decision.round_number} missed: {', '.join(unsubmitted)} not submitted before the close "
            f"({decision.reason})")
