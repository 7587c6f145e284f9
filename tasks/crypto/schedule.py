"""When the scheduled Crypto round runs: after each round's open, read from Numerai, never hard-coded.

Numerai opens a Crypto round on several days a week; its times have changed before and its pages
disagree. The crons come from ``crypto.crons`` when set, else from Numerai's own recent Crypto rounds
(numerapi ``list_rounds`` for tournament 12: their ``openTime``): one UTC cron per time of day, on the
weekdays rounds opened at that time, ``crypto.minutes_after_open`` after the open. A run that finds the
round closed or already submitted finishes at once (the round guard), so a stale cron costs nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.crons import checked_cron
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.numerai.client import NumeraiClient, RoundInfo, client_for

#: Recent rounds read to learn the weekly pattern: two weeks of daily rounds.
ROUNDS_FOR_CRONS = 14


def crons_from_rounds(rounds: Sequence[RoundInfo], minutes_after_open: int) -> list[str]:
    """``M H * * days`` per distinct time of day of the rounds' opens (+ ``minutes_after_open``), UTC."""
    if not rounds:
        raise BadInputError("Numerai lists no recent Crypto rounds to read the schedule from: set crypto.crons "
                            "(UTC cron strings) instead", tag="invalid_schedule")
    days_at: dict[tuple[int, int], set[int]] = {}
    for info in rounds:
        at = info.open_time.astimezone(dt.UTC) + dt.timedelta(minutes=minutes_after_open)
        days_at.setdefault((at.hour, at.minute), set()).add(at.isoweekday() % 7)  # cron: 0 = Sunday
    crons = [f"{minute} {hour} * * {','.join(str(d) for d in sorted(days))}"
             for (hour, minute), days in sorted(days_at.items())]
    return [checked_cron(c, "the Crypto schedule read from Numerai") for c in crons]


def crypto_crons(settings: Settings, client: NumeraiClient | None = None) -> list[str]:
    """The scheduled Crypto round's crons: ``crypto.crons``, else read from Numerai's recent Crypto rounds."""
    if settings.crypto.crons:
        return list(settings.crypto.crons)
    client = client or client_for(settings, "crypto")
    return crons_from_rounds(client.recent_rounds(ROUNDS_FOR_CRONS), settings.crypto.minutes_after_open)
