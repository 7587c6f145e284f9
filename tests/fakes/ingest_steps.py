"""The production ingest path without Prefect, for tests that need a fixed ``as_of``, a fake
sleep or a seeded jitter: the same steps, in the same order, as ``flows.prices.run_price_ingest``.

run id (given, else the unfinished run of this source, else new) → ``plan_ingest`` → per batch,
what the ``ingest-batch`` task does (reload the plan by run id, ``run_batch``) → ``finish_ingest``.
Tests that need the flow itself run ``prices_flow`` under the Prefect test harness.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from numerflow.tasks.core.store import Store, new_run_id
from numerflow.tasks.prices.ingest import (
    IngestOptions,
    IngestResult,
    finish_ingest,
    plan_ingest,
    run_batch,
    unfinished_run_id,
)


def ingest_like_the_flow(
    source: Any,
    store: Store,
    tickers_or_mapping: Sequence[str] | Mapping[str, Sequence[str]],
    *,
    options: IngestOptions | None = None,
    run_id: str | None = None,
    as_of: date | None = None,
    end: date | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> IngestResult:
    options = options or IngestOptions()
    run_id = run_id or unfinished_run_id(store, source.name) or new_run_id()
    plan = plan_ingest(source.name, store, tickers_or_mapping, run_id=run_id, options=options, as_of=as_of, end=end)
    for index in range(len(plan.batches)):
        # The task gets the run id and the batch index, never the plan: it reloads plan.json.
        task_plan = plan_ingest(source.name, store, [], run_id=run_id, options=options)
        run_batch(source, task_plan, index, options=options, sleep=sleep, rng=rng)
    return finish_ingest(plan)
