"""numerflow's configuration: one typed object, one home.

Values come from, highest priority first: keyword arguments, environment variables
``NUMERFLOW_*`` (nested fields with ``__``, e.g. ``NUMERFLOW_TRAINING__NUM_BOOST_ROUND=500``),
an optional ``./.env`` file (the same names; the path in ``NUMERFLOW_ENV_FILE``), an optional TOML
file (``./numerflow.toml``, or the path in ``NUMERFLOW_CONFIG``), then the defaults below. Every
option is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from numerflow.tasks.core.crons import crons_field


def ensemble_weights_field(value: list[float] | None) -> list[float] | None:
    """A settings validator's body: every ensemble weight is a finite number >= 0 (NaN would make
    every live prediction NaN; a negative weight would invert a target)."""
    import math

    bad = [w for w in value or [] if not (math.isfinite(w) and w >= 0)]
    if bad:
        raise ValueError(f"ensemble weights must be finite numbers >= 0 (one per target, not all zero), got {bad}")
    return value


class Section(BaseModel):
    """A settings section: an unknown key is an error (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class DemoSettings(Section):
    """The built-in synthetic market (offline, deterministic)."""

    # The upper bounds keep a typo from allocating more than this machine class has: 20,000 tickers
    # x 50 years is ~250 M bars (~40 GB of features); Numerai's universe is ~5,000 tickers.
    tickers: int = Field(600, ge=1, le=20_000, description="number of demo tickers (at most 20,000); the Crypto "
                         "demo has 300 tokens unless this is set")
    years: float = Field(6.0, gt=0, le=50, allow_inf_nan=False, description="years of daily bars (at most 50); "
                         "the Crypto demo has 3 years of bars every day unless this is set")
    signal: float = Field(0.5, ge=0, le=10, allow_inf_nan=False,
                          description="planted predictive signal strength (0 = pure noise, at most 10)")
    seed: int = Field(42, description="random seed; same seed, same market")


class YahooSettings(Section):
    """Yahoo Finance price ingest (``price_source = "yahoo"``); also the ingest knobs for every source."""

    requests_per_second: float = Field(
        1.5, gt=0, description="sustained requests/second to Yahoo, shared by every thread of the process"
    )
    burst: int = Field(2, ge=1, description="requests allowed at once above the sustained rate")
    workers: int = Field(4, ge=1, description="threads fetching symbols concurrently (the limiter sets the pace)")
    batch_size: int = Field(100, ge=1, description="tickers per ingest batch (one Prefect task and one Parquet part each)")
    timeout_seconds: float = Field(10.0, gt=0, description="HTTP timeout of every request to Yahoo")
    max_attempts: int = Field(5, ge=1, description="tries per ticker on 429/5xx/timeouts before it is recorded as failed")
    backoff_base_seconds: float = Field(2.0, ge=0, description="first retry delay; doubles per attempt, with jitter")
    backoff_cap_seconds: float = Field(60.0, ge=0, description="longest retry delay")
    pause_on_429_seconds: float = Field(5.0, ge=0, description="every thread waits this long after a 429")
    overlap_days: int = Field(5, ge=0, description="calendar days re-fetched before each ticker's last stored bar")
    stale_after_days: int = Field(3, ge=0, description="a ticker whose last bar is more trading days old is stale "
                                  "(calendar days for Crypto: tokens trade every day)")
    max_stale_share: float = Field(
        0.1, ge=0, le=1, description="the round refuses to predict when more of the universe is stale or missing"
    )
    jump_factor: float = Field(50.0, gt=1, description="a close this many times above/below its recent median is excluded")
    compact_after_deltas: int = Field(
        20, ge=1, description="a price part is compacted (its delta parts, the bars later ingests added or changed, "
        "merged into it) once it has this many deltas, or up to half as many depending on its number so that "
        "parts do not all compact on the same day; also when its deltas hold half as many rows as it does")
    max_retry_after_seconds: float = Field(
        300.0, ge=0, description="longest Retry-After (from a 429) honoured: every thread waits that long")
    lookup: bool = Field(
        True, description="resolution asks Yahoo's search for tickers the rules cannot spell (Malaysian, Singaporean, "
        "Irish exchange codes, renamed listings), verifies each hit with a price fetch and remembers the winner")
    lookup_limit: int = Field(300, ge=0, description="most tickers searched per resolution (the rest wait a round)")
    needs_override_after: int = Field(
        3, ge=1, description="a ticker failing this many ingests in a row is reported as needing an override")
    max_failed_share: float = Field(
        0.5, ge=0, le=1, description="`numerflow ingest` exits non-zero when more of its tickers failed (or none has bars)")


class FileColumns(Section):
    """Your files' column names, where their headers are not recognised by themselves (numerflow's
    own names, yfinance's ``Date, Open, High, Low, Close, Adj Close, Volume`` and ``Ticker``/
    ``Symbol``/``Name`` are; case, spaces and underscores do not matter)."""

    ticker: str | None = Field(None, description="column holding the ticker (else files.filename_pattern or the file name)")
    date: str | None = Field(None, description="column holding the trading day (e.g. \"Date\")")
    open: str | None = Field(None, description="opening price column")
    high: str | None = Field(None, description="high price column")
    low: str | None = Field(None, description="low price column")
    close: str | None = Field(None, description="raw close column")
    adj_close: str | None = Field(None, description="adjusted close column (e.g. \"Adj Close\")")
    volume: str | None = Field(None, description="volume column")
    currency: str | None = Field(None, description="currency column (ISO code; GBp/ZAc/ILA are 1/100 units)")
    timezone: str | None = Field(None, description="the exchange's IANA time zone column")


class FilesSettings(Section):
    """Bring-your-own prices (``price_source = "files"``): a vendor's CSV/Parquet files (docs/prices.md)."""

    path: Path | None = Field(None, description="a CSV/Parquet file or a directory of them")
    columns: FileColumns = Field(default_factory=FileColumns)
    filename_pattern: str | None = Field(
        None, description="take the ticker from the file name, e.g. \"{ticker}_data.csv\" (instead of a column)")
    country: str | None = Field(
        "US", description="country appended to bare symbols (AAPL -> AAPL US, BRK.B -> BRK/B US; yfinance suffixes such "
        "as VOD.L -> VOD GB are read as theirs); empty keeps symbols as they are")
    dayfirst: bool | None = Field(
        None, description="numeric day/month dates in the files (04/07/2025): true = day first, false = month first; "
        "unset: a file with such dates fails its tickers, since guessed the wrong way they move bars by months "
        "(ISO 2025-07-04 and dates naming the month need nothing)")

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not (len(value.strip()) == 2 and value.strip().isalpha()):
            raise ValueError(f"country must be a two-letter code such as US, got {value!r}")
        return value.strip().upper()


class TargetSettings(Section):
    """Numerai-style forward-return target ("20D2L")."""

    horizon: int = Field(20, ge=1, description="trading days of forward return (calendar days for Crypto)")
    lag: int = Field(2, ge=0, description="trading days between the data date and the start of the return "
                     "(calendar days for Crypto)")
    bins: int = Field(5, ge=2, description="number of target bins (Numerai uses 5: 0, .25, .5, .75, 1)")


class TrainingSettings(Section):
    """LightGBM and the validation split."""

    params: dict[str, Any] = Field(
        default_factory=lambda: {
            # In the spirit of Numerai's example model, scaled to ~20 features.
            "objective": "regression",
            "learning_rate": 0.02,
            "max_depth": 5,
            "num_leaves": 31,
            "colsample_bytree": 0.5,
            "min_data_in_leaf": 200,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "verbose": -1,
        },
        description="LightGBM parameters, passed as is",
    )
    num_boost_round: int = Field(300, ge=1, description="boosting rounds")
    feature_set: Literal["own", "numerai", "both"] = Field(
        "own", description="model inputs: our price features (own), Numerai's feature_* columns from "
        "train/validation and, live, live.parquet (numerai; live rounds only), or both")
    validation_fraction: float = Field(
        0.25, gt=0, lt=1, description="share of the most recent dates held out for validation"
    )
    embargo_days: int = Field(
        5,
        ge=0,
        description="extra calendar days between the last training target's end and validation start "
        "(training rows are already purged so their targets end before validation starts)",
    )
    model_max_age_days: float = Field(
        7.0, ge=0, description="a round retrains when the latest model is older than this"
    )
    num_threads: int = Field(0, ge=0, description="LightGBM threads (0 = all cores)")
    sample: Literal["weekly", "daily"] = Field(
        "weekly",
        description="dates the model is fitted on: weekly (the last trading day of each week ending Friday, "
        "as Numerai's eras; a 20-day target's consecutive daily rows share 19 of 20 days, so daily rows add "
        "little but cost ~5x the time and memory) or daily (every date); validation is scored on every "
        "held-out date either way",
    )
    refit_on_all: bool = Field(
        True,
        description="after validation, refit the live model on every labelled date of the sample (validation "
        "included) with the same parameters; the reported metrics are the held-out model's. The refit has "
        "~1.35x the held-out fit's rows (weekly, 5,000 tickers x 20 years: 4.6 M vs 3.4 M), so false (the "
        "live model is the held-out one) saves ~55-70% of the LightGBM time, but the live model then never "
        "learns the most recent validation_fraction of history",
    )


class SubmissionSettings(Section):
    """Checks every submission passes before it is uploaded (or recorded as a dry run), including churn
    and turnover against the model's own recent submissions (Numerai may not pay above its thresholds;
    sources disagree on them)."""

    min_tickers: int = Field(100, ge=1, description="Numerai's minimum number of valid universe tickers")
    max_file_mb: float = Field(
        20.0, gt=0, allow_inf_nan=False,
        description="a submission file larger than this is refused before it is read (a Signals file of "
        "Numerai's ~5,000-ticker universe is ~0.2 MB)")
    max_off_universe_share: float = Field(
        0.5, ge=0, le=1,
        description="tickers outside the live universe are dropped (and counted) before upload; above this "
        "share of the file the submission is refused (a wrong file or tournament)")
    churn_gate: Literal["warn", "refuse"] = Field(
        "warn", description="above max_churn / max_turnover: warn and upload, or refuse the upload")
    max_churn: float = Field(0.15, gt=0, le=2, description="churn (1 - Spearman) against a recent submission "
                             "at or above which the gate acts")
    max_turnover: float = Field(0.20, gt=0, le=1, description="turnover (half the absolute weight change) "
                                "at or above which the gate acts")
    churn_lookback_days: float = Field(7.0, gt=0, description="recent submissions: those of the last this many days")
    churn_history: int = Field(5, ge=1, description="compare with at most this many recent submissions (newest first)")
    min_neutral_churn_penalty: float = Field(
        0.5, ge=0, le=1, allow_inf_nan=False,
        description="Signals: the neutral-churn payout penalty (the share of a positive payout kept, numerai-tools' "
        "neutral_churn_penalty of the churn left once numerflow's own live features are neutralised out) below "
        "which the churn gate acts like above max_churn (churn_gate: warn, or refuse the upload); 0: never. At "
        "0.5 the neutral churn is about 0.21")
    queue_late: bool = Field(
        False, description="when the round closes between prediction and upload: false (default) refuses the upload "
        "(nothing sent, the round is missed and said so); true uploads it late with the closed round's data "
        "datestamp, which Numerai queues for the next round: recorded as queued for that round, never as a "
        "submission to the closed one")


class NumeraiSettings(Section):
    """Numerai account and API. Keys are secrets: never logged, never in reprs."""

    public_id: SecretStr | None = Field(None, description="API public id (or env NUMERAI_PUBLIC_ID)")
    secret_key: SecretStr | None = Field(None, description="API secret key (or env NUMERAI_SECRET_KEY)")
    model_name: str | None = Field(None, description="model to submit for")
    api_url: str = Field(
        default_factory=lambda: os.environ.get("NUMERFLOW_NUMERAI_API_URL", "https://api-tournament.numer.ai"),
        description="GraphQL endpoint (testing, proxies); also read from env NUMERFLOW_NUMERAI_API_URL "
        "(below NUMERFLOW_NUMERAI__API_URL and numerflow.toml)",
    )
    secret_block: str | None = Field(
        None,
        description="name of a Prefect Secret block holding the keys, as JSON {public_id, secret_key} "
        "or the string 'PUBLIC_ID$SECRET_KEY'; used when the keys are not in settings or env",
    )
    timeout_seconds: float = Field(30.0, gt=0, description="timeout of each Numerai API request")
    retries: int = Field(3, ge=1, description="attempts per API request on transient errors (5xx, 429, network)")
    ledger_path: Path | None = Field(
        None, description="submission ledger (JSON); default <data_dir>/submissions/ledger.json"
    )
    overrides_path: Path | None = Field(
        None, description="CSV of Yahoo symbols that win over the rules: numerai_ticker,yahoo_symbol (Signals) or symbol,yahoo_symbol (Crypto)"
    )
    target_column: str = Field(
        "target", description="Numerai target column to train on when Numerai's data is used; its horizon "
        "(the number ending the name: target_chili_60 = 60 trading days; target = 20) sets the purge")
    ensemble_targets: list[str] = Field(
        default_factory=list, description="train one model per listed Numerai target and rank-average them "
        "(the first is the one the ensemble is scored on); empty: one model on target_column")
    ensemble_weights: list[float] = Field(
        default_factory=list, description="one weight per ensemble target (normalised to sum 1); empty: equal")
    use_numerai_targets: bool = Field(
        True, description="train on Numerai's train/validation targets when they are available (else our own)"
    )
    upload_diagnostics: bool = Field(
        False, description="live rounds: after a model is (re)trained, upload its validation predictions to "
        "Numerai's diagnostics and poll the result ([diagnostics] poll_waits_seconds) in its own task, beside the "
        "upload (never delaying or failing it); the result and the agreement table with numerflow's own per-era "
        "figures go in the round's summary and report, and a result still pending is polled by the next round or "
        "`numerflow diagnostics`. Off by default: Numerai rate-limits diagnostics and warns that using them "
        "repeatedly overfits. A [[models]] entry's upload_diagnostics wins")
    stake: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="the model's stake in NMR, read-only (numerflow never changes stakes): the payout preview of "
        "`numerflow status` is given in NMR for it (None: as a share of the stake)")

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"api_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @field_validator("ensemble_weights")
    @classmethod
    def _weights(cls, value: list[float]) -> list[float]:
        return ensemble_weights_field(value) or []


