"""What crosses a layer of a round, typed: each stage's result, and the round's as a whole.

The round's kind (demo or live), its shared inputs, each model's training plan, each model's
run or typed failure, and the round's result. The flows pass these (small: paths, counts, ids) between tasks, the CLI prints them, the run
report renders them and ``--json`` dumps them with ``as_dict``. Nothing big travels in them:
DataFrames stay in the store and are read by path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from numerflow.tasks.classic.data import ClassicFiles
from numerflow.tasks.model.dataset import DatasetInfo
from numerflow.tasks.model.predict import LivePredictions
from numerflow.tasks.numerai.payout import RoundPayout
from numerflow.tasks.numerai.submit import SubmitOutcome
from numerflow.tasks.round.guard import GuardDecision

if TYPE_CHECKING:
    from numerflow.tasks.round.models import RoundModel

Mode = Literal["demo", "live"]


@dataclass(frozen=True)
class RoundKind:
    """Demo or live, whatever the tournament: where the round's data comes from (the built-in demo
    data offline, or Numerai's round) and how the submission leaves (a dry-run record, or
    numerapi's upload once per round and model)."""

    mode: Mode
    round_number: int | None = None  # live: a round named ahead (the daily prepare); None: the open one

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
    """A validation report's files, and its Prefect artifact (the round report links it)."""

    json: str
    markdown: str
    chart: str
    artifact_id: str | None = None


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
    # [neutralize]: proportion, against, features and the figures before it (validation and alpha are after)
    neutralization: dict[str, Any] | None = None
    mmc: dict[str, Any] | None = None  # Crypto: MMC summary on the held-out weekly eras, when a meta model was scored


@dataclass(frozen=True)
class SubmissionFile:
    """The validated submission file, as it will be uploaded."""

    path: str
    sha256: str
    rows: int
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiagnosticsOutcome:
    """A model's diagnostics in a round (``numerai.upload_diagnostics``): ``done``, ``pending`` (polled
    again by the next round or ``numerflow diagnostics``), ``failed`` (the round's upload stands) or
    ``skipped`` (why in ``message``); the agreement table once done (tasks.numerai.diagnostics.AgreementRow)."""

    model: str
    status: str
    message: str
    diagnostics_id: str | None = None
    uploaded: bool = False  # uploaded this round (its model was (re)trained)
    numerai: dict[str, Any] | None = None  # Numerai's summary means: corr, alpha, fnc, mmc
    agreement: tuple[dict[str, Any], ...] = ()

    @property
    def flagged(self) -> bool:
        """Some score differs from numerflow's by more than the tolerance, or Numerai scored other eras."""
        return any(row.get("flagged") for row in self.agreement)


@dataclass(frozen=True)
class ModelRun:
    """One model of the round: its model, live predictions, validated file and upload."""

    name: str | None  # the Numerai model name (None: the single configured model, unnamed in a demo)
    model: ModelChoice
    live: LivePredictions
    submission: SubmissionFile
    upload: SubmitOutcome
    diagnostics: DiagnosticsOutcome | None = None  # numerai.upload_diagnostics on (live rounds)


@dataclass(frozen=True)
class ModelFailure:
    """A model of the round that did not finish: which, at which stage, the error's tag and message."""

    name: str
    stage: str
    tag: str
    message: str  # one line: "<tag>: <what is wrong; what to do>" (tasks.core.failures.describe_failure)

    @classmethod
    def of(cls, name: str, stage: str, exc: BaseException) -> ModelFailure:
        """From the error: its tag is the cause's when a stage wrapped it (``stage_failed``)."""
        from numerflow.tasks.core.failures import describe_failure

        root = exc.__cause__ if getattr(exc, "tag", None) == "stage_failed" and exc.__cause__ else exc
        return cls(name, stage, str(getattr(root, "tag", type(root).__name__)), describe_failure(exc))

    def line(self) -> str:
        return f"{self.name}: {self.message}"


@dataclass(frozen=True)
class RoundInputs:
    """What every model of a round shares, built once by the tournament's stages: the universe (a
    Classic round's live ids), and for Signals/Crypto the resolution, the prices and the dataset;
    for Classic, Numerai's files."""

    universe: UniverseRef
    resolution: Resolution | None = None
    prices: IngestSummary | None = None
    dataset: DatasetInfo | None = None
    data: ClassicFiles | None = None
    payout: RoundPayout | None = None  # live: what Numerai pays this round (roundScoreConfigs), when it answered


@dataclass(frozen=True)
class TrainPlan:
    """One model's training decision: what it trains on, its lineage, and whether it must train."""

    model: RoundModel
    lineage_source: str
    lineage: dict[str, Any]
    must_train: bool
    reason: str
    run_id: str
    training_path: str = ""  # Signals/Crypto: the training file (ours, or joined with Numerai's targets)
    numerai_targets: NumeraiTargets | None = None
    features: tuple[str, ...] = ()  # Classic: the feature set's columns
    own_dataset: str = ""  # Signals/Crypto: numerflow's own dataset of the model (its features neutralise)

    @property
    def members(self) -> list[tuple[str, str]] | None:
        """An ensemble's (target, training file) per member, or None for one model."""
        return self.numerai_targets.members if self.numerai_targets else None


@dataclass(frozen=True)
class RoundResult:
    """A whole round, stage by stage: shared stages once, then one ``ModelRun`` per model that
    succeeded; ``failures`` names every model that did not, with the stage and why."""

    tournament: str
    mode: str  # "demo" or "live"
    universe: UniverseRef
    models: tuple[ModelRun, ...]
    failures: tuple[ModelFailure, ...] = ()
    resolution: Resolution | None = None  # Signals/Crypto
    prices: IngestSummary | None = None  # Signals/Crypto
    dataset: DatasetInfo | None = None  # Signals/Crypto
    data: ClassicFiles | None = None  # Classic: Numerai's files (or the synthetic ones)
    guard: GuardDecision | None = None
    window: dict[str, Any] | None = None  # Numerai's round window when it was asked (live)
    scores: Any = None  # tasks.numerai.live_scores.ScoresReport: live scores of the round's models, when fetched
    payout: RoundPayout | None = None  # live: what Numerai pays this round (its roundScoreConfigs)

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
class PreparedRound:
    """The daily prepare: the shared stages' results and each model's trained or reused model."""

    mode: str
    universe: UniverseRef
    prices: IngestSummary | None
    dataset: DatasetInfo | None
    models: dict[str, ModelChoice]  # model name → choice
    failures: tuple[ModelFailure, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
