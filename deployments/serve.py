"""Serve every numerflow deployment from one process (no work pool needed).

    PREFECT_API_URL=http://127.0.0.1:4200/api python deployments/serve.py

Round (UTC crons), train (its cron) and ingest-backfill (manual), built from settings in
flows/deployments.py. Refuses to start without a Prefect API: without one, Prefect starts a
temporary server that has no scheduler, so scheduled runs would silently never happen.
SIGTERM stops serving without pausing the deployments (``pause_on_shutdown=False``).
"""

from __future__ import annotations

import os
import sys

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


def main() -> int:
    problem = api_url_problem()
    if problem:
        print(f"numerflow serve: {problem}", file=sys.stderr)
        return 2
    from prefect import serve

    from numerflow.flows.deployments import build_deployments
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.errors import NumerflowError

    try:
        deployments = build_deployments(load_settings())
    except NumerflowError as exc:
        print(f"numerflow serve: {exc}", file=sys.stderr)
        return 2
    serve(*deployments, pause_on_shutdown=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