class ScoresSettings(Section):
    """Live scores fetched back from Numerai (``numerflow scores``, the run report, the scores flow)."""

    last_n_rounds: int = Field(20, ge=1, le=200, description="rounds of scores fetched per model")
    alert_rounds: int = Field(5, ge=1, description="N: the latest N closed rounds are checked for a missed "
                              "submission, and the rolling mean is taken over the latest N scored rounds")
    metric: str = Field("corr", min_length=1, description="score the floor applies to: Numerai's displayName, "
                        "or a part of it (case-insensitive), e.g. corr, mmc, alpha, mpc")
    floor: float | None = Field(None, allow_inf_nan=False, description="notify when a model's mean of the metric "
                                "over the latest alert_rounds scored rounds is below this (None: no floor)")
    cron: str | None = Field("0 8 * * *", description="cron string (UTC) of the scores flow (empty/None: manual "
                             "only); the daily 08:00 sees the previous day's scoring")

    @field_validator("cron")
    @classmethod
    def _fires(cls, value: str | None) -> str | None:
        return crons_field(value)  # type: ignore[return-value]


class NeutralizeSettings(Section):
    """Prediction neutralisation (Signals, Crypto, Classic): each date's (Classic: each era's) predictions less
    ``proportion`` of their least-squares fit on the ``against`` features plus a constant (numerai-tools'
    ``neutralize``), applied
    identically to the validation predictions (so the reported CORR and ALPHA are of what is uploaded; the
    summary shows them before and after) and to the live ones; part of the model's lineage (a change
    retrains). A ``[[models]]`` entry's ``neutralize`` table wins over ``[neutralize]``."""

    proportion: float = Field(
        0.0, ge=0, le=1, allow_inf_nan=False,
        description="share of the features' linear fit taken out of the predictions: 0 (default) leaves them "
        "unchanged, 1 leaves no linear exposure to the features")
    against: list[str] = Field(
        default_factory=lambda: ["own"], min_length=1,
        description="what to neutralise against: \"own\" (Signals/Crypto: every numeric feature of numerflow's "
        "own dataset; Classic: the Classic features the model trains on), \"numerai\" (Signals/Crypto only: "
        "Numerai's numeric feature_* columns; needs training.feature_set numerai or both) and/or feature names "
        "(Signals/Crypto: looked up in numerflow's dataset, then Numerai's; Classic: any feature_* column of "
        "Numerai's Classic files)")


