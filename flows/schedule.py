"""Schedule configuration → Prefect ``Cron`` schedules (always UTC), and their next run times.

Numerai's deadlines are UTC; a cron in a local zone would move with daylight saving, so every
schedule here is UTC. The next-run computation is the Prefect server's own (its scheduler
creates runs from exactly these dates), so what the tests and ``numerflow setup`` show is what
the server will do.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from prefect.schedules import Cron, Schedule

from numerflow.tasks.core.config import ClassicSettings, ScheduleSettings, ScoresSettings
from numerflow.tasks.core.crons import checked_cron
from numerflow.tasks.core.errors import BadInputError

UTC = "UTC"
_SLUG = re.compile(r"[^a-z0-9]+")


def validate_cron(expression: str, what: str) -> str:
    """A five-field cron string that fires, or BadInputError naming the option to fix."""
    return checked_cron(expression, what)


def cron_slug(prefix: str, expression: str) -> str:
    """A stable slug per schedule (Prefect updates schedules in place by slug on re-deploy), ending in
    ``-utc``: the UI's schedule card shows the cron and the slug, not the zone."""
    return f"{prefix}-{_SLUG.sub('-', expression.replace('*', 'x')).strip('-')}-utc"


def _crons(crons: list[str], option: str, prefix: str, parameters: dict[str, Any] | None) -> list[Schedule]:
    expressions = [validate_cron(c, f"{option} entry") for c in crons]
    if len(set(expressions)) != len(expressions):
        raise BadInputError(f"{option} lists a time twice: {expressions}", tag="invalid_schedule")
    return [Cron(c, timezone=UTC, parameters=dict(parameters or {}), slug=cron_slug(prefix, c)) for c in expressions]


def round_schedules(schedule: ScheduleSettings, parameters: dict[str, Any] | None = None) -> list[Schedule]:
    """One UTC ``Cron`` per configured round time (the weekend cadence; none for daily, whose
    prepare and submit flows run the rounds); ``parameters`` ride on each schedule."""
    if schedule.cadence == "daily":
        return []
    return _crons(schedule.round_crons, "schedule.round_crons", "round", parameters)


def prepare_schedules(schedule: ScheduleSettings, parameters: dict[str, Any] | None = None) -> list[Schedule]:
    """The daily prepare's UTC crons (none for the weekend cadence)."""
    if schedule.cadence != "daily":
        return []
    return _crons(schedule.daily_prepare_crons, "schedule.daily_prepare_crons", "prepare", parameters)


def submit_schedules(schedule: ScheduleSettings, parameters: dict[str, Any] | None = None) -> list[Schedule]:
    """The daily submit's UTC crons (none for the weekend cadence)."""
    if schedule.cadence != "daily":
        return []
    return _crons(schedule.daily_submit_crons, "schedule.daily_submit_crons", "submit", parameters)


def classic_schedules(classic: ClassicSettings) -> list[Schedule]:
    """The scheduled Classic round's UTC crons (none unless ``classic.deploy``)."""
    if not classic.deploy:
        return []
    return _crons(classic.crons, "classic.crons", "classic", None)


def crypto_schedules(crons: list[str]) -> list[Schedule]:
    """The scheduled Crypto round's UTC crons (``tasks.crypto.schedule.crypto_crons``: configured, or read
    from Numerai's recent Crypto rounds)."""
    return _crons(crons, "crypto.crons", "crypto", None)


def train_schedules(schedule: ScheduleSettings, parameters: dict[str, Any] | None = None) -> list[Schedule]:
    """The retrain schedule (none when ``train_cron`` is empty: manual runs only)."""
    if not schedule.train_cron or not schedule.train_cron.strip():
        return []
    expression = validate_cron(schedule.train_cron, "schedule.train_cron")
    return [Cron(expression, timezone=UTC, parameters=dict(parameters or {}), slug=cron_slug("train", expression))]


def scores_schedules(scores: ScoresSettings) -> list[Schedule]:
    """The scores flow's schedule (none when ``scores.cron`` is empty: manual runs only)."""
    if not scores.cron or not scores.cron.strip():
        return []
    expression = validate_cron(scores.cron, "scores.cron")
    return [Cron(expression, timezone=UTC, slug=cron_slug("scores", expression))]


def next_run_times(schedules: Sequence[Schedule], after: dt.datetime, n: int) -> list[dt.datetime]:
    """The next ``n`` run times (aware, UTC) of the union of ``schedules`` strictly after ``after``,
    computed by the Prefect server's own schedule code."""
    from prefect.server.schemas.schedules import CronSchedule

    if after.tzinfo is None:
        raise BadInputError("next_run_times needs a timezone-aware datetime", tag="invalid_schedule")
    start = after + dt.timedelta(seconds=1)  # the server's start is inclusive; we want strictly after

    async def dates(cron: Schedule) -> list[dt.datetime]:
        assert cron.cron is not None  # every numerflow schedule is a cron
        server = CronSchedule(cron=cron.cron, timezone=cron.timezone, day_or=cron.day_or)
        return list(await server.get_dates(n=n, start=start))

    found: set[dt.datetime] = set()
    for cron in schedules:
        found.update(d.astimezone(dt.UTC) for d in asyncio.run(dates(cron)))
    return sorted(found)[:n]
