"""The Numerai Classic round's flows: the round engine (flows/round.py) for the ``classic``
tournament, ad hoc (``numerflow run --tournament classic``) and unattended (``classic.deploy``).

    preflight → data → live ids → train (or reuse) → per model: predict → validate → upload
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow

from numerflow.flows.policies import ROUND_TIMEOUT_SECONDS
from numerflow.flows.round import adhoc_round
from numerflow.flows.scheduled import guarded_round, notify_round_failure
from numerflow.tasks.round.classic import classic_overrides
from numerflow.tasks.round.results import RoundResult


@flow(name="classic-round", log_prints=True)
def classic_round_flow(
    mode: Literal["demo", "live"] = "demo",
    model_name: str | None = None,
    force: bool = False,
    retrain: bool = False,
    quick: bool | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> RoundResult:
    """A whole Numerai Classic round now (``numerflow run --tournament classic``): the synthetic
    Classic dataset offline (demo), or this round's Numerai data and upload (live; refused early
    when the round is closed and keys are set). Options left empty take the configured value.

    Args:
        mode: "demo": the offline synthetic Classic dataset; "live": this Numerai Classic round.
        model_name: Numerai Classic model name; empty: classic.model_name, else numerai.model_name. With a
            [[classic.models]] table: run that model only.
        force: upload again even if this round was already submitted.
        retrain: train a new model even when a fresh one of the same lineage exists.
        quick: the small feature set and fewer trees (minutes); empty: classic.quick.
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON; they win over numerflow.toml and the environment.
    """
    return adhoc_round(classic_overrides(data_dir, model_name, quick, overrides), mode, model_name=model_name,
                       force=force, retrain=retrain)


# No flow retries (the schedule's next firing retries; network tasks retry briefly); a failure or
# crash posts to the configured webhook naming the stage, as the Signals round does.
@flow(name="scheduled-classic", log_prints=True, retries=0, timeout_seconds=ROUND_TIMEOUT_SECONDS,
      on_failure=[notify_round_failure], on_crashed=[notify_round_failure])
def scheduled_classic_flow(
    mode: Literal["live", "demo"] = "live",
    force: bool = False,
    retrain: bool = False,
    model_name: str | None = None,
    data_dir: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """The Numerai Classic round, unattended (Tuesday-Saturday): skips at once when the round is
    closed or already submitted. Options left empty take the configured value.

    Args:
        mode: "live": this Numerai Classic round (download, upload); "demo": the offline synthetic dataset.
        force: upload again even if this round was already submitted (never opens a closed round).
        retrain: train a new model even when a fresh one of the same lineage exists.
        model_name: Numerai Classic model name; empty: classic.model_name, else numerai.model_name.
        data_dir: data store directory; empty: the configured data_dir.
        overrides: any settings as nested JSON, e.g. {"classic": {"quick": true}}.
    """
    return guarded_round(classic_overrides(data_dir, model_name, None, overrides), mode, model_name=model_name,
                         force=force, retrain=retrain)