class ModelSettings(Section):
    """One Numerai model of the account (a ``[[models]]`` entry in numerflow.toml). With no entries
    the round submits the single ``numerai.model_name`` with ``[training]`` as it is."""

    name: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="the Numerai model name this entry trains and submits for")
    submit: bool = Field(True, description="upload this model's submission (false: train, predict and validate only)")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="LightGBM parameters merged over [training].params for this model")
    target: str | None = Field(None, description="Numerai target column this model trains on when Numerai's data "
                               "is used (default: numerai.target_column)")
    feature_set: Literal["own", "numerai", "both"] | None = Field(
        None, description="this model's features: own, numerai or both (default: training.feature_set)")
    ensemble_targets: list[str] | None = Field(
        None, description="Numerai targets of this model's ensemble, one LightGBM per target, rank-averaged "
        "(default: numerai.ensemble_targets)")
    ensemble_weights: list[float] | None = Field(
        None, description="weights of ensemble_targets, in their order (default: numerai.ensemble_weights)")
    features: list[str] | None = Field(
        None, description="this model's feature groups: own and names of [features] sources or plug-ins "
        "(default: features.use); models with the same groups share one dataset")
    stake: float | None = Field(
        None, ge=0, allow_inf_nan=False,
        description="this model's stake in NMR, read-only, for its payout preview (default: numerai.stake)")
    upload_diagnostics: bool | None = Field(
        None, description="this model's diagnostics after each (re)training (default: numerai.upload_diagnostics)")
    neutralize: NeutralizeSettings | None = Field(
        None, description="this model's prediction neutralisation, e.g. {proportion = 0.5, against = [\"own\"]} "
        "(default: [neutralize])")

    @field_validator("features")
    @classmethod
    def _feature_groups(cls, value: list[str] | None) -> list[str] | None:
        return feature_group_names(value)

    @field_validator("ensemble_weights")
    @classmethod
    def _weights(cls, value: list[float] | None) -> list[float] | None:
        return ensemble_weights_field(value)

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, value: str) -> str:
        if ".." in value or not value[0].isalnum():
            raise ValueError(f"model name {value!r} must start with a letter or digit and hold no '..' "
                             "(it names a folder in the data dir)")
        return value


