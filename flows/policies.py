"""Retry and timeout policies shared by every flow's tasks (stated again where each task is defined)."""

from __future__ import annotations

from typing import Any

from prefect import task

from numerflow.tasks.core.errors import is_transient


def retry_only_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry network hiccups, never bad input or bugs.

    Must stay a plain function: Prefect silently disables retries for a partial.
    """
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)
        except Exception as error:  # the state holds no readable result
            exc = error
    return isinstance(exc, BaseException) and is_transient(exc)


#: Delays (seconds) between retries of network-bound tasks: exponential, jitter added by Prefect.
NETWORK_RETRY_DELAYS: list[float] = [10, 30, 90]
RETRY_JITTER = 0.5


def network_task(*, name: str, timeout_seconds: float) -> Any:
    """``@task`` for a step that talks to a remote service: 3 retries 10/30/90 s apart (with
    jitter), only for transient errors (network, 5xx, 429), bounded by ``timeout_seconds``.
    The HTTP calls inside carry their own timeouts: Prefect cannot interrupt blocking I/O."""
    return task(name=name, retries=3, retry_delay_seconds=NETWORK_RETRY_DELAYS, retry_jitter_factor=RETRY_JITTER,
                retry_condition_fn=retry_only_transient, timeout_seconds=timeout_seconds)


def default_timeout_seconds(option: str) -> int:
    """A flow's time bound in its decorator: the setting's default (``orchestration.<option>``, minutes),
    so the settings are its one source; deployments apply the configured value (flows/deployments.py)."""
    from numerflow.tasks.core.config import OrchestrationSettings

    return int(OrchestrationSettings.model_fields[option].default) * 60


ROUND_TIMEOUT_SECONDS = default_timeout_seconds("round_timeout_minutes")
TRAIN_TIMEOUT_SECONDS = default_timeout_seconds("train_timeout_minutes")
INGEST_TIMEOUT_SECONDS = default_timeout_seconds("ingest_timeout_minutes")
