"""The ``news`` stage: headlines from the news API into ``<data_dir>/news/api`` before the dataset is built,
so the news_sentiment plug-in reads them (tasks/features/news_api.py). Runs only when ``api_fetch_wanted``
(a key, the plug-in selected by the round or one of its ``[[models]]``, no headlines file named) in a live
Signals round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger

from numerflow.flows.policies import network_task
from numerflow.tasks.core.config import Settings
from numerflow.tasks.features.news_api import api_fetch_wanted, fetch_universe_news
from numerflow.tasks.numerai.universe import load_universe_ids
from numerflow.tasks.round.models import round_models
from numerflow.tasks.round.results import UniverseRef


@network_task(name="fetch-news", timeout_seconds=3600)
def fetch_news_task(settings: Settings, universe_path: str, tournament: str) -> dict[str, Any]:
    """Articles since the last fetch for the universe's US listings (incremental; atomic writes)."""
    ids = load_universe_ids(Path(universe_path), tournament).astype(str).tolist()
    return fetch_universe_news(settings.features.news, ids, settings.data_dir)


def news_wanted(settings: Settings, mode: str, universe: UniverseRef) -> bool:
    """A live Signals round whose round or one of its models fetches headlines from the news API."""
    return mode != "demo" and universe.tournament == "signals" and any(
        api_fetch_wanted(model.settings.features) for model in round_models(settings))


def news_stage(settings: Settings, universe: UniverseRef) -> dict[str, Any] | None:
    """Fetch the news (when ``news_wanted``). A failed fetch (after the network retries) is logged, not
    fatal: the dataset then uses the headlines fetched before (the plug-in fails clearly if there are none)."""
    state = fetch_news_task(settings, universe.path, universe.tournament, return_state=True)
    if state.is_completed():
        return state.result()
    get_run_logger().warning("news fetch failed (%s); the dataset uses the headlines fetched before",
                             state.message or state.name)
    return None