def unique_models(models: list[ModelSettings]) -> list[ModelSettings]:
    names = [m.name for m in models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"model names must be unique, listed twice: {', '.join(twice)}")
    return models


class DiagnosticsSettings(Section):
    """Numerai's diagnostics read back (`numerflow diagnostics`): uploads of a model's validation
    predictions, Numerai's answer polled, kept as history and compared with numerflow's own figures.
    Numerai rate-limits diagnostics and warns that using them repeatedly overfits: nothing is uploaded
    unless asked (`numerflow diagnostics --upload`, or `numerai.upload_diagnostics` after each
    (re)training in a live round)."""

    poll_waits_seconds: list[float] = Field(
        default_factory=lambda: [5.0, 10.0, 20.0, 40.0, 60.0, 90.0, 120.0, 120.0, 120.0],
        description="seconds to wait before each poll of an upload's result (about 10 minutes in all); "
        "still pending after the last: `numerflow diagnostics` polls again later")
    agreement_tolerance: float = Field(
        0.005, gt=0, allow_inf_nan=False,
        description="numerflow's and Numerai's mean of a score on the same eras differing by more than this is "
        "flagged: the local scoring and Numerai's have drifted apart, or the eras uploaded differ")

    @field_validator("poll_waits_seconds")
    @classmethod
    def _bounded(cls, value: list[float]) -> list[float]:
        if not value or any(not (0 <= w <= 3600) for w in value) or sum(value) > 3600:
            raise ValueError("poll_waits_seconds needs at least one wait, each between 0 and 3600 seconds and "
                             "at most 3600 seconds in all (a round's diagnostics task is bounded by it)")
        return value


class ScheduleSettings(Section):
    """When the deployments run (docs/operations.md). Cron strings in UTC: Numerai's deadlines are UTC,
    and a local zone would move the runs with daylight saving."""

    cadence: Literal["weekend", "daily"] = Field(
        "weekend", description="\"weekend\": one round a week on round_crons; \"daily\": every Tuesday-Saturday round, "
        "a prepare run (ingest, features, retrain when due) on daily_prepare_crons before the open and a submit run "
        "(predict, validate, upload every model) on daily_submit_crons after it; both read the round's real window "
        "from Numerai, and round_crons are not scheduled")
    daily_prepare_crons: list[str] = Field(
        default_factory=lambda: ["0 9 * * 2-6"],
        description="cron strings (UTC) of the daily prepare: Tuesday-Saturday 09:00, before the 12:00 open")
    daily_submit_crons: list[str] = Field(
        default_factory=lambda: ["10 12 * * 2-6", "30 12 * * 2-6", "0 9 * * 0", "0 13 * * 0"],
        description="cron strings (UTC) of the daily submit: shortly after each Tuesday-Saturday open, a retry "
        "before the Tuesday-Friday 13:00 close, and Sunday retries before the Saturday round's Sunday close; a run "
        "that finds the round closed or every model submitted finishes at once")
    round_crons: list[str] = Field(
        default_factory=lambda: ["30 18 * * 6", "0 6 * * 0", "0 6 * * 1", "0 11 * * 1"],
        description="cron strings (UTC) of the scheduled round: Saturday 18:30 when the round opens, then "
        "Sunday and Monday morning retries before the Monday 14:30 deadline; a run that finds the round "
        "already submitted or closed finishes at once",
    )
    train_cron: str | None = Field(
        "0 6 * * 5", description="cron string (UTC) of the scheduled retrain (empty/None: manual only)"
    )
    round_mode: Literal["live", "demo"] = Field(
        "live", description="what the scheduled round runs: the live Numerai round or the offline demo market"
    )
    min_minutes_before_deadline: float = Field(
        20.0, ge=0, description="a round starting with less time than this before Numerai's deadline is skipped"
    )
    deployment_prefix: str = Field("numerflow", min_length=1, description="prefix of every deployment's name")

    @field_validator("daily_prepare_crons", "daily_submit_crons", "round_crons", "train_cron")
    @classmethod
    def _fire(cls, value: list[str] | str | None) -> list[str] | str | None:
        return crons_field(value)


class OrchestrationSettings(Section):
    """Time bounds, task runner and failure notifications of the unattended flows (a failed round is
    not re-run in its process: the schedule's next firing is the retry)."""

    round_timeout_minutes: float = Field(
        240.0, gt=0, description="a round flow running longer is failed (the schedule's next firing retries), "
        "so a stuck step cannot eat the submission window"
    )
    train_timeout_minutes: float = Field(360.0, gt=0, description="time bound of the scheduled retrain flow")
    ingest_timeout_minutes: float = Field(720.0, gt=0, description="time bound of the manual ingest backfill flow")
    task_runner: Literal["threads", "dask"] = Field(
        "threads", description="runner of ingest batches: threads in the flow's process, or a Dask cluster"
    )
    thread_workers: int | None = Field(
        None, ge=1, description="threads of the thread runner (None: one per core for the offline sources, demo "
        "and files, whose batches are CPU work; Prefect's default, no limit, for Yahoo)")
    dask_address: str | None = Field(
        None, description="tcp://host:8786 of an existing Dask scheduler; None starts a local cluster per flow run"
    )
    dask_workers: int = Field(2, ge=1, description="workers of the local Dask cluster (dask_address unset)")
    dask_threads_per_worker: int = Field(1, ge=1, description="threads per worker of the local Dask cluster")
    notify_webhook_url: SecretStr | None = Field(
        None, description="URL that gets a JSON POST when a round fails or crashes (may embed a token: secret)"
    )
    notify_timeout_seconds: float = Field(10.0, gt=0, description="HTTP timeout of the failure notification")


