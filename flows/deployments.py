"""Every deployment numerflow runs unattended, built from settings in one place.

``build_deployments(settings)`` → the ``RunnerDeployment`` objects ``deployments/serve.py``
serves; ``deployments/prefect.yaml`` declares the same ones for a process work pool
(tests/test_deployments.py keeps the two in step). Each deployment: typed parameters (the
UI's Custom run form is generated from the flow signature), concurrency limit 1, UTC schedules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.deployments.runner import EntrypointType

from numerflow.flows.schedule import (
    classic_schedules,
    crypto_schedules,
    prepare_schedules,
    round_schedules,
    scores_schedules,
    submit_schedules,
    train_schedules,
)
from numerflow.tasks.core.config import Settings

ROUND, TRAIN, BACKFILL = "round", "train", "ingest-backfill"
PREPARE, SUBMIT = "prepare", "submit"  # the daily cadence's two stages
SCORES = "scores"
CLASSIC = "classic"  # the Numerai Classic round (classic.deploy)
CRYPTO = "crypto"  # the Numerai Crypto round (crypto.deploy)
CONCURRENCY_LIMIT = 1


@dataclass(frozen=True)
class DeploymentSpec:
    """What a deployment is, independent of how it is served."""

    key: str
    flow_attr: str  # the flow's attribute in its module (flows.scheduled, flows.scores)
    entrypoint: str
    description: str

    def name(self, settings: Settings) -> str:
        return f"{settings.schedule.deployment_prefix}-{self.key}"


SPECS = (
    DeploymentSpec(ROUND, "scheduled_round_flow", "numerflow.flows.scheduled.scheduled_round_flow",
                   "The Numerai round: skips when closed or already submitted; Saturday + Sunday/Monday retries (UTC)."),
    DeploymentSpec(TRAIN, "scheduled_train_flow", "numerflow.flows.scheduled.scheduled_train_flow",
                   "Fresh prices, then retrain the model on its own schedule."),
    DeploymentSpec(BACKFILL, "ingest_backfill_flow", "numerflow.flows.scheduled.ingest_backfill_flow",
                   "Manual: re-pull every ticker's whole price history."),
    DeploymentSpec(SCORES, "scores_flow", "numerflow.flows.scores.scores_flow",
                   "Every model's recent live scores from Numerai into the store; notifies missed rounds and "
                   "scores below the floor (daily, UTC)."),
)
#: The daily cadence's deployments (schedule.cadence = "daily"): built only then.
DAILY_SPECS = (
    DeploymentSpec(PREPARE, "scheduled_prepare_flow", "numerflow.flows.scheduled.scheduled_prepare_flow",
                   "Daily, before the round opens (Tue-Sat, UTC): ingest, features, retrain every model when due."),
    DeploymentSpec(SUBMIT, "scheduled_submit_flow", "numerflow.flows.scheduled.scheduled_submit_flow",
                   "Daily, after the round opens (Tue-Sat, UTC): predict, validate and upload every model from the "
                   "prepared prices; skips when closed or submitted."),
)

#: Numerai Classic's round (classic.deploy = true): built only then.
CLASSIC_SPECS = (
    DeploymentSpec(CLASSIC, "scheduled_classic_flow", "numerflow.flows.classic.scheduled_classic_flow",
                   "The Numerai Classic round (Tue-Sat, UTC): Numerai's data, train or reuse, predict, validate, "
                   "upload once; skips when closed or already submitted."),
)


#: Numerai Crypto's round (crypto.deploy = true): the same scheduled round flow, on Crypto.
CRYPTO_SPECS = (
    DeploymentSpec(CRYPTO, "scheduled_round_flow", "numerflow.flows.scheduled.scheduled_round_flow",
                   "The Numerai Crypto round at the times Numerai opens its rounds (read from list_rounds, UTC): "
                   "universe, prices, train or reuse, predict, upload symbol,signal once; skips when closed or "
                   "already submitted."),
)


def deployment_parameters(settings: Settings) -> dict[str, dict[str, Any]]:
    """Default parameters per deployment (editable per run in the UI)."""
    mode = settings.schedule.round_mode
    crypto = {"mode": mode, "tournament": "crypto",
              **({"model_name": settings.crypto.model_name} if settings.crypto.model_name else {})}
    return {ROUND: {"mode": mode}, TRAIN: {"retrain": True}, BACKFILL: {"backfill": True},
            PREPARE: {"mode": mode}, SUBMIT: {"mode": mode}, SCORES: {}, CLASSIC: {"mode": mode}, CRYPTO: crypto}


#: Each deployment's time bound: the orchestration setting (minutes) applied to its flow.
TIMEOUT_OPTIONS = {ROUND: "round_timeout_minutes", TRAIN: "train_timeout_minutes", BACKFILL: "ingest_timeout_minutes",
                   PREPARE: "round_timeout_minutes", SUBMIT: "round_timeout_minutes",
                   CLASSIC: "round_timeout_minutes", CRYPTO: "round_timeout_minutes"}


def configured_flows(settings: Settings) -> dict[str, Any]:
    """The flows with the configured time bounds applied (no flow retries: the schedule retries)."""
    from numerflow.flows import classic, scheduled, scores

    flows: dict[str, Any] = {ROUND: scheduled.scheduled_round_flow, TRAIN: scheduled.scheduled_train_flow,
             BACKFILL: scheduled.ingest_backfill_flow, PREPARE: scheduled.scheduled_prepare_flow,
             SUBMIT: scheduled.scheduled_submit_flow, SCORES: scores.scores_flow,
             CLASSIC: classic.scheduled_classic_flow, CRYPTO: scheduled.scheduled_round_flow}
    minutes = {key: getattr(settings.orchestration, option) for key, option in TIMEOUT_OPTIONS.items()}
    return {key: f.with_options(timeout_seconds=minutes[key] * 60) if key in minutes else f
            for key, f in flows.items()}


def build_deployments(settings: Settings, *, read_crypto_crons: bool = True) -> list[Any]:
    """The round (UTC crons; manual with the daily cadence), train (its cron, if any) and
    ingest-backfill (manual) deployments, plus prepare and submit with the daily cadence, the
    Classic round with ``classic.deploy`` and the Crypto round with ``crypto.deploy`` (its crons
    configured, or read from Numerai unless ``read_crypto_crons`` is false: then none)."""
    flows = configured_flows(settings)
    crypto_crons: list[str] = list(settings.crypto.crons)
    if settings.crypto.deploy and not crypto_crons and read_crypto_crons:
        from numerflow.tasks.crypto.schedule import crypto_crons as read_crons

        crypto_crons = read_crons(settings)
    params = deployment_parameters(settings)
    schedules = {ROUND: round_schedules(settings.schedule), TRAIN: train_schedules(settings.schedule), BACKFILL: [],
                 PREPARE: prepare_schedules(settings.schedule), SUBMIT: submit_schedules(settings.schedule),
                 SCORES: scores_schedules(settings.scores),
                 CLASSIC: classic_schedules(settings.classic), CRYPTO: crypto_schedules(crypto_crons)}
    specs = (SPECS + (DAILY_SPECS if settings.schedule.cadence == "daily" else ())
             + (CLASSIC_SPECS if settings.classic.deploy else ()) + (CRYPTO_SPECS if settings.crypto.deploy else ()))
    return [
        flows[spec.key].to_deployment(
            name=spec.name(settings),
            schedules=schedules[spec.key],
            parameters=params[spec.key],
            concurrency_limit=CONCURRENCY_LIMIT,
            description=spec.description,
            tags=["numerflow", spec.key],
            # The installed module, not a file path: the same entrypoint works from any folder.
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for spec in specs
    ]


# ---------------------------------------------------------------- deployments/prefect.yaml, generated


YAML_HEADER = """\
# numerflow's deployments for a process work pool (the worker way; deployments/serve.py is the
# one-process way). GENERATED from flows/deployments.py with the default settings:
#
#   python -m numerflow.flows.deployments > deployments/prefect.yaml
#
# (tests/test_deployments.py fails when this file and the code differ). From the project root:
#
#   prefect work-pool create numerflow-process --type process
#   NUMERFLOW_PROJECT_DIR=$PWD prefect deploy --prefect-file deployments/prefect.yaml --all
#   NUMERFLOW_PROJECT_DIR=$PWD prefect worker start --pool numerflow-process
#
# Times are cron strings in UTC (Numerai's deadlines are UTC). The opt-in deployments (the daily
# cadence's prepare and submit, schedule.cadence = "daily"; the Classic round, classic.deploy) are
# declared with their schedules inactive: turn them on in the UI (or set active: true) when you use
# them. The Crypto round (crypto.deploy) has no schedule here: serve.py reads its times from
# Numerai's recent Crypto rounds; for a work pool, add crypto.crons' times below. Time bounds are
# the flows' decorator defaults (= OrchestrationSettings); serve.py applies configured values instead.
name: numerflow
prefect-version: {prefect_version}

