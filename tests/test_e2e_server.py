"""End to end with real servers: PostgreSQL (Debian's package) → `prefect server start` on it →
deployments/serve.py → the round deployment triggered through the Prefect API with parameters
(as the UI's Custom run does) → a submission; triggered again → skipped as already submitted.

The same topology docker-compose.yml runs, without Docker, with two things compose offers on top:
the server requires Prefect's basic auth (PREFECT_SERVER_API_AUTH_STRING; serve.py and its flow runs
authenticate with PREFECT_API_AUTH_STRING), and the numerflow health check
(`python -m numerflow.deployments.serve --check`) is green while serve polls and red once it stopped.
`.ci/run` installs PostgreSQL when missing; locally the test skips (saying why) only if its binaries
are absent.

Cancel means cancel: a live round whose universe download keeps failing waits for a task retry
(AwaitingRetry); cancelled through the API, its process exits, the deployment's concurrency slot
is free at once, it never runs again and no failure webhook is posted (the fake Numerai server and
a webhook receiver run in this test process on 127.0.0.1).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from fakes.numerai_fixtures import universe_parquet
from fakes.numerai_server import FakeNumeraiServer, closed_round, open_round
from test_notify import Receiver

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
# Basic-auth credentials of this run's server (random, never reused); httpx sends them as
# "Authorization: Basic base64(user:password)", the form Prefect 3.8.8's server checks.
AUTH = ("numerflow-e2e", secrets.token_urlsafe(16))
AUTH_STRING = ":".join(AUTH)
# The foreman marks a deployment NOT_READY when its last poll is older than this (default 60 s;
# shortened so the test sees it), checking every FOREMAN_LOOP seconds. serve polls every POLL seconds.
NOT_READY_AFTER, FOREMAN_LOOP, POLL = 15, 2, 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what: str, check, timeout: float, interval: float = 0.5, proc: subprocess.Popen | None = None, log=None):
    """Poll ``check`` until it returns a truthy value; bounded; fails early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited with {proc.returncode}\n{tail(log)}")
        try:
            value = check()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{what}: not ready after {timeout:.0f} s\n{tail(log)}")


def tail(path, n: int = 60) -> str:
    if path is None or not Path(path).exists():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])