class FeatureSourceSettings(Section):
    """One feature source (docs/features.md, "Bring your own data"): a table (``path``) or a Python
    plug-in (``plugin``). Its values are joined point-in-time: a value is used from the first of the
    ticker's bars at or after ``timestamp`` (in ``timezone``) + ``lag_hours``, and never before."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$",
                      description="source name; its columns become feature_<name>_<column>")
    path: Path | None = Field(None, description="table: a CSV/Parquet file or a folder of them")
    plugin: str | None = Field(
        None, description="plug-in: a name registered under the numerflow.features entry-point group, or module:function")
    ticker_column: str = Field("numerai_ticker", description="table: ticker column (numerai_ticker, or symbol for Crypto)")
    timestamp_column: str = Field("timestamp", description="table: when each value was published (date or date-time)")
    timestamp_format: str | None = Field(
        None, description="strftime format of every timestamp (e.g. %d/%m/%Y %H:%M); None: ISO 8601 and forms that "
        "name the month are read as they are, and numeric day/month dates (04/07/2025) need dayfirst")
    dayfirst: bool | None = Field(
        None, description="numeric dates such as 04/07/2025: true = day first (4 July), false = month first "
        "(7 April); None: such a date is refused rather than guessed")
    value_columns: list[str] = Field(default_factory=list,
                                     description="table: the value columns (empty: every other column)")
    timezone: str = Field("UTC", description="time zone of timestamps that carry none (IANA name, e.g. America/New_York)")
    lag_hours: float = Field(0.0, ge=0, allow_inf_nan=False,
                             description="hours after its timestamp until a value may be used (the availability lag)")
    max_age_days: float | None = Field(
        14.0, gt=0, description="a value older than this (calendar days since it became usable) is not used: NaN; "
        "None holds it until the next one")
    options: dict[str, Any] = Field(default_factory=dict, description="plug-in: keyword options passed to it")


class NewsSettings(Section):
    """The news-sentiment plug-in's news API (Stock News API wire format) and its demo feed."""

    api_url: str = Field("https://stocknewsapi.com/api/v1", description="news API base URL")
    api_key: SecretStr | None = Field(None, description="news API token (secret; or env NUMERFLOW_FEATURES__NEWS__API_KEY)")
    requests_per_second: float = Field(1.0, gt=0, description="sustained requests/second to the news API")
    timeout_seconds: float = Field(10.0, gt=0, description="HTTP timeout of every news API request")
    max_attempts: int = Field(4, ge=1, description="tries per request on 429/5xx/timeouts")
    backoff_base_seconds: float = Field(1.0, ge=0, description="first retry delay; doubles per attempt")
    backoff_cap_seconds: float = Field(30.0, ge=0, description="longest retry delay")
    items_per_page: int = Field(50, ge=1, le=100, description="articles per API page (the provider's maximum is 50)")
    max_pages: int = Field(10, ge=1, description="pages fetched per ticker at most (each page is one API call)")
    headlines_path: Path | None = Field(
        None, description="headlines JSON (a file or folder of them, the API's shape); default: the fetched "
        "<data_dir>/news/api, or the synthetic feed in a demo round")
    demo_signal: float = Field(0.2, ge=0, le=10, allow_inf_nan=False,
                               description="demo: planted strength of the synthetic news sentiment (0 = no information)")
    sentiment_model: Literal["vader", "finbert"] = Field(
        "vader", description="headline scorer: vader (lexicon, ships with the package) or finbert (the finbert extra: "
        "pip install 'numerflow[finbert]', and its weights in finbert_path)")
    finbert_path: Path | None = Field(
        None, description="folder of FinBERT weights (ProsusAI/finbert: config.json, model.safetensors or "
        "pytorch_model.bin, tokenizer files); numerflow never downloads them")


class FeaturesSettings(Section):
    """Which features the dataset gets: the built-in price features (``own``) and your own sources."""

    use: list[str] | None = Field(
        None, description="feature groups to build: own (the price features) and source or plug-in names; "
        "None = own plus every configured source (CLI: --features own,news_sentiment)")
    sources: list[FeatureSourceSettings] = Field(default_factory=list, description="feature sources (tables, plug-ins)")
    bar_close: str = Field("16:00", pattern=r"^\d{2}:\d{2}$", description="time of day a daily bar is stamped at")
    bar_timezone: str = Field("America/New_York", description="time zone of bar_close")
    min_live_coverage: float = Field(
        0.5, ge=0, le=1, description="a source feature with values for a smaller share of the live universe on the "
        "live date is reported and left out of the model")
    news: NewsSettings = Field(default_factory=NewsSettings)

    @field_validator("use")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        return feature_group_names(value)


def feature_group_names(value: list[str] | None) -> list[str] | None:
    """Checked feature group names (``features.use``, a model's ``features``)."""
    import re

    bad = [name for name in value or [] if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name)]
    if bad:
        raise ValueError(f"{bad} are not feature group names (own, or lower-case source/plug-in names)")
    if value is not None and not value:
        raise ValueError("select at least one feature group (own, or a source/plug-in name)")
    return value


class EnvFileSource(DotEnvSettingsSource):
    """The ``.env`` file (the one docker compose reads too), for local runs.

    Read: ``NUMERFLOW_*`` options, as from the environment (an unknown top-level one is an error, as
    in numerflow.toml), and the Numerai keys ``NUMERAI_PUBLIC_ID``/``NUMERAI_SECRET_KEY`` unless the
    environment has either. Empty values count as unset. Ignored: what only compose or Prefect use
    (``POSTGRES_PASSWORD``, ``PREFECT_*``) and the file-locating variables (``NUMERFLOW_CONFIG``,
    ``NUMERFLOW_ENV_FILE``, ``NUMERFLOW_NUMERAI_API_URL``: environment only).
    """

    ENV_ONLY = ("numerflow_config", "numerflow_env_file", "numerflow_numerai_api_url")

    def __call__(self) -> dict[str, Any]:
        data = EnvSettingsSource.__call__(self)  # the settings fields, read from the file's variables
        prefix = self.env_prefix.lower()
        for name, value in self.env_vars.items():
            option = name.removeprefix(prefix)
            if name.startswith(prefix) and name not in self.ENV_ONLY and value \
                    and option.partition("__")[0] not in self.settings_cls.model_fields:
                data[option] = value  # unknown: validation names it
        keys = {"public_id": "numerai_public_id", "secret_key": "numerai_secret_key"}
        if not any(os.environ.get(name.upper()) for name in keys.values()):
            for field, name in keys.items():
                if self.env_vars.get(name):
                    numerai = data.setdefault("numerai", {})
                    if isinstance(numerai, dict):
                        numerai.setdefault(field, self.env_vars[name])
        return data


