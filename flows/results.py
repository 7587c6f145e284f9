"""What crosses a layer of a round, typed: each stage's result, and the round's as a whole.

The flows pass these (small: paths, counts, ids) between tasks, the CLI prints them, the run
report renders them and ``--json`` dumps them with ``as_dict``. Nothing big travels in them:
DataFrames stay in the store and are read by path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from numerflow.flows.guard import GuardDecision
from numerflow.tasks.model.dataset import DatasetInfo
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.numerai.submit import SubmitOutcome

#: Per-ticker ingest outcomes, in the order summaries show them.
INGEST_STATUSES = ("ok", "stale", "failed", "delisted", "no_data", "unresolved")


@dataclass(frozen=True)
class UniverseRef:
    """This round's universe snapshot in the store."""

    tournament: str
    round_label: str  # "round-1200" (live) or "demo-2026-11-27"
    path: str
    tickers: int
    round_number: int | None = None  # Numerai's round (live only)
    dataset: str | None = None  # the remote file it came from (live only)


@dataclass(frozen=True)
class Resolution:
    """Universe ids → price-source symbols to try, in order (a JSON map in the store)."""

    candidates_path: str
    totals: dict[str, int] | None = None  # resolved / ambiguous / unresolved / total (Yahoo rounds)
    report: list[dict[str, Any]] | None = None  # the per-country resolution table
    # by rule / candidate / lookup / override / unresolved, the unresolved with their reason, and the
    # tickers that need an override (tasks.prices.tickers.resolution_summary)
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class IngestSummary:
    """One ingest run: per-ticker outcome counts, bars written, where the ledger is."""

    source: str
    run_id: str
    prices_dir: str
    ledger_path: str
    last_date: str
    tickers: int
    rows: int
    excluded_rows: int
    repulled: int
    ok: int = 0
    stale: int = 0
    failed: int = 0
    delisted: int = 0
    no_data: int = 0
    unresolved: int = 0
    readiness: dict[str, Any] | None = None  # live rounds: share of the universe with fresh prices
    coverage: dict[str, Any] | None = None  # universe ids with prices (tasks.prices.quality.universe_coverage)
    deduplicated: int = 0  # duplicate vendor bars kept once
    # tickers without fresh bars, grouped by cause (tasks.prices.ingest.failure_groups)
    causes: list[dict[str, Any]] | None = None

    @classmethod
    def from_summary(cls, summary: dict[str, Any], *, prices_dir: str, last_date: str,
                     readiness: dict[str, Any] | None = None,
                     coverage: dict[str, Any] | None = None) -> IngestSummary:
        """From ``finish_ingest``'s summary (the JSON kept in the run folder)."""
        return cls(source=summary["source"], run_id=summary["run_id"], prices_dir=prices_dir,
                   ledger_path=summary.get("ledger_path") or summary["ledger"], last_date=last_date, tickers=summary["tickers"],
                   rows=summary["rows"], excluded_rows=summary["excluded_rows"], repulled=summary["repulled"],
                   readiness=readiness, coverage=coverage, deduplicated=int(summary.get("deduplicated", 0)),
                   causes=summary.get("causes") or None, **{s: int(summary.get(s, 0)) for s in INGEST_STATUSES})

    def counts(self) -> dict[str, int]:
        return {s: getattr(self, s) for s in INGEST_STATUSES}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NumeraiTargets:
    """Our features joined with Numerai's targets (the file the model trains on)."""

    path: str
    rows: int
    version: str
    target_column: str
    members: list[tuple[str, str]] | None = None  # an ensemble: (target, training file) per member


@dataclass(frozen=True)
class ReportPaths:
    json: str
    markdown: str
    chart: str


@dataclass(frozen=True)
class ModelChoice:
    """The model a round predicts with: trained this run, or a fresh one reused."""

    model_id: str
    model_dir: str
    trained: bool
    decision: str  # why it was trained or reused
    validation: dict[str, Any]  # CORR summary on the held-out weekly eras
    lineage_source: str
    report: ReportPaths | None = None  # only when trained this run
    numerai_targets: NumeraiTargets | None = None
    alpha: dict[str, Any] | None = None  # ALPHA summary on the held-out weekly eras, when a neutralizer was scored


@dataclass(frozen=True)
class SubmissionFile:
    """The validated submission file, as it will be uploaded."""

    path: str
    sha256: str
    rows: int
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRun:
    """One model of the round: its model, live predictions, validated file and upload."""

    name: str | None  # the Numerai model name (None: the single configured model, unnamed in a demo)
    model: ModelChoice
    live: LivePredictions
    submission: SubmissionFile
    upload: SubmitOutcome


class RoundParts:
    """What a round result shows of its label and of its first model (all a one-model round has),
    for the Signals/Crypto and the Classic round results alike."""

    __dataclass_fields__: ClassVar[dict[str, Any]]  # the subclasses are dataclasses
    universe: UniverseRef
    models: tuple[ModelRun, ...]

    @property
    def round_label(self) -> str:
        return self.universe.round_label

    # The first model's parts: what a one-model round shows.
    @property
    def model(self) -> ModelChoice:
        return self.models[0].model

    @property
    def live(self) -> LivePredictions:
        return self.models[0].live

    @property
    def submission(self) -> SubmissionFile:
        return self.models[0].submission

    @property
    def upload(self) -> SubmitOutcome:
        return self.models[0].upload

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RoundResult(RoundParts):
    """A whole round, stage by stage: shared stages once, then one ``ModelRun`` per model that
    succeeded; ``failures`` names every model that did not, with why."""

    mode: str  # "demo" or "live"
    universe: UniverseRef
    resolution: Resolution
    prices: IngestSummary
    dataset: DatasetInfo
    models: tuple[ModelRun, ...]
    failures: dict[str, str] = field(default_factory=dict)  # model name → cause
    guard: GuardDecision | None = None
    window: dict[str, Any] | None = None  # Numerai's round window when it was asked (live)
    scores: Any = None  # flows.scores.ScoresReport: live scores of the round's models, when fetched


@dataclass(frozen=True)
class PreparedRound:
    """The daily prepare: the shared stages' results and each model's trained or reused model."""

    mode: str
    universe: UniverseRef
    prices: IngestSummary
    dataset: DatasetInfo
    models: dict[str, ModelChoice]  # model name → choice
    failures: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