build: null
push: null
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{{{ $NUMERFLOW_PROJECT_DIR }}}}"

definitions:
  work_pool: &process_pool
    name: numerflow-process
    work_queue_name: default
    job_variables:
      env:
        PREFECT_LOGGING_EXTRA_LOGGERS: "{extra_loggers}"

deployments:
"""


def prefect_yaml() -> str:
    """deployments/prefect.yaml: every deployment ``build_deployments`` can make, with the default settings."""
    import json

    import prefect

    from numerflow.deployments import EXTRA_LOGGERS
    from numerflow.tasks.core.config import load_settings

    every = load_settings(schedule={"cadence": "daily"}, classic={"deploy": True}, crypto={"deploy": True})
    weekend = {d.name: d for d in build_deployments(load_settings())}
    lines = [YAML_HEADER.format(prefect_version=prefect.__version__, extra_loggers=EXTRA_LOGGERS).rstrip("\n")]
    for deployment in build_deployments(every, read_crypto_crons=False):
        active = deployment.name in weekend
        chosen = weekend.get(deployment.name, deployment)
        lines += [f"  - name: {chosen.name}", f"    entrypoint: {chosen.entrypoint}",
                  f"    description: {json.dumps(chosen.description)}",
                  f"    tags: [{', '.join(chosen.tags)}]",
                  f"    parameters: {json.dumps(chosen.parameters) if chosen.parameters else '{}'}",
                  f"    concurrency_limit: {CONCURRENCY_LIMIT}"]
        lines += ["    schedules:" if chosen.schedules else "    schedules: []"]
        for s in chosen.schedules:
            lines += [f"      - cron: {json.dumps(s.schedule.cron)}", f"        timezone: {s.schedule.timezone}",
                      f"        slug: {s.slug}"]
            lines += [] if active else ["        active: false"]
        lines += ["    work_pool: *process_pool", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(prefect_yaml(), end="")
