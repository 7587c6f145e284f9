"""Shared fixtures. The Prefect test harness (a real, temporary Prefect server + SQLite)
is started once per test session, and only by the tests that need it."""

from __future__ import annotations

import os

import pytest

# Keep Prefect quiet and local in tests; never talk to a user's configured server.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.pop("PREFECT_API_URL", None)
# Tests must never pick up a developer's own config, .env or keys (subprocesses inherit this too).
for name in ("NUMERFLOW_CONFIG", "NUMERFLOW_ENV_FILE", "NUMERAI_PUBLIC_ID", "NUMERAI_SECRET_KEY"):
    os.environ.pop(name, None)
os.environ["NUMERFLOW_CONFIG"] = os.devnull
os.environ["NUMERFLOW_ENV_FILE"] = os.devnull


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
