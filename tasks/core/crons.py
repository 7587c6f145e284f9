"""Cron strings of the schedules (UTC, five fields), checked once for every place that takes one.

A cron must be well-formed and must fire: ``0 0 31 2 *`` (31 February) is well-formed but never
runs, so a deployment on it would silently never happen. The next-run search is croniter's, the
code the Prefect server schedules runs with (with its ``day_or`` default).
"""

from __future__ import annotations

import datetime as dt

from numerflow.tasks.core.errors import BadInputError

EXAMPLE = "'30 18 * * 6' for Saturday 18:30 UTC"


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` cannot schedule anything, or None when it is a five-field cron that fires."""
    from prefect._vendor.croniter import CroniterBadDateError, croniter

    text = " ".join(str(expression).split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        return (f"{expression!r} is not a five-field cron string (minute hour day-of-month month day-of-week, UTC), "
                f"e.g. {EXAMPLE}")
    try:
        croniter(text, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), day_or=True).get_next(dt.datetime)
    except CroniterBadDateError:
        return (f"{expression!r} never runs (no such date: e.g. day 31 of a 30-day month, or 30 February); "
                f"give a day that exists in the month(s), e.g. {EXAMPLE}")
    return None


def checked_cron(expression: str, what: str) -> str:
    """The normalised cron string, or BadInputError naming the option to fix."""
    problem = cron_problem(expression)
    if problem:
        raise BadInputError(f"{what} {problem}; fix it in numerflow.toml or NUMERFLOW_SCHEDULE__*",
                            tag="invalid_schedule")
    return " ".join(str(expression).split())


def crons_field(value: list[str] | str | None) -> list[str] | str | None:
    """A settings validator's body: every cron of ``value`` (one, a list, or None/empty = none) fires."""
    for expression in [value] if isinstance(value, str) else value or []:
        if str(expression).strip():
            problem = cron_problem(expression)
            if problem:
                raise ValueError(problem)
    return value
