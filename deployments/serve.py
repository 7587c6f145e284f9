"""Serve every numerflow deployment from one process (no work pool needed).

    PREFECT_API_URL=http://127.0.0.1:4200/api python deployments/serve.py

Round (UTC crons), train (its cron) and ingest-backfill (manual), built from settings in
flows/deployments.py. Refuses to start without a Prefect API: without one, Prefect starts a
temporary server that has no scheduler, so scheduled runs would silently never happen.
SIGTERM stops serving without pausing the deployments (``pause_on_shutdown=False``).

    python -m numerflow.deployments.serve --check

is docker-compose.yml's health check: healthy only while a serve process is polling the server for
the round deployment's runs. Prefect records each poll (the deployment's ``last_polled``) and keeps
the deployment READY; its foreman service marks it NOT_READY once no poll came for
``PREFECT_SERVER_SERVICES_FOREMAN_DEPLOYMENT_LAST_POLLED_TIMEOUT_SECONDS`` (60 s by default), so a
hung or stopped serve process turns the check red. A deployment that merely exists is not enough.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# Library logs (yfinance, lightgbm, numerapi, ours) go to the Prefect UI; set before Prefect
# configures logging, inherited by every flow-run process.
from numerflow.deployments import EXTRA_LOGGERS  # noqa: E402 - no Prefect import behind it

os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", EXTRA_LOGGERS)


def api_url_problem(environ: dict[str, str] | None = None) -> str | None:
    """Why serving would not schedule anything, or None when a Prefect API is configured."""
    from prefect.settings import PREFECT_API_URL

    url = (environ if environ is not None else os.environ).get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if not url:
        return ("no Prefect API configured: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api after "
                "`prefect server start`, or http://server:4200/api in docker compose). Without it Prefect "
                "starts a temporary server with no scheduler and scheduled rounds never run.")
    return None


#: The round flow and its deployment's name suffix (flows/scheduled.py, flows/deployments.py; a test
#: keeps them equal). Constants, so the health check does not import the flows (seconds, every 30 s).
ROUND_FLOW_NAME, ROUND_KEY = "scheduled-round", "round"


def _api_get(path: str, timeout: float) -> Any:
    """GET ``path`` of the configured Prefect API (``PREFECT_API_URL``; ``PREFECT_API_AUTH_STRING`` for a
    server with basic auth). Raises httpx.HTTPError when the server cannot be reached."""
    import base64

    import httpx

    api = _api_settings()
    headers = {}
    if api.auth_string is not None and api.auth_string.get_secret_value():
        token = base64.b64encode(api.auth_string.get_secret_value().encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return httpx.get(f"{api_url()}{path}", headers=headers, timeout=timeout)


def _api_settings() -> Any:
    from prefect.settings import get_current_settings

    return get_current_settings().api


def api_url() -> str:
    """The Prefect API URL serve uses (as ``api_url_problem`` reads it: the environment first)."""
    return str(os.environ.get("PREFECT_API_URL") or _api_settings().url).rstrip("/")


def unreachable(exc: Exception) -> str:
    """The one line a user reads when the Prefect API does not answer: the URL tried and the fix."""
    return (f"the Prefect API at {api_url()} is unreachable ({type(exc).__name__}: {exc}); start it with "
            "`prefect server start` (or `docker compose up -d server`), or point PREFECT_API_URL at a running server")


def check(timeout: float = 5.0) -> tuple[bool, str]:
    """(healthy, why): the round deployment's status on the server is READY, i.e. polled recently.

    Uses the Prefect client settings (``PREFECT_API_URL``, ``PREFECT_API_AUTH_STRING`` for a server
    with basic auth); the deployment name comes from numerflow's settings, as serve builds it.
    """
    import httpx

    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.errors import NumerflowError

    problem = api_url_problem()
    if problem:
        return False, problem
    try:
        name = f"{load_settings().schedule.deployment_prefix}-{ROUND_KEY}"
    except NumerflowError as exc:
        return False, str(exc)
    try:
        response = _api_get(f"/deployments/name/{ROUND_FLOW_NAME}/{name}", timeout)
    except httpx.HTTPError as exc:
        return False, unreachable(exc)
    if response.status_code != 200:
        return False, f"deployment {ROUND_FLOW_NAME}/{name}: HTTP {response.status_code} from the Prefect API"
    deployment = response.json()
    status, polled = deployment.get("status"), deployment.get("last_polled")
    if status != "READY":
        return False, f"deployment {name} is {status} (last polled {polled}): no serve process is polling"
    return True, f"deployment {name} is READY (last polled {polled})"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        healthy, why = check()
        print(f"numerflow serve --check: {why}", file=sys.stdout if healthy else sys.stderr)
        return 0 if healthy else 1
    if args:
        print("usage: python -m numerflow.deployments.serve [--check]", file=sys.stderr)
        return 2
    problem = api_url_problem()
    if problem:
        print(f"numerflow serve: {problem}", file=sys.stderr)
        return 2
    import httpx
    from prefect import serve

    from numerflow.flows.deployments import build_deployments
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.errors import NumerflowError

    try:
        deployments = build_deployments(load_settings())
    except NumerflowError as exc:
        print(f"numerflow serve: {exc}", file=sys.stderr)
        return 2
    try:
        _api_get("/health", timeout=10.0)  # before serve: its own failure would be a raw traceback
        serve(*deployments, pause_on_shutdown=False)
    except httpx.HTTPError as exc:
        print(f"numerflow serve: {unreachable(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