def as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the postgres user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def postgres():
    if not PG_BINS:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries absent in CI: .ci/run must install them (apt-get install postgresql)")
        pytest.skip("PostgreSQL binaries absent (/usr/lib/postgresql/*/bin): `apt-get install -y postgresql`; "
                    ".ci/run installs them in CI")
    bindir = Path(PG_BINS[-1]).parent
    # Not under pytest's tmp dir: /tmp/pytest-of-root is private to root, and postgres must reach it.
    base = Path(tempfile.mkdtemp(prefix="numerflow-e2e-pg-"))
    os.chmod(base, 0o777)
    datadir, log = base / "data", base / "postgres.log"
    port = free_port()
    run(as_postgres([str(bindir / "initdb"), "-D", str(datadir), "-A", "trust", "-U", "postgres", "--no-sync"]), 120)
    try:
        run(as_postgres([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w", "-t", "60",
                         "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]), 90)
        run(as_postgres([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                         "prefect"]), 60)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(as_postgres([str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def run(cmd: list[str], timeout: float) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="module")
def prefect_server(postgres, tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_DATABASE_CONNECTION_URL": postgres,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_UI_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_API_AUTH_STRING": AUTH_STRING,
           "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": str(FOREMAN_LOOP),
           "PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS": str(NOT_READY_AFTER)}
    for name in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING"):
        env.pop(name, None)
    log = home / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        # The health probe needs no credentials (compose's server health check relies on it).
        wait_for("prefect server", lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, 180,
                 proc=proc, log=log)
        yield api
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def numerai():
    """The fake Numerai the served live rounds talk to: an open round whose universe download fails."""
    with FakeNumeraiServer() as fake:
        fake.set_round("signals", open_round(1300, hours_left=6))
        fake.add_dataset("signals", "signals/v2.1/live.parquet", universe_parquet(["AAPL US"]))
        yield fake


@pytest.fixture(scope="module")
def webhook():
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def served(prefect_server, numerai, webhook, tmp_path_factory):
    """deployments/serve.py against the server; yields (api, data_dir, log, proc, env)."""
    work = tmp_path_factory.mktemp("serve")
    data_dir = work / "data"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(work / "home"),
           "NUMERFLOW_NUMERAI_API_URL": numerai.url, "NUMERFLOW_ORCHESTRATION__NOTIFY_WEBHOOK_URL": webhook.url,
           "NUMERFLOW_DATA_DIR": str(data_dir), "NUMERFLOW_CONFIG": os.devnull,
           "NUMERFLOW_SCHEDULE__ROUND_MODE": "demo", "PREFECT_LOGGING_LEVEL": "INFO",
           "PREFECT_API_AUTH_STRING": AUTH_STRING, "PREFECT_RUNNER_POLL_FREQUENCY": str(POLL)}
    log = work / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "deployments" / "serve.py")], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def registered():
            r = httpx.post(f"{prefect_server}/deployments/filter", json={}, timeout=5, auth=AUTH)
            names = {d["name"] for d in r.json()}
            return names >= {"numerflow-round", "numerflow-train", "numerflow-ingest-backfill"}

        wait_for("serve.py registers deployments", registered, 120, proc=proc, log=log)
        yield prefect_server, data_dir, log, proc, env
    finally:
        stop(proc)


def deployment(api: str, name: str) -> dict:
    r = httpx.post(f"{api}/deployments/filter", json={"deployments": {"name": {"any_": [name]}}}, timeout=5, auth=AUTH)
    (found,) = r.json()
    return found


def trigger(api: str, deployment_id: str, parameters: dict) -> str:
    """What the UI's Custom run does: POST create_flow_run with the edited parameters."""
    r = httpx.post(f"{api}/deployments/{deployment_id}/create_flow_run",
                   json={"parameters": parameters, "state": {"type": "SCHEDULED"}}, timeout=10, auth=AUTH)
    r.raise_for_status()
    return r.json()["id"]


def wait_final(api: str, run_id: str, timeout: float, log) -> dict:
    def final():
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=5, auth=AUTH).json()
        return run if run["state"]["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

    return wait_for(f"flow run {run_id}", final, timeout, interval=1.0, log=log)


def health_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    """docker-compose.yml's numerflow health check, run with the serve process's environment."""
    return subprocess.run([sys.executable, "-m", "numerflow.deployments.serve", "--check"], env=env,
                          capture_output=True, text=True, timeout=60)


def flow_run_processes(run_id: str) -> list[int]:
    """Pids of processes running this flow run (the runner starts each with PREFECT__FLOW_RUN_ID)."""
    pids = []
    for environ in glob.glob("/proc/[0-9]*/environ"):
        try:
            if f"PREFECT__FLOW_RUN_ID={run_id}".encode() in Path(environ).read_bytes().split(b"\0"):
                pids.append(int(environ.split("/")[2]))
        except OSError:
            continue
    return pids


def task_runs(api: str, run_id: str) -> list[dict]:
    return httpx.post(f"{api}/task_runs/filter", timeout=5, auth=AUTH,
                      json={"flow_runs": {"id": {"any_": [run_id]}}}).json()


def test_cancelled_round_waiting_to_retry_stops_frees_its_slot_and_never_notifies(served, numerai, webhook):
    api, data_dir, log, serve_proc, serve_env = served
    numerai.fail("GET", "http", status=503, times=10_000)  # every universe download: a transient 503
    round_dep = deployment(api, "numerflow-round")
    params = {"mode": "live", "overrides": {"price_source": "yahoo", "numerai": {"retries": 1}}}
    run_id = trigger(api, round_dep["id"], params)

    def waiting_to_retry():
        return [t for t in task_runs(api, run_id) if t["state"]["name"] == "AwaitingRetry"
                and t["task_key"].startswith("numerai_universe_task")] or None

    (waiting,) = wait_for("the universe task waits to retry", waiting_to_retry, 120, interval=0.5, log=log)
    assert flow_run_processes(run_id), "the round's process should be running while its task waits"
    r = httpx.post(f"{api}/flow_runs/{run_id}/set_state", timeout=10, auth=AUTH,
                   json={"state": {"type": "CANCELLING", "name": "Cancelling"}})
    assert r.status_code in (200, 201) and r.json()["status"] == "ACCEPT", r.text
    cancelled = wait_final(api, run_id, 60, log)
    assert cancelled["state"]["type"] == "CANCELLED", cancelled["state"]
    # Its process exits, and the deployment's only slot is free at once.
    wait_for("the cancelled round's process exits", lambda: not flow_run_processes(run_id), 30, log=log)
    limit = httpx.get(f"{api}/v2/concurrency_limits/{round_dep['global_concurrency_limit']['id']}", timeout=5,
                      auth=AUTH).json()
    assert limit["active_slots"] == 0, limit
    downloads_at_cancel = len(numerai.calls("dataset"))

    # The next round starts at once (no AwaitingConcurrencySlot): the round closed, so it is skipped.
    numerai.set_round("signals", closed_round(1300))
    following = wait_final(api, trigger(api, round_dep["id"], params), 120, log)
    assert following["state"]["name"] == "Skipped", following["state"]
    assert following["state"]["message"].startswith("round closed: round 1300 closed at")

    # The cancelled run never comes back, and nothing was posted for it.
    time.sleep(20)  # longer than the task's next retry delay (30 s from the first retry's 10 s ± jitter)
    again = httpx.get(f"{api}/flow_runs/{run_id}", timeout=5, auth=AUTH).json()
    assert again["state"]["type"] == "CANCELLED" and again["run_count"] == 1
    assert again["empirical_policy"]["retries"] == 0  # no in-process flow retry to come back from
    assert len(numerai.calls("dataset")) == downloads_at_cancel
    assert not [t for t in task_runs(api, run_id) if t["state"]["type"] in ("RUNNING", "SCHEDULED")]
    assert webhook.messages == []
    numerai.state.faults.clear()


def test_round_deployment_end_to_end(served):
    api, data_dir, log, serve_proc, serve_env = served
    # Basic auth: without credentials the API refuses; with them it answers.
    assert httpx.post(f"{api}/deployments/filter", json={}, timeout=5).status_code == 401
    wrong = (AUTH[0], "not-the-password")
    assert httpx.post(f"{api}/deployments/filter", json={}, timeout=5, auth=wrong).status_code == 401
    # serve's polls mark the deployment READY; the health check sees it.
    wait_for("round deployment READY", lambda: deployment(api, "numerflow-round")["status"] == "READY", 60,
             proc=serve_proc, log=log)
    healthy = health_check(serve_env)
    assert healthy.returncode == 0 and "numerflow-round is READY" in healthy.stdout, healthy.stderr
    unauthenticated = health_check({k: v for k, v in serve_env.items() if k != "PREFECT_API_AUTH_STRING"})
    assert unauthenticated.returncode == 1 and "HTTP 401" in unauthenticated.stderr

    round_dep = deployment(api, "numerflow-round")
    # Schedules as configured: four UTC crons; concurrency limit 1; typed parameters.
    crons = sorted((s["schedule"]["cron"], s["schedule"]["timezone"]) for s in round_dep["schedules"])
    assert crons == sorted([("30 18 * * 6", "UTC"), ("0 6 * * 0", "UTC"), ("0 6 * * 1", "UTC"), ("0 11 * * 1", "UTC")])
    assert round_dep["concurrency_limit"] == 1 or round_dep["global_concurrency_limit"]["limit"] == 1
    assert round_dep["parameter_openapi_schema"]["properties"]["mode"]["enum"] == ["live", "demo"]
    # The Custom run form describes every parameter; demo-only ones say so.
    form = round_dep["parameter_openapi_schema"]["properties"]
    assert all(p.get("description") for p in form.values())
    assert form["tickers"]["description"].startswith("Demo only")
    assert deployment(api, "numerflow-ingest-backfill")["schedules"] == []

    # The server's scheduler (needs PREFECT_API_URL + SQLAlchemy < 2.1) creates the upcoming runs.
    def scheduled_runs():
        r = httpx.post(f"{api}/flow_runs/filter", timeout=5, auth=AUTH, json={
            "deployments": {"id": {"any_": [round_dep["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
        return r.json()

    upcoming = wait_for("scheduler creates round runs", scheduled_runs, 60, interval=2.0, log=log)
    assert all(run["expected_start_time"].endswith(("+00:00", "Z")) for run in upcoming)

    params = {"mode": "demo", "tickers": 150, "years": 3,
              "overrides": {"training": {"num_boost_round": 40, "num_threads": 1}}}
    started = time.monotonic()
    first = wait_final(api, trigger(api, round_dep["id"], params), 420, log)
    assert first["state"]["type"] == "COMPLETED", f"{first['state']}\n{tail(log)}"
    assert first["state"]["name"] == "Completed"
    submissions = list((data_dir / "submissions" / "signals").glob("demo-*/submission.csv"))
    assert len(submissions) == 1
    rows = submissions[0].read_text().splitlines()
    assert rows[0] == "numerai_ticker,signal" and len(rows) - 1 >= 100
    assert (submissions[0].parent / "upload-record.json").exists()
    report = httpx.post(f"{api}/artifacts/filter", timeout=5, auth=AUTH,
                        json={"artifacts": {"key": {"any_": ["round-report"]}}}).json()
    assert report and "## Ingest ledger" in report[0]["data"]
    print(f"e2e first round: {time.monotonic() - started:.1f} s")

    second = wait_final(api, trigger(api, round_dep["id"], params), 180, log)
    assert second["state"]["type"] == "COMPLETED" and second["state"]["name"] == "Skipped"
    assert second["state"]["message"].startswith(f"skipped: already submitted for round {submissions[0].parent.name}")

    # The deployment stayed READY through the runs (serve kept polling while flows ran).
    assert deployment(api, "numerflow-round")["status"] == "READY"
    assert health_check(serve_env).returncode == 0

    # serve stops (or hangs: either way no more polls) → NOT_READY → the health check turns red.
    stopped_at = time.monotonic()
    stop(serve_proc)
    wait_for("round deployment NOT_READY after serve stopped",
             lambda: deployment(api, "numerflow-round")["status"] == "NOT_READY", NOT_READY_AFTER + 45, log=log)
    assert time.monotonic() - stopped_at >= NOT_READY_AFTER - POLL  # not before the poll timeout
    unhealthy = health_check(serve_env)
    assert unhealthy.returncode == 1 and "numerflow-round is NOT_READY" in unhealthy.stderr
