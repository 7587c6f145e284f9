"""The production ingest steps without Prefect, for tests that need a fixed ``as_of``, a fake
sleep or a seeded jitter: under the store's ``ingest_lock``, ``start_ingest`` → ``run_planned_batch`` per batch (what each
``ingest-batch`` task runs) → ``finish_ingest``, as ``flows.prices.run_price_ingest`` chains them,
only serially. Tests that need the flow itself run ``prices_flow`` under the Prefect test harness.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date

from numerflow.tasks.core.store import Store
from numerflow.tasks.prices.ingest import (
    IngestOptions,
    IngestResult,
    Source,
    finish_ingest,
    ingest_lock,
    run_planned_batch,
    start_ingest,
)


def ingest_like_the_flow(
    source: Source,
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
    with ingest_lock(store, source.name):
        plan = start_ingest(source.name, store, tickers_or_mapping, options=options, run_id=run_id, as_of=as_of,
                            end=end, identity=getattr(source, "identity", None))
        for index in range(len(plan.batches)):
            run_planned_batch(source, store, plan.run_id, index, options=options, sleep=sleep, rng=rng)
        result = finish_ingest(plan)
    release = getattr(source, "release", None)
    if release is not None:  # the flow's end of a files run: the next run scans the folder again
        release()
    return result