class ClassicSettings(Section):
    """Numerai Classic (``tournament = "classic"``): Numerai's own int8 features, LightGBM per target."""

    feature_set: str = Field(
        "medium", description="Numerai's feature set from the dataset's features.json (small, medium, all, ...); "
        "quick mode uses small")
    targets: list[str] = Field(
        default_factory=lambda: ["target"], min_length=1,
        description="targets to train on, one LightGBM model each, rank-averaged; the first is the one the "
        "validation report scores (CORR, FNC, MMC). Each needs a horizon: `target` (20 days) or a name ending "
        "in _20 / _60")
    weights: list[float] = Field(
        default_factory=list, description="ensemble weight per target (empty: equal weights)")
    params: dict[str, Any] = Field(
        default_factory=lambda: {
            # Numerai's example model (example-scripts hello_numerai: LGBMRegressor(n_estimators=2000,
            # learning_rate=0.01, max_depth=5, num_leaves=2**5-1, colsample_bytree=0.1)).
            "objective": "regression",
            "learning_rate": 0.01,
            "max_depth": 5,
            "num_leaves": 31,
            "colsample_bytree": 0.1,
            "verbose": -1,
        },
        description="LightGBM parameters, passed as is (default: Numerai's example model)")
    num_boost_round: int = Field(2000, ge=1, description="boosting rounds (Numerai's example: n_estimators=2000)")
    quick: bool = Field(
        False, description="quick mode: the small feature set, quick_num_boost_round trees at "
        "quick_learning_rate, every quick_era_step-th training era; trains in minutes on 2 cores")
    quick_num_boost_round: int = Field(200, ge=1, description="quick mode: boosting rounds")
    quick_learning_rate: float = Field(0.05, gt=0, description="quick mode: learning rate")
    quick_era_step: int = Field(4, ge=1, description="quick mode: train on every n-th era (Numerai's notebooks "
                                "downsample to every 4th era)")
    embargo_eras: int = Field(
        0, ge=0, description="extra eras dropped between training and validation, beyond the target's horizon "
        "(always dropped: 4 eras for 20-day targets, 12 for 60-day ones)")
    model_name: str | None = Field(
        None, description="Numerai Classic model to upload to; empty: numerai.model_name")
    deploy: bool = Field(
        False, description="serve a numerflow-classic deployment (the scheduled Classic round, with the round guard) "
        "beside the Signals ones")
    crons: list[str] = Field(
        default_factory=lambda: ["10 13 * * 2-6", "35 13 * * 2-6", "0 9 * * 1", "0 13 * * 1"],
        min_length=1,
        description="cron strings (UTC) of the scheduled Classic round: shortly after each Tuesday-Saturday 13:00 "
        "open, a retry before the Tuesday-Friday 14:00 close, and Monday retries before the Saturday round's Monday "
        "14:00 close (numerai/docs, submissions); the real window is read from Numerai, and a run that finds the "
        "round closed or already submitted finishes at once")
    demo_train_eras: int = Field(120, ge=20, le=2000, description="demo: training eras of the synthetic dataset")
    demo_validation_eras: int = Field(40, ge=10, le=1000, description="demo: validation eras")
    demo_ids_per_era: int = Field(300, ge=100, le=20000, description="demo: rows per era (and live rows)")
    demo_features: int = Field(40, ge=4, le=3000, description="demo: number of int8 features")
    demo_signal: float = Field(0.1, ge=0, le=1, description="demo: planted signal strength (0 = none)")
    models: list[ModelSettings] = Field(
        default_factory=list, description="the account's Classic models, one [[classic.models]] table each (empty: "
        "the [[models]] table, else the single classic.model_name): name, submit, params (over [classic] params), "
        "target or ensemble_targets with ensemble_weights, neutralize; every entry trains, validates and uploads on its own in "
        "each Classic round")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[ModelSettings]) -> list[ModelSettings]:
        return unique_models(value)

    @field_validator("crons")
    @classmethod
    def _fire(cls, value: list[str]) -> list[str]:
        return crons_field(value)  # type: ignore[return-value]

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: list[float]) -> list[float]:
        return ensemble_weights_field(value) or []



class CryptoSettings(Section):
    """Numerai Crypto (``tournament = "crypto"``, tournament 12): its scheduled round."""

    deploy: bool = Field(
        False, description="serve a numerflow-crypto deployment (the scheduled Crypto round, with the round guard, "
        "the run report and notifications) beside the Signals ones")
    crons: list[str] = Field(
        default_factory=list, description="cron strings (UTC) of the scheduled Crypto round; empty: read from "
        "Numerai when the deployments are served (its recent Crypto rounds' open times, list_rounds for tournament "
        "12: a run minutes_after_open after each weekday's open)")
    minutes_after_open: int = Field(
        30, ge=0, le=720, description="with crypto.crons empty: how long after each round's open the scheduled "
        "Crypto round runs")
    model_name: str | None = Field(
        None, description="Numerai Crypto model the scheduled Crypto round uploads to; empty: numerai.model_name")

    @field_validator("crons")
    @classmethod
    def _fire(cls, value: list[str]) -> list[str]:
        return crons_field(value)  # type: ignore[return-value]


