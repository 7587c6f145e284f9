"""Deployments: UTC schedules and their next run times, parameters, concurrency, time bounds;
prefect.yaml in step with serve.py's deployments; serve.py refuses to start without an API."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from numerflow.flows.deployments import (
    BACKFILL,
    DAILY_SPECS,
    PREPARE,
    ROUND,
    SCORES,
    SPECS,
    SUBMIT,
    TRAIN,
    build_deployments,
)
from numerflow.flows.schedule import next_run_times, round_schedules
from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]
UTC = dt.UTC


def by_name(deployments):
    return {d.name: d for d in deployments}


def test_default_deployments_schedules_parameters_concurrency():
    deps = by_name(build_deployments(load_settings()))
    assert set(deps) == {"numerflow-round", "numerflow-train", "numerflow-ingest-backfill", "numerflow-scores"}
    rnd, train, backfill = deps["numerflow-round"], deps["numerflow-train"], deps["numerflow-ingest-backfill"]
    assert [(s.schedule.cron, s.schedule.timezone) for s in deps["numerflow-scores"].schedules] == [
        ("0 8 * * *", "UTC")]
    assert [(s.schedule.cron, s.schedule.timezone) for s in rnd.schedules] == [
        ("30 18 * * 6", "UTC"), ("0 6 * * 0", "UTC"), ("0 6 * * 1", "UTC"), ("0 11 * * 1", "UTC")]
    assert [(s.schedule.cron, s.schedule.timezone) for s in train.schedules] == [("0 6 * * 5", "UTC")]
    assert backfill.schedules == []  # manual only
    assert {d.concurrency_limit for d in deps.values()} == {1}
    assert rnd.parameters == {"mode": "live"} and train.parameters == {"retrain": True}
    assert backfill.parameters == {"backfill": True}
    assert rnd.entrypoint == "numerflow.flows.scheduled.scheduled_round_flow"


def test_round_parameters_are_typed_for_the_ui():
    schema = by_name(build_deployments(load_settings()))["numerflow-round"]._parameter_openapi_schema.properties
    assert schema["mode"]["enum"] == ["live", "demo"]
    assert schema["force"]["type"] == "boolean"
    assert {"type": "integer"} in schema["tickers"]["anyOf"]
    assert {"type": "number"} in schema["years"]["anyOf"]
    assert schema["tournament"]["anyOf"][0]["enum"] == ["signals", "crypto"]
    assert "overrides" in schema


def test_next_run_times_are_utc_and_before_the_monday_deadline():
    schedules = round_schedules(load_settings().schedule)
    saturday_noon = dt.datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # a Saturday
    runs = next_run_times(schedules, saturday_noon, 5)
    assert runs == [
        dt.datetime(2026, 11, 21, 18, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 23, 11, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 28, 18, 30, tzinfo=UTC),
    ]
    deadline = dt.datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    assert all(r.utcoffset() == dt.timedelta(0) for r in runs)
    assert all(r < deadline for r in runs[:4])


def test_utc_schedule_does_not_move_with_daylight_saving():
    # Across the EU/US DST change (late March), a UTC cron stays at 18:30 UTC.
    runs = next_run_times(round_schedules(load_settings().schedule), dt.datetime(2027, 3, 20, 0, 0, tzinfo=UTC), 8)
    saturdays = [r for r in runs if r.weekday() == 5]
    assert [r.time() for r in saturdays] == [dt.time(18, 30)] * len(saturdays) and len(saturdays) >= 2


def test_schedule_times_are_configurable():
    settings = load_settings(schedule={"round_crons": ["0 13 * * 2-6"], "train_cron": None,
                                       "deployment_prefix": "acme", "round_mode": "demo"})
    deps = by_name(build_deployments(settings))
    rnd = deps["acme-round"]
    assert [s.schedule.cron for s in rnd.schedules] == ["0 13 * * 2-6"] and rnd.parameters == {"mode": "demo"}
    assert deps["acme-train"].schedules == []
    runs = next_run_times(round_schedules(settings.schedule), dt.datetime(2026, 11, 23, 14, 0, tzinfo=UTC), 3)
    assert runs == [dt.datetime(2026, 11, 24, 13, 0, tzinfo=UTC), dt.datetime(2026, 11, 25, 13, 0, tzinfo=UTC),
                    dt.datetime(2026, 11, 26, 13, 0, tzinfo=UTC)]


@pytest.mark.parametrize("crons", [["30 18 * *"], ["61 18 * * 6"], ["every saturday"], ["0 0 31 2 *"]])
def test_bad_cron_is_refused_when_settings_load_naming_the_option(crons):
    with pytest.raises(BadInputError, match="invalid_config: .*schedule.round_crons"):
        load_settings(schedule={"round_crons": crons})


def test_a_time_listed_twice_is_bad_input_naming_the_option():
    settings = load_settings(schedule={"round_crons": ["0 6 * * 0", "0  6 * * 0"]})
    with pytest.raises(BadInputError, match="invalid_schedule: .*round_crons"):
        round_schedules(settings.schedule)


def test_bad_train_cron_names_the_option():
    with pytest.raises(BadInputError, match="schedule.train_cron"):
        load_settings(schedule={"train_cron": "0 6 * * 8"})


def test_time_bounds_come_from_settings_and_rounds_are_never_flow_retried():
    from numerflow.flows.deployments import configured_flows

    settings = load_settings(orchestration={"round_timeout_minutes": 30, "train_timeout_minutes": 10})
    flows = configured_flows(settings)
    assert flows[ROUND].timeout_seconds == 30 * 60 and flows[TRAIN].timeout_seconds == 10 * 60
    assert flows[BACKFILL].timeout_seconds == settings.orchestration.ingest_timeout_minutes * 60
    # No in-process flow retry (it would sleep holding the concurrency slot): the schedule retries.
    assert all(not f.retries for f in flows.values())
    # The decorators' own values (what a worker runs) are the settings' defaults.
    from numerflow.flows.scheduled import scheduled_round_flow

    default = load_settings().orchestration
    assert not scheduled_round_flow.retries
    assert scheduled_round_flow.timeout_seconds == default.round_timeout_minutes * 60
    with pytest.raises(BadInputError, match="round_retries: unknown option"):
        load_settings(orchestration={"round_retries": 2})


def test_prefect_yaml_is_generated_from_the_deployments_code():
    """deployments/prefect.yaml is ``python -m numerflow.flows.deployments``'s output: regenerate it
    when a deployment changes (every deployment, the opt-in ones with their schedules inactive)."""
    from numerflow.flows.deployments import prefect_yaml

    assert (ROOT / "deployments" / "prefect.yaml").read_text() == prefect_yaml()
    spec = yaml.safe_load(prefect_yaml())
    every = by_name(build_deployments(load_settings(schedule={"cadence": "daily"}, classic={"deploy": True},
                                                    crypto={"deploy": True}), read_crypto_crons=False))
    assert {d["name"] for d in spec["deployments"]} == set(every)
    # The Crypto round's times are Numerai's, read when served (deployments/serve.py): none in the file.
    assert next(d for d in spec["deployments"] if d["name"] == "numerflow-crypto")["schedules"] == []
    inactive = {d["name"] for d in spec["deployments"] if any(s.get("active") is False for s in d["schedules"])}
    assert inactive == {"numerflow-prepare", "numerflow-submit", "numerflow-classic"}
    assert all(s["slug"].endswith("-utc") and s["timezone"] == "UTC" for d in spec["deployments"]
               for s in d["schedules"])


def test_prefect_yaml_declares_the_same_deployments():
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"]}
    built = by_name(build_deployments(load_settings()))
    assert set(declared) >= set(built)
    for name, dep in built.items():
        y = declared[name]
        assert y["entrypoint"] == dep.entrypoint
        assert y["parameters"] == dep.parameters
        assert y["concurrency_limit"] == 1
        assert [(s["cron"], s["timezone"]) for s in y["schedules"]] == [
            (s.schedule.cron, s.schedule.timezone) for s in dep.schedules]
        assert [s["slug"] for s in y["schedules"]] == [s.slug for s in dep.schedules]
        assert y["work_pool"]["name"] == "numerflow-process"
        from numerflow.deployments import EXTRA_LOGGERS

        assert y["work_pool"]["job_variables"]["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == EXTRA_LOGGERS
        dockerfile = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
        assert f"PREFECT_LOGGING_EXTRA_LOGGERS={EXTRA_LOGGERS}" in dockerfile


def test_every_entrypoint_loads_its_flow():
    from prefect.flows import load_flow_from_entrypoint

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        names = {spec.key: load_flow_from_entrypoint(spec.entrypoint).name for spec in SPECS + DAILY_SPECS}
    finally:
        os.chdir(cwd)
    assert names == {ROUND: "scheduled-round", TRAIN: "scheduled-train", BACKFILL: "ingest-backfill",
                     SCORES: "scores", PREPARE: "scheduled-prepare", SUBMIT: "scheduled-submit"}


def test_serve_refuses_to_start_without_a_prefect_api(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path)  # no user profile that might carry an API URL
    done = subprocess.run([sys.executable, str(ROOT / "deployments" / "serve.py")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "PREFECT_API_URL" in done.stderr and "scheduled rounds never run" in done.stderr


def test_serve_api_check_accepts_a_configured_api():
    sys.path.insert(0, str(ROOT))
    from numerflow.deployments.serve import api_url_problem

    assert api_url_problem({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}) is None


def test_every_deployment_parameter_is_described_in_the_custom_run_form():
    """The UI's Custom run form shows each parameter's description (from the flow's Google-style
    docstring; the same schema serve.py sends and `prefect deploy` reads from the source)."""
    from prefect.utilities.callables import parameter_schema, parameter_schema_from_entrypoint

    from numerflow.flows.deployments import DAILY_SPECS, SPECS, build_deployments

    settings = load_settings(schedule={"cadence": "daily"})  # every deployment, the daily ones too
    deployments = {d.name: d for d in build_deployments(settings)}
    for spec in SPECS + DAILY_SPECS:
        served = deployments[spec.name(settings)]._parameter_openapi_schema.model_dump()["properties"]
        module, _, attr = spec.entrypoint.rpartition(".")
        path = ROOT / "flows" / f"{module.rpartition('.')[2]}.py"
        from_source = parameter_schema_from_entrypoint(f"{path}:{attr}").model_dump()["properties"]
        for name, prop in served.items():
            assert prop.get("description"), f"{spec.key}: parameter {name!r} has no description"
            assert from_source[name].get("description") == prop["description"]
    round_props = deployments[SPECS[0].name(settings)]._parameter_openapi_schema.model_dump()["properties"]
    demo_only = {n for n, p in round_props.items() if p["description"].startswith("Demo only")}
    assert demo_only == {"tickers", "years", "signal", "seed"}
    from numerflow.flows.round import round_flow

    assert all(p.get("description") for p in parameter_schema(round_flow.fn).model_dump()["properties"].values())
