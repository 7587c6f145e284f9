"""Numerai's own verdict on a model's validation predictions: upload, poll, history, agreement.

Numerai scores validation predictions uploaded to its diagnostics (numerapi 3.1.1
``upload_diagnostics``: ``diagnosticsUploadAuth`` → PUT → ``createDiagnostics``, answering an id)
and answers ``diagnostics(model_id, id)`` with ``status`` (``pending`` until ``done``), summaries
(``validationCorrMean``/``Sharpe``, ``validationAlpha*``, ``validationFncV4*``, ``validationMmc*``,
…) and ``perEraDiagnostics`` (one row per era). Numerai warns that using diagnostics repeatedly
overfits, and rate-limits it, so nothing here uploads unless asked.

Files Numerai accepts:
- **Signals**: ``numerai_ticker``, ``date``, ``signal``, one date per weekly era (Numerai's eras
  are Fridays), and only complete eras (an era with too few tickers is refused as
  ``invalid_submission_eras``): ``signals_diagnostics_frame`` keeps the Friday data dates with at
  least ``min_tickers`` rows and ranks the signal per date into (0, 1).
- **Classic**: ``id``, ``prediction`` over the validation ids (``classic_diagnostics_frame``).

History: every answer is kept as ``diagnostics/<tournament>/<model>/<id>.json`` (the whole answer)
and one row per id in ``diagnostics/<tournament>/summary.parquet`` (``SUMMARY_COLUMNS``), both
written atomically. ``agreement_table`` puts numerflow's own per-era figures beside Numerai's on the
eras both scored, and flags a difference larger than the tolerance: the two scorings have drifted
apart, or the eras uploaded are not the ones scored locally.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_by_group
from numerflow.tasks.core.store import Store, read_json, read_parquet, safe_id, write_json, write_parquet

#: Numerai's eras are weekly, on Fridays (pandas dayofweek 4).
ERA_WEEKDAY = 4
#: local score name → the prefix of Numerai's summary fields and its per-era field.
NUMERAI_FIELDS = {"corr": "validationCorr", "alpha": "validationAlpha", "fnc": "validationFncV4",
                  "mmc": "validationMmc"}
SUMMARY_COLUMNS = ["model", "diagnostics_id", "status", "uploaded_at", "fetched_at", "eras_accepted",
                   *(f"{name}_{stat}" for name in NUMERAI_FIELDS for stat in ("mean", "sharpe")), "message"]
#: default poll schedule (seconds to wait before each poll): about 10 minutes in all, then give up.
POLL_WAITS = (5.0, 10.0, 20.0, 40.0, 60.0, 90.0, 120.0, 120.0, 120.0)


# ------------------------------------------------------------------------------------- files


def signals_diagnostics_frame(predictions: pd.DataFrame, *, ticker_column: str = "numerai_ticker",
                              min_tickers: int = 100) -> pd.DataFrame:
    """Validation predictions (``ticker``, ``date``, ``prediction``; Numerai's own data date in
    ``numerai_date`` when the model trained on Numerai's targets) → the Signals diagnostics file:
    ``numerai_ticker``, ``date`` (YYYY-MM-DD, Fridays), ``signal`` ranked per date in (0, 1).

    Dates that are not Fridays, and Fridays with fewer than ``min_tickers`` predictions, are left
    out (Numerai refuses incomplete eras). Refused when no era is left."""
    missing = {"ticker", "date", "prediction"} - set(predictions.columns)
    if missing:
        raise BadInputError(f"validation predictions lack {sorted(missing)}; they hold "
                            f"{list(predictions.columns)}", tag="invalid_diagnostics")
    dates = pd.to_datetime(predictions["numerai_date"] if "numerai_date" in predictions.columns
                           and predictions["numerai_date"].notna().all() else predictions["date"])
    frame = pd.DataFrame({"ticker": predictions["ticker"].astype(str).to_numpy(), "date": dates.to_numpy(),
                          "prediction": predictions["prediction"].to_numpy(dtype="float64")})
    frame = frame[np.isfinite(frame["prediction"].to_numpy())]
    frame = frame[frame["date"].dt.dayofweek == ERA_WEEKDAY]
    frame = frame.drop_duplicates(["ticker", "date"], keep="last")
    counts = frame.groupby("date")["ticker"].transform("size")
    frame = frame[counts >= min_tickers]
    if frame.empty:
        raise BadInputError(
            f"no validation era can go to Numerai's diagnostics: it needs Friday dates with at least {min_tickers} "
            f"predictions each, and the validation predictions have {int(dates.dt.dayofweek.eq(ERA_WEEKDAY).sum())} "
            "Friday rows; train with more validation dates or more tickers", tag="invalid_diagnostics")
    frame = frame.sort_values(["date", "ticker"]).reset_index(drop=True)
    codes = pd.factorize(frame["date"], sort=True)[0]
    return pd.DataFrame({ticker_column: frame["ticker"].to_numpy(),
                         "date": frame["date"].dt.strftime("%Y-%m-%d").to_numpy(),
                         "signal": rank_by_group(frame["prediction"].to_numpy(), codes)})


def classic_diagnostics_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """Classic validation predictions (``id``, ``prediction``) → the diagnostics file, ranked into (0, 1)."""
    if not {"id", "prediction"} <= set(predictions.columns):
        raise BadInputError(f"Classic validation predictions need id and prediction; they hold "
                            f"{list(predictions.columns)}", tag="invalid_diagnostics")
    frame = predictions[["id", "prediction"]].dropna().drop_duplicates("id", keep="last")
    if frame.empty:
        raise BadInputError("the Classic validation predictions are empty", tag="invalid_diagnostics")
    ranks = rank_by_group(frame["prediction"].to_numpy(dtype="float64"), np.zeros(len(frame), dtype=np.int64))
    return pd.DataFrame({"id": frame["id"].astype(str).to_numpy(), "prediction": ranks})


# ------------------------------------------------------------------------------------- polling


@dataclass(frozen=True)
class DiagnosticsResult:
    """One diagnostics answer as kept: the whole answer in ``raw``."""

    tournament: str
    model: str
    diagnostics_id: str
    status: str
    raw: dict
    fetched_at: str

    @property
    def done(self) -> bool:
        return self.status == "done"

    def summary(self, stat: str = "mean") -> dict[str, float | None]:
        """``{corr, alpha, fnc, mmc}`` → Numerai's mean (or sharpe), None where it gave none."""
        return {name: _float(self.raw.get(f"{prefix}{stat.capitalize()}")) for name, prefix in NUMERAI_FIELDS.items()}

    def per_era(self) -> pd.DataFrame:
        """Numerai's per-era figures: index era (a date for Signals), columns corr/alpha/fnc/mmc."""
        rows = self.raw.get("perEraDiagnostics") or []
        data = {name: [_float(r.get(prefix)) for r in rows] for name, prefix in NUMERAI_FIELDS.items()}
        index = pd.Index([str(r.get("era")) for r in rows], name="era")
        return pd.DataFrame(data, index=index, dtype="float64")


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def poll_diagnostics(fetch: Callable[[], dict], *, waits: Sequence[float] = POLL_WAITS,
                     sleep: Callable[[float], None] = time.sleep) -> dict:
    """Ask ``fetch`` (one ``diagnostics`` query) until its status is ``done`` or the schedule is
    used up; returns the last answer (still ``pending`` when Numerai took longer: poll later)."""
    answer: dict = {}
    for wait in waits:
        sleep(wait)
        answer = fetch() or {}
        if str(answer.get("status", "")).lower() in ("done", "failed", "error"):
            break
    return answer


# ------------------------------------------------------------------------------------- history


def diagnostics_dir(store: Store, tournament: str) -> Path:
    return store.root / "diagnostics" / tournament


def summary_path(store: Store, tournament: str) -> Path:
    return diagnostics_dir(store, tournament) / "summary.parquet"


def record_path(store: Store, tournament: str, model: str, diagnostics_id: str) -> Path:
    folder = diagnostics_dir(store, tournament) / safe_id(model, "model name")
    return folder / f"{safe_id(diagnostics_id, 'diagnostics id')}.json"


def record_upload(store: Store, tournament: str, model: str, diagnostics_id: str, *,
                  predictions_path: Path | None = None, model_dir: Path | None = None,
                  now: dt.datetime | None = None) -> Path:
    """Remember an upload at once (status ``pending``), so a later poll finds it even if this one
    dies; ``predictions_path``: the validation predictions it came from (for the agreement table)."""
    now = now or dt.datetime.now(dt.UTC)
    result = DiagnosticsResult(tournament, model, diagnostics_id, "pending", {}, now.isoformat())
    return save_result(store, result, uploaded_at=now, predictions_path=predictions_path, model_dir=model_dir)


def save_result(store: Store, result: DiagnosticsResult, *, uploaded_at: dt.datetime | None = None,
                predictions_path: Path | None = None, model_dir: Path | None = None) -> Path:
    """Write the whole answer as JSON and its row in the summary (replacing the id's earlier row)."""
    path = record_path(store, result.tournament, result.model, result.diagnostics_id)
    earlier = read_json(path) if path.exists() else {}
    uploaded = (uploaded_at.isoformat() if uploaded_at else earlier.get("uploaded_at")) or result.fetched_at
    predictions = str(predictions_path) if predictions_path else earlier.get("predictions_path")
    registered = str(model_dir) if model_dir else earlier.get("model_dir")
    write_json(path, {**asdict(result), "uploaded_at": uploaded, "predictions_path": predictions,
                      "model_dir": registered})
    summary = history(store, result.tournament)
    means, sharpes = result.summary("mean"), result.summary("sharpe")
    row = {"model": result.model, "diagnostics_id": result.diagnostics_id, "status": result.status,
           "uploaded_at": pd.Timestamp(uploaded), "fetched_at": pd.Timestamp(result.fetched_at),
           "eras_accepted": _float(result.raw.get("erasAcceptedCount")),
           **{f"{name}_mean": means[name] for name in NUMERAI_FIELDS},
           **{f"{name}_sharpe": sharpes[name] for name in NUMERAI_FIELDS},
           "message": str(result.raw.get("message") or "")}
    summary = summary[summary["diagnostics_id"] != result.diagnostics_id]
    summary = pd.concat([summary, pd.DataFrame([row])], ignore_index=True) if len(summary) else pd.DataFrame([row])
    write_parquet(summary_path(store, result.tournament), _typed_summary(summary))
    return path


def _typed_summary(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reindex(columns=SUMMARY_COLUMNS)
    for column in ("uploaded_at", "fetched_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    for column in SUMMARY_COLUMNS[5:-1]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("model", "diagnostics_id", "status", "message"):
        frame[column] = frame[column].astype(str)
    return frame.sort_values(["uploaded_at", "diagnostics_id"]).reset_index(drop=True)


def history(store: Store, tournament: str, model: str | None = None) -> pd.DataFrame:
    """Every diagnostics upload kept, oldest first (optionally one model's)."""
    path = summary_path(store, tournament)
    frame = read_parquet(path) if path.exists() else _typed_summary(pd.DataFrame(columns=SUMMARY_COLUMNS))
    return frame[frame["model"] == model].reset_index(drop=True) if model else frame


def load_result(store: Store, tournament: str, model: str,
                diagnostics_id: str) -> tuple[DiagnosticsResult, Path | None, Path | None]:
    """A kept answer, the validation predictions it was made from and the registered model they
    belong to (each None when unknown)."""
    data = read_json(record_path(store, tournament, model, diagnostics_id))
    result = DiagnosticsResult(data["tournament"], data["model"], data["diagnostics_id"], data["status"],
                               data.get("raw") or {}, data["fetched_at"])
    return (result, Path(data["predictions_path"]) if data.get("predictions_path") else None,
            Path(data["model_dir"]) if data.get("model_dir") else None)


# ------------------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class AgreementRow:
    """One score: numerflow's and Numerai's mean and sharpe on the same eras, and the difference."""

    score: str
    eras: int
    local_mean: float | None
    numerai_mean: float | None
    local_sharpe: float | None
    numerai_sharpe: float | None
    difference: float | None  # local − Numerai, of the means
    flagged: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_sharpe(values: np.ndarray) -> tuple[float | None, float | None]:
    if not len(values):
        return None, None
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return mean, (mean / std if std > 0 else None)


def agreement_table(local_per_era: pd.DataFrame, result: DiagnosticsResult, *,
                    tolerance: float = 0.005) -> list[AgreementRow]:
    """numerflow's per-era figures (index: the era, a date for Signals; columns any of
    corr/alpha/fnc/mmc) beside Numerai's, on the eras both have (matched by ``era_key``). A score
    is flagged when its means differ by more than ``tolerance``, or when Numerai scored eras that
    numerflow did not (the uploaded eras are not the ones scored locally)."""
    numerai = result.per_era()
    numerai.index = pd.Index([era_key(e) for e in numerai.index])
    local = local_per_era.copy()
    local.index = pd.Index([era_key(e) for e in local.index])
    rows = []
    for score in NUMERAI_FIELDS:
        if score not in local.columns or score not in numerai.columns or numerai[score].isna().all():
            continue
        theirs = numerai[score].dropna()
        mine = local[score].dropna()
        common = theirs.index.intersection(mine.index)
        local_mean, local_sharpe = _mean_sharpe(mine.loc[common].to_numpy(dtype="float64"))
        numerai_mean, numerai_sharpe = _mean_sharpe(theirs.loc[common].to_numpy(dtype="float64"))
        difference = None if local_mean is None or numerai_mean is None else local_mean - numerai_mean
        flagged = (difference is None or abs(difference) > tolerance or len(common) < len(theirs))
        rows.append(AgreementRow(score, int(len(common)), local_mean, numerai_mean, local_sharpe, numerai_sharpe,
                                 difference, bool(flagged)))
    return rows


def era_key(era: Any) -> str:
    """An era as both sides can match it: a date as YYYY-MM-DD (Signals), a Classic era as its
    number without ``era`` or leading zeros (``era0575``, ``0575`` and 575 are the same era)."""
    if isinstance(era, (pd.Timestamp, dt.date, np.datetime64)):
        return pd.Timestamp(era).strftime("%Y-%m-%d")
    text = str(era).strip()
    number = text.lower().removeprefix("era")
    if number.isdigit():
        return str(int(number))
    return text[:10] if len(text) >= 10 and text[4] == "-" else text


def local_per_era(predictions: pd.DataFrame) -> pd.DataFrame:
    """numerflow's own figures per era from a model's stored validation predictions, indexed by
    ``era_key``: Signals (``ticker``, ``date`` or ``numerai_date``, ``target``, ``prediction``) →
    CORR on Friday eras; Classic (``era``, ``target``, ``prediction``, ``meta_model``) → CORR and MMC."""
    from numerflow.tasks.model.scoring import numerai_corr_by_date

    labelled = predictions[predictions["target"].notna() & predictions["prediction"].notna()]
    if "era" in labelled.columns:  # Classic
        eras = labelled["era"].to_numpy()
        corr = numerai_corr_by_date(labelled["prediction"].to_numpy(dtype="float64"),
                                    labelled["target"].to_numpy(dtype="float64"), eras)
        frame = pd.DataFrame({"corr": corr.to_numpy()}, index=[era_key(e) for e in corr.index])
        if "meta_model" in labelled.columns:
            from numerflow.tasks.classic.scoring import mmc_by_era

            mmc = mmc_by_era(labelled["prediction"].to_numpy(dtype="float64"),
                             labelled["meta_model"].to_numpy(dtype="float64"),
                             labelled["target"].to_numpy(dtype="float64"), eras)
            frame["mmc"] = mmc.reindex(corr.index).to_numpy()
        return frame
    dates = pd.to_datetime(labelled["numerai_date"] if "numerai_date" in labelled.columns
                           and labelled["numerai_date"].notna().all() else labelled["date"])
    keep = (dates.dt.dayofweek == ERA_WEEKDAY).to_numpy()
    if not keep.any():
        return pd.DataFrame({"corr": pd.Series(dtype="float64")})
    corr = numerai_corr_by_date(labelled.loc[keep, "prediction"].to_numpy(dtype="float64"),
                                labelled.loc[keep, "target"].to_numpy(dtype="float64"), dates[keep].to_numpy())
    return pd.DataFrame({"corr": corr.to_numpy()}, index=[era_key(d) for d in corr.index])


def local_alpha_per_era(model_dir: Path) -> pd.Series | None:
    """numerflow's own ALPHA per Friday era of a registered model (its meta.json's ``per_date_alpha``,
    scored on Numerai's data dates when it trained on Numerai's rows), indexed by ``era_key``; None
    when the model has no ALPHA (no neutralizer was scored)."""
    from numerflow.tasks.model.training import META_FILE

    meta_path = Path(model_dir) / META_FILE
    block = (read_json(meta_path).get("validation_metrics") or {}).get("per_date_alpha") if meta_path.exists() else None
    if not block or not block.get("date"):
        return None
    series = pd.Series(pd.to_numeric(pd.Series(block["alpha"]), errors="coerce").to_numpy(dtype="float64"),
                       index=pd.to_datetime(pd.Series(block["date"])))
    series = series[(series.index.dayofweek == ERA_WEEKDAY) & series.notna().to_numpy()]
    return pd.Series(series.to_numpy(), index=pd.Index([era_key(d) for d in series.index]))


def result_from_answer(tournament: str, model: str, diagnostics_id: str, answer: Mapping[str, Any],
                       now: dt.datetime | None = None) -> DiagnosticsResult:
    """A ``diagnostics`` answer → ``DiagnosticsResult`` (times as ISO strings, so the JSON is plain)."""
    raw = {k: (v.isoformat() if isinstance(v, (dt.datetime, pd.Timestamp)) else v) for k, v in answer.items()}
    return DiagnosticsResult(tournament, model, diagnostics_id, str(raw.get("status") or "pending").lower(), raw,
                             (now or dt.datetime.now(dt.UTC)).isoformat())


# ------------------------------------------------------------------------------------- upload and refresh


def diagnostics_file(store: Store, tournament: str, model: str, predictions_path: Path, *, ticker_column: str,
                     min_tickers: int, now: dt.datetime | None = None) -> Path:
    """The file to upload, built from a model's validation predictions and written atomically
    under ``diagnostics/<tournament>/<model>/uploads/``."""
    from numerflow.tasks.core.store import atomic_path

    if tournament == "crypto":
        raise BadInputError("numerflow uploads diagnostics for Signals and Classic models only; Numerai documents "
                            "no diagnostics file for Crypto", tag="unsupported_tournament")
    predictions = read_parquet(predictions_path)
    frame = (classic_diagnostics_frame(predictions) if tournament == "classic"
             else signals_diagnostics_frame(predictions, ticker_column=ticker_column, min_tickers=min_tickers))
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%S")
    path = diagnostics_dir(store, tournament) / safe_id(model, "model name") / "uploads" / f"{stamp}.csv"
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def refresh_pending(store: Store, tournament: str, model_ids: Mapping[str, str],
                    fetch: Callable[[str, str], dict], *, waits: Sequence[float] = (0.0,),
                    patient: Collection[str] | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> list[DiagnosticsResult]:
    """Poll every kept upload of these models that is not done yet (``fetch(model_id, id)`` is one
    ``diagnostics`` query) and keep each answer; returns the answers. ``patient``: only these ids
    are polled on the whole ``waits`` schedule, the others once (None: every id on ``waits``)."""
    answers = []
    pending = history(store, tournament)
    pending = pending[(pending["status"] != "done") & pending["model"].isin(list(model_ids))]
    for model, diagnostics_id in pending[["model", "diagnostics_id"]].itertuples(index=False):
        def one_query(m: str = str(model), d: str = str(diagnostics_id)) -> dict:
            return fetch(model_ids[m], d)

        schedule = waits if patient is None or diagnostics_id in patient else (0.0,)
        answer = poll_diagnostics(one_query, waits=schedule, sleep=sleep)
        result = result_from_answer(tournament, model, diagnostics_id, answer)
        save_result(store, result)
        answers.append(result)
    return answers


def upload_validation(store: Store, client: Any, model: str, predictions: Path, model_id: str, *,
                      min_tickers: int, model_dir: Path | None = None) -> tuple[str, Path]:
    """Upload a model's validation predictions to Numerai's diagnostics (the file built from them by
    ``diagnostics_file``) and remember the upload at once as ``pending``: its id and the file sent."""
    tournament = client.spec.name
    path = diagnostics_file(store, tournament, model, predictions, ticker_column=client.spec.ticker_column,
                            min_tickers=min_tickers)
    diagnostics_id = client.upload_diagnostics(path, model_id)
    record_upload(store, tournament, model, diagnostics_id, predictions_path=predictions, model_dir=model_dir)
    return diagnostics_id, path


def latest_verdict(store: Store, tournament: str, model: str, tolerance: float,
                   kept: pd.DataFrame | None = None) -> tuple[DiagnosticsResult, list[AgreementRow]]:
    """The model's newest kept diagnostics (``kept``: its history rows, oldest first; read when not
    given) and, once done, the agreement table of numerflow's per-era figures beside Numerai's."""
    mine = history(store, tournament, model) if kept is None else kept
    if mine.empty:
        raise BadInputError(f"no diagnostics kept for model {model!r}", tag="no_diagnostics")
    result, predictions, model_dir = load_result(store, tournament, model, str(mine.iloc[-1]["diagnostics_id"]))
    agreement: list[AgreementRow] = []
    if result.done and predictions is not None and predictions.exists():
        local = local_per_era(read_parquet(predictions))
        alpha = local_alpha_per_era(model_dir) if model_dir is not None else None
        if alpha is not None:
            local = local.join(alpha.rename("alpha"), how="outer")
        agreement = agreement_table(local, result, tolerance=tolerance)
    return result, agreement


def result_text(result: DiagnosticsResult) -> str:
    """One line: the id, its status and Numerai's summary figures."""
    means, sharpes = result.summary("mean"), result.summary("sharpe")
    figures = ", ".join(f"{k} {means[k]:+.4f} (sharpe {sharpes[k]:.2f})" if sharpes[k] is not None
                        else f"{k} {means[k]:+.4f}" for k in NUMERAI_FIELDS if means[k] is not None)
    accepted = _float(result.raw.get("erasAcceptedCount"))
    return (f"diagnostics {result.diagnostics_id} {result.status}" + (f", {figures}" if figures else "")
            + (f", {int(accepted)} eras accepted" if accepted is not None else "")
            + (f" ({result.raw.get('message')})" if result.raw.get("message") else ""))


def agreement_lines(agreement: Sequence[AgreementRow]) -> list[str]:
    """The agreement table as text, one line per score (a flagged one says CHECK)."""
    return [f"{row.score:<6} numerflow {row.local_mean:+.4f}  Numerai {row.numerai_mean:+.4f}  "
            f"difference {row.difference:+.4f} on {row.eras} eras  "
            f"{'CHECK: local and Numerai scoring disagree' if row.flagged else 'ok'}"
            if row.local_mean is not None and row.numerai_mean is not None and row.difference is not None
            else f"{row.score:<6} no common eras  CHECK" for row in agreement]


def diagnostics_report(settings: Any, *, model: str | None = None, upload: bool = False, fetch: bool = True,
                       client: Any = None, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """``numerflow diagnostics``: optionally upload each model's newest validation predictions,
    poll what is pending (needs keys), then per model the latest result, the agreement table and the
    history; ``lines`` is the screen text."""
    from numerflow.tasks.classic.training import classic_model_label
    from numerflow.tasks.model.training import META_FILE, latest_model_of
    from numerflow.tasks.numerai.client import client_for
    from numerflow.tasks.round.models import round_models

    tournament = settings.tournament
    store = Store(settings.data_dir)
    models = []
    for entry in round_models(settings, model):
        own = entry.settings
        name = model if (model and not entry.in_table) else own.numerai.model_name
        if not name:
            raise BadInputError("no model to show diagnostics for: set numerai.model_name, a [[models]] table or "
                                "--model", tag="no_model")
        models.append((name, own, entry))
    lines = [f"numerflow diagnostics: Numerai {tournament}, history {summary_path(store, tournament)}"]
    ids: dict[str, str] = {}
    if upload or fetch:
        client = client or client_for(settings, tournament)
        if client.keys is None:
            raise BadInputError("Numerai's diagnostics need API keys (NUMERAI_PUBLIC_ID / NUMERAI_SECRET_KEY); pass "
                                "--no-fetch to show the stored history", tag="numerai_keys")
        ids = {name: client.resolve_model_id(name) for name, _, _ in models}
    uploaded = []
    if upload:
        for name, own, entry in models:
            latest = latest_model_of(store, tournament, entry.name if entry.in_table else None,
                                     classic_model_label(own))
            predictions = (read_json(latest / META_FILE).get("validation_predictions") if latest else None)
            if not predictions or not Path(predictions).exists():
                raise BadInputError(f"model {name!r} has no registered model with validation predictions in "
                                    f"{store.root}; run a round first (numerflow run)", tag="no_model")
            diagnostics_id, path = upload_validation(store, client, name, Path(predictions), ids[name],
                                                     min_tickers=own.submission.min_tickers, model_dir=latest)
            uploaded.append({"model": name, "diagnostics_id": diagnostics_id, "file": str(path),
                             "registry_model": latest.name if latest else None})
            lines.append(f"  uploaded    {name}: {path.name} from model {latest.name if latest else '?'} "
                         f"→ diagnostics {diagnostics_id}")
    if fetch:
        waits = settings.diagnostics.poll_waits_seconds if upload else (0.0,)
        refresh_pending(store, tournament, ids, client.diagnostics, waits=waits, sleep=sleep)
    kept = history(store, tournament)
    shown: list[dict[str, Any]] = []
    for name, _, _ in models:
        mine = kept[kept["model"] == name]
        if mine.empty:
            lines.append(f"  {name}: no diagnostics yet (numerflow diagnostics --upload)")
            shown.append({"model": name, "latest": None, "agreement": [], "history": []})
            continue
        result, agreement = latest_verdict(store, tournament, name, settings.diagnostics.agreement_tolerance, mine)
        lines.append(f"  {name}: {result_text(result)}")
        lines += [f"    {line}" for line in agreement_lines(agreement)]
        lines.append(f"    history   {len(mine)} upload(s), " + ", ".join(
            f"{r.diagnostics_id[:8]} {r.status}" for r in mine.tail(5).itertuples()))
        shown.append({"model": name, "latest": asdict(result), "agreement": [r.as_dict() for r in agreement],
                      "history": mine.astype(object).where(mine.notna(), None).to_dict("records")})
    return {"tournament": tournament, "uploaded": uploaded, "models": shown, "lines": lines}