class Settings(BaseSettings):
    """Everything numerflow can be told. Build with ``load_settings()``."""

    model_config = SettingsConfigDict(
        env_prefix="NUMERFLOW_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(Path("data"), description="root of the Parquet data store")
    tournament: Literal["signals", "crypto", "classic"] = Field(
        "signals", description="which Numerai tournament (classic: Numerai's own features, the [classic] block)")
    price_source: Literal["demo", "yahoo", "files"] = Field(
        "yahoo", description="where daily bars come from for the live commands (`universe`, `ingest`, `run` without "
        "`--demo`); a demo round (`run --demo`, `schedule.round_mode = \"demo\"`) never uses Yahoo: it reads the "
        "offline demo market (or your `files`)")
    demo: DemoSettings = Field(default_factory=DemoSettings)
    yahoo: YahooSettings = Field(default_factory=YahooSettings)
    files: FilesSettings = Field(default_factory=FilesSettings)
    target: TargetSettings = Field(default_factory=TargetSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    submission: SubmissionSettings = Field(default_factory=SubmissionSettings)
    numerai: NumeraiSettings = Field(default_factory=NumeraiSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    scores: ScoresSettings = Field(default_factory=ScoresSettings)
    diagnostics: DiagnosticsSettings = Field(default_factory=DiagnosticsSettings)
    neutralize: NeutralizeSettings = Field(default_factory=NeutralizeSettings)
    classic: ClassicSettings = Field(default_factory=ClassicSettings)
    crypto: CryptoSettings = Field(default_factory=CryptoSettings)
    models: list[ModelSettings] = Field(
        default_factory=list, description="the account's models, one [[models]] table each (empty: the single "
        "numerai.model_name); every entry trains, validates and uploads on its own in each round")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[ModelSettings]) -> list[ModelSettings]:
        return unique_models(value)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(os.path.expanduser(str(value)))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("NUMERFLOW_CONFIG", "numerflow.toml"))
        env_file = Path(os.environ.get("NUMERFLOW_ENV_FILE", ".env"))
        return (init_settings, env_settings, EnvFileSource(settings_cls, env_file=env_file, env_ignore_empty=True),
                TomlConfigSettingsSource(settings_cls, toml_file=toml_path))


def load_settings(**overrides: Any) -> Settings:
    """Settings from kwargs > env > .env > TOML > defaults; a bad value raises BadInputError."""
    import tomllib

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from numerflow.tasks.core.errors import BadInputError

    config = os.environ.get("NUMERFLOW_CONFIG")
    toml_path = Path(config or "numerflow.toml")
    if config and (not toml_path.exists() or toml_path.is_dir()):
        raise BadInputError(f"NUMERFLOW_CONFIG names {toml_path}, which is not a file; fix the path or unset "
                            "NUMERFLOW_CONFIG (then ./numerflow.toml is read when it exists)", tag="invalid_config")
    env_file = Path(os.environ.get("NUMERFLOW_ENV_FILE", ".env"))
    if env_file.is_file():
        try:
            env_file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            line = exc.object[: exc.start].count(b"\n") + 1  # the line only: the value may be a secret
            raise BadInputError(f"env file {env_file} is not UTF-8 text (line {line}); save it as UTF-8, or point "
                                "NUMERFLOW_ENV_FILE at another file", tag="invalid_config") from None
    _refuse_list_items(env_file)
    if toml_path.exists() and not toml_path.is_dir():
        try:
            tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadInputError(f"config file {toml_path} is not valid TOML ({exc}); fix that line",
                                tag="invalid_config") from None
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise BadInputError(
            f"invalid configuration ({problems}); fix the option, NUMERFLOW_* variable, .env or numerflow.toml",
            tag="invalid_config",
        ) from None
    except SettingsError as exc:  # e.g. a NUMERFLOW_* value that must be JSON and is not
        raise BadInputError(f"invalid configuration: {exc} (a dict or list in an environment variable is "
                            "written as JSON, e.g. NUMERFLOW_TRAINING__PARAMS='{\"learning_rate\": 0.01}')",
                            tag="invalid_config") from None
    from numerflow.tasks.core.store import check_data_dir

    check_data_dir(settings.data_dir)  # a file, under a file or under /proc: refused before anything runs
    return settings


def _refuse_list_items(env_file: Path) -> None:
    """``NUMERFLOW_MODELS__0__PARAMS``: pydantic-settings cannot set one entry of a list (``[[models]]``,
    ``features.sources``); name the variable and say how a list is set, instead of "not a valid list"."""
    import re

    from numerflow.tasks.core.errors import BadInputError

    names = [n for n in os.environ if n.upper().startswith("NUMERFLOW_")]
    if env_file.is_file():
        from dotenv import dotenv_values

        names += [n for n in dotenv_values(env_file) if n.upper().startswith("NUMERFLOW_")]
    for name in names:
        match = re.match(r"NUMERFLOW_((?:[A-Z0-9_]+?__)*?[A-Z0-9_]+?)__(\d+)(?:__|$)", name.upper())
        if match:
            option = match.group(1).replace("__", ".").lower()
            example = {"models": '[{"name": "my_model", "params": {"num_leaves": 7}}]',
                       "features.sources": '[{"name": "mine", "path": "mine.csv", "lag_hours": 3}]'}.get(option, "[...]")
            raise BadInputError(
                f"{name} sets entry {match.group(2)} of the list {option}, which an environment variable cannot do: a "
                f"list is set as one JSON value, e.g. NUMERFLOW_{match.group(1)}='{example}' (it replaces the whole "
                f"list of numerflow.toml), or edit that entry in numerflow.toml; unset {name}", tag="invalid_config")


def _problem(err: Any) -> str:
    """One validation error as 'where: what', with a 'did you mean' for a misspelt key."""
    import difflib

    where = ".".join(str(p) for p in err["loc"])
    if err["type"] != "extra_forbidden":
        return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"
    from typing import get_args

    model: Any = Settings
    for part in err["loc"][:-1]:
        if isinstance(part, int):  # an entry of a list of tables ([[models]])
            continue
        field = model.model_fields.get(str(part))
        model = field.annotation if field is not None else None
        if model is not None and get_args(model) and isinstance(get_args(model)[0], type):
            model = get_args(model)[0]  # list[ModelSettings] → ModelSettings
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return f"{where}: unknown option"
    close = difflib.get_close_matches(str(err["loc"][-1]), list(model.model_fields), n=1)
    return f"{where}: unknown option" + (f" (did you mean {close[0]}?)" if close else "")


def merge_overrides(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    """Nested merge: ``extra`` wins key by key (``{"training": {...}}`` keeps other training keys)."""
    out = dict(base)
    for key, value in (extra or {}).items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = merge_overrides(out[key], value) if nested else value
    return out


def settings_for_model(settings: Settings, model: ModelSettings) -> Settings:
    """The settings one ``[[models]]`` entry runs with: its name, its LightGBM parameters over
    ``[training]``, its target column, feature set, ensemble and feature groups
    (``tasks.round.models.round_models`` makes a round's models from them)."""
    numerai: dict[str, Any] = {"model_name": model.name}
    if model.target is not None:
        numerai["target_column"] = model.target
    if model.ensemble_targets is not None:
        numerai["ensemble_targets"] = model.ensemble_targets
    if model.ensemble_weights is not None:
        numerai["ensemble_weights"] = model.ensemble_weights
    if model.stake is not None:
        numerai["stake"] = model.stake
    if model.upload_diagnostics is not None:
        numerai["upload_diagnostics"] = model.upload_diagnostics
    training: dict[str, Any] = {"params": {**settings.training.params, **model.params}}
    if model.feature_set is not None:
        training["feature_set"] = model.feature_set
    update = {"numerai": settings.numerai.model_copy(update=numerai),
              "training": settings.training.model_copy(update=training)}
    if model.neutralize is not None:
        update["neutralize"] = model.neutralize
    if model.features is not None:  # its own feature groups (the sources are declared once, in [features])
        update["features"] = settings.features.model_copy(update={"use": model.features})
    return settings.model_copy(update=update)


def settings_overrides(
    *,
    data_dir: str | Path | None = None,
    tournament: str | None = None,
    model_name: str | None = None,
    price_source: str | None = None,
    tickers: int | None = None,
    years: float | None = None,
    signal: float | None = None,
    seed: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one way CLI options and flow parameters become ``load_settings`` keyword overrides.

    None keeps the configured value; ``tickers``/``years``/``signal``/``seed`` shape the demo
    market; ``extra`` is any nested settings dict and wins over the named options.
    """
    overrides: dict[str, Any] = {}
    if data_dir:
        overrides["data_dir"] = str(data_dir)
    if tournament:
        overrides["tournament"] = tournament
    if price_source:
        overrides["price_source"] = price_source
    if model_name:
        overrides["numerai"] = {"model_name": model_name}
    demo = {k: v for k, v in {"tickers": tickers, "years": years, "signal": signal, "seed": seed}.items()
            if v is not None}
    if demo:
        overrides["demo"] = demo
    return merge_overrides(overrides, extra)


def _type_label(annotation: Any) -> str:
    from typing import get_args, get_origin

    if get_origin(annotation) is Literal:
        return " / ".join(f"`{value}`" for value in get_args(annotation))
    label = annotation.__name__ if isinstance(annotation, type) else str(annotation)
    for noise in ("typing.", "pydantic.types.", "pathlib.", "numerflow.tasks.core.config.", "__main__."):
        label = label.replace(noise, "")
    return label.replace(" | ", " or ")


def settings_reference() -> str:
    """Markdown reference of every option (docs/configuration.md is this text; a test keeps it so)."""
    import inspect
    import json

    lines = [
        "# Configuration reference",
        "",
        "Generated from `tasks/core/config.py` (`python -m numerflow.tasks.core.config > docs/configuration.md`).",
        "",
        "Precedence: keyword arguments / CLI options > environment `NUMERFLOW_*` > `./.env` (or the file",
        "named by `NUMERFLOW_ENV_FILE`) > `numerflow.toml` (or the file named by `NUMERFLOW_CONFIG`) >",
        "defaults. Nested options use `__` in environment variables and `.env`",
        "(`NUMERFLOW_TRAINING__NUM_BOOST_ROUND=500`) and tables in TOML (`[training]`). `.env` may also",
        "hold `NUMERAI_PUBLIC_ID`/`NUMERAI_SECRET_KEY` (used when the environment has neither); its empty",
        "values count as unset, and names only docker compose uses (`POSTGRES_PASSWORD`, `PREFECT_*`) are",
        "ignored. Secrets (`SecretStr`) are never printed.",
        "",
    ]

    def default_of(field: Any) -> str:
        if field.is_required():
            return "(required)"
        if field.default_factory is not None:
            value = field.default_factory()
        else:
            value = field.default
        if isinstance(value, BaseModel):
            return ""
        if isinstance(value, Path):
            value = str(value)
        return json.dumps(value, default=str)

    def section(model: type[BaseModel], prefix: str, env_prefix: str) -> None:
        from typing import get_args

        rows, nested, tables = [], [], []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((name, annotation))
                continue
            item = get_args(annotation)[0] if get_args(annotation) else None
            if isinstance(item, type) and issubclass(item, BaseModel):  # a list of tables: [[name]]
                tables.append((name, item))
                type_name = f"list of `[[{name}]]` tables"
            else:
                type_name = _type_label(annotation)
            rows.append(
                f"| `{prefix}{name}` | `{env_prefix}{name.upper()}` | {type_name} | `{default_of(field)}` | "
                f"{(field.description or '').replace('|', '/')} |"
            )
        if rows:
            lines.extend(["| option | environment | type | default | meaning |", "|---|---|---|---|---|", *rows, ""])
        for name, sub in nested:
            lines.extend([f"## `[{name}]`", "", (sub.__doc__ or "").strip(), ""])
            section(sub, f"{name}.", f"{env_prefix}{name.upper()}__")
        for name, sub in tables:
            lines.extend([f"## `[[{name}]]`", "", inspect.cleandoc(sub.__doc__ or ""), "",
                          f"In the environment the whole list is one JSON value: `{env_prefix}{name.upper()}="
                          f"'[{{\"name\": \"my_model\"}}]'`.", "",
                          "| key | type | default | meaning |", "|---|---|---|---|"])
            for key, field in sub.model_fields.items():
                default = "required" if field.is_required() else f"`{default_of(field)}`"
                lines.append(f"| `{key}` | {_type_label(field.annotation)} | {default} | "
                             f"{(field.description or '').replace('|', '/')} |")
            lines.append("")

    lines.extend(["## Top level", ""])
    section(Settings, "", "NUMERFLOW_")
    lines.extend(["## `[[features.sources]]`", "", (FeatureSourceSettings.__doc__ or "").strip(), ""])
    section(FeatureSourceSettings, "features.sources[].", "(in NUMERFLOW_FEATURES__SOURCES as JSON) ")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(settings_reference(), end="")
