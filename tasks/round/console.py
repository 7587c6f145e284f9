"""What the command line shows while a round runs and when it fails: Prefect's failure reports and
tracebacks go to a log file (``round_console``), the failure itself is one line naming the stage it
left (``report_failure``), and ``--json`` gets one object with the error and what did succeed."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from numerflow.tasks.core.errors import NumerflowError
from numerflow.tasks.core.failures import describe_failure, failure_stage


class _FailuresToLogFile(logging.Filter):
    """On the console handlers during a round: the failures Prefect reports (ERROR and up from its run
    loggers, or any record carrying a traceback) are left to the log file; the command line prints
    the failure itself, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        engine = record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
        return not (record.levelno >= logging.ERROR and (engine or record.exc_info))


@contextlib.contextmanager
def round_console(args: argparse.Namespace, data_dir: Path) -> Iterator[None]:
    """While a round runs (without ``--verbose``): Prefect's warnings and errors, tracebacks included,
    go to ``<data_dir>/logs/run-<UTC time>.log`` (created only when something is logged), and its
    failure reports leave the console (``_FailuresToLogFile``)."""
    if getattr(args, "verbose", False):
        yield
        return
    import datetime as dt

    path = Path(data_dir) / "logs" / f"run-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}.log"
    args.log_path = path
    path.parent.mkdir(parents=True, exist_ok=True)
    to_file = logging.FileHandler(path, delay=True, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    quiet = _FailuresToLogFile()
    consoles = [h for h in root.handlers if isinstance(h, logging.StreamHandler)
                and not isinstance(h, logging.FileHandler)]
    root.addHandler(to_file)
    for handler in consoles:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(quiet)
        root.removeHandler(to_file)
        to_file.close()
        with contextlib.suppress(OSError):  # an empty logs folder is not worth keeping
            path.parent.rmdir()


def failure_payload(exc: BaseException, log_path: Path | None) -> dict[str, Any]:
    """``--json`` on failure: the error (tag, message, the stage it left) and what did succeed: with a
    [[models]] table, each model that ran (its upload status and submission id) and why each other one failed."""
    stage = failure_stage(exc)
    tag = getattr(exc, "tag", "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__)
    message = str(exc).removeprefix(f"{tag}: ") if isinstance(exc, NumerflowError) else describe_failure(exc)
    payload: dict[str, Any] = {"ok": False, "error": {"tag": tag, "message": message, "stage": stage}}
    result = getattr(exc, "result", None)
    if result is not None:
        payload["round"] = result.round_label
        payload["models"] = [{"name": run.name, "upload": run.upload.status, "submission_id": run.upload.submission_id,
                              "submission": run.submission.path, "model_id": run.model.model_id}
                             for run in result.models]
        payload["failures"] = {f.name: f.message for f in result.failures}
    if log_path is not None and log_path.exists():
        payload["log"] = str(log_path)
    return payload


def report_failure(args: argparse.Namespace, exc: BaseException) -> None:
    """One line on stderr naming the stage a failure left (and the log holding its traceback), and with
    ``--json`` one JSON object on stdout."""
    stage = failure_stage(exc)
    log_path = getattr(args, "log_path", None)
    if isinstance(exc, KeyboardInterrupt):
        line = f"interrupted{f' during {stage}' if stage else ''}; re-run to resume"
    else:
        line = (f"{stage} failed: " if stage else "") + describe_failure(exc)
        if log_path is not None and log_path.exists():
            line += f" (log: {log_path})"
    print(f"numerflow: {line}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(failure_payload(exc, log_path), indent=2, default=str))
        return
    result = getattr(exc, "result", None)
    if result is not None and result.models:  # the models that did succeed keep their summary
        print(f"numerflow round {result.round_label}: {len(result.models)} of "
              f"{len(result.models) + len(result.failures)} models done")
        for run in result.models:
            corr = run.model.validation.get("mean")
            print(f"  model {run.name:<12}{run.model.model_id} ({'trained' if run.model.trained else 'reused'}), "
                  f"CORR {'—' if corr is None else format(corr, '.4f')}, {run.upload.status}"
                  f"{f' (submission {run.upload.submission_id})' if run.upload.submission_id else ''}: "
                  f"{run.submission.path}")
