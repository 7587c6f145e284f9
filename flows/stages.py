"""Named stages: each step of a round is one (logged, kept for the failure hook, its duration
printed by ``numerflow run``); an unattended round turns a failure into ``StageFailed`` naming it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from prefect import get_run_logger

from numerflow.tasks.core.errors import BadInputError, NumerflowError
from numerflow.tasks.core.failures import note_stage

# Which stage each running round is in, by flow run id: read by the failure hook (flows/scheduled.py).
STAGES: dict[str, str] = {}

#: Streams that get one line when each stage starts and one when it ends (``numerflow run``: stderr).
STAGE_ECHO: list[TextIO] = []


class StageFailed(NumerflowError):
    """A round stage failed; the message names the stage and the original cause."""

    tag = "stage_failed"


def _current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return flow_run.id


@contextlib.contextmanager
def echo_stages(stream: TextIO) -> Iterator[None]:
    """While inside: print each stage's start, and its end with the duration, to ``stream``."""
    STAGE_ECHO.append(stream)
    try:
        yield
    finally:
        STAGE_ECHO.remove(stream)


def _echo(line: str) -> None:
    for stream in STAGE_ECHO:  # write, not print: a flow's log_prints would send print() to the run log
        stream.write(line + "\n")
        stream.flush()


@dataclass
class StageOutcome:
    """What a stage's closing line says besides its duration: ``failed`` when its work failed without
    raising (every model of a train stage), else an optional ``note`` (1 of 3 models failed)."""

    failed: str | None = None
    note: str | None = None


@contextlib.contextmanager
def _timed(name: str) -> Iterator[StageOutcome]:
    _echo(f"numerflow: {name} …")
    started = time.monotonic()
    outcome = StageOutcome()
    try:
        yield outcome
    except BaseException as exc:
        note_stage(exc, name)  # the command line names the stage a failure (or Ctrl-C) left
        _echo(f"numerflow: {name} FAILED after {time.monotonic() - started:.1f} s")
        raise
    took = f"{time.monotonic() - started:.1f} s"
    if outcome.failed:
        _echo(f"numerflow: {name} FAILED after {took} ({outcome.failed})")
    else:
        _echo(f"numerflow: {name} done in {took}" + (f" ({outcome.note})" if outcome.note else ""))


@contextlib.contextmanager
def stage(name: str, *, unattended: bool = False) -> Iterator[StageOutcome]:
    """Name the running stage (logged, kept for the failure hook, and printed with its duration).

    ``unattended`` (the scheduled round): a failure is re-raised as ``StageFailed`` naming the
    stage. An ad-hoc run lets the original error through, so the CLI prints it as it is.
    """
    STAGES[_current_flow_run_id() or "local"] = name
    get_run_logger().info("stage %s", name)
    if not unattended:
        with _timed(name) as outcome:
            yield outcome
        return
    try:
        with _timed(name) as outcome:
            yield outcome
    except BadInputError as exc:
        raise StageFailed(f"stage '{name}' failed (bad input): {exc}") from exc
    except Exception as exc:
        raise StageFailed(f"stage '{name}' failed: {type(exc).__name__}: {exc}") from exc


def current_stage() -> str:
    """The stage the running round is in (where a model that failed failed)."""
    return STAGES.get(_current_flow_run_id() or "local", "start")
