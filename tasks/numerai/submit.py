"""Submitting a file to Numerai: validate, guard the window, upload exactly once, report.

``submit_file`` ties the pieces together: the client (``tasks.numerai.client``: keys, round,
model id, checked upload), the ledger (``tasks.numerai.ledger``: once per tournament, round
and model) and the round's universe snapshot (``tasks.numerai.universe``) the file is checked
against with Numerai's rules (``tasks.numerai.submission``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError, NumerflowError
from numerflow.tasks.core.store import Store, file_sha256
from numerflow.tasks.numerai.churn import check_against_history, churn_message, record_submission
from numerflow.tasks.numerai.client import (
    NumeraiClient,
    NumeraiKeys,
    RoundInfo,
    client_for,
    require_open_window,
    resolve_keys,
    tournament_spec,
)
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.numerai.submission import (
    check_submission_format,
    validate_submission,
    write_dry_run_record,
    write_submission,
)
from numerflow.tasks.numerai.universe import latest_universe_snapshot, load_universe_ids, universe_snapshot_path

log = logging.getLogger(__name__)


@dataclass
class SubmitOutcome:
    """What ``submit_file`` did: ``uploaded``, ``queued`` (the round closed first: uploaded late, queued
    by Numerai for the next round), ``skipped`` (already in the ledger) or ``dry_run``."""

    status: str
    tournament: str
    message: str
    path: str
    sha256: str
    model_name: str | None = None
    model_id: str | None = None
    round: dict | None = None
    submission_id: str | None = None
    diagnostics_id: str | None = None
    diagnostics_error: str | None = None
    record: str | None = None
    validation: dict = field(default_factory=dict)

    @property
    def dry_run(self) -> bool:
        return self.status == "dry_run"

    def as_dict(self) -> dict:
        return asdict(self)


def read_submission_file(path: Path, max_mb: float | None = None) -> pd.DataFrame:
    """The file as a frame; refused before reading when missing, a directory, empty or larger
    than ``max_mb`` (so a huge wrong file is never read whole, let alone sent)."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"submission file {path} does not exist", tag="invalid_submission")
    if path.is_dir():
        raise BadInputError(f"submission file {path} is a directory; give the CSV or Parquet file itself",
                            tag="invalid_submission")
    size = path.stat().st_size
    if size == 0:
        raise BadInputError(f"submission file {path} is empty; write the predictions first", tag="invalid_submission")
    if max_mb is not None and size > max_mb * 1e6:
        raise BadInputError(f"submission file {path} is {size / 1e6:.1f} MB, over the {max_mb:g} MB limit "
                            "(submission.max_file_mb); a Signals submission of the whole universe is well under "
                            "1 MB: is it the right file?", tag="submission_too_large")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype={0: "string"}, keep_default_na=False, na_values=[""])
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"submission file {path} cannot be read ({type(exc).__name__}: {exc})",
                            tag="invalid_submission") from None


def universe_ids_for(store: Store, tournament: str, round_number: int | None) -> pd.Series:
    """Tickers of the round's universe snapshot (or the latest one)."""
    path = universe_snapshot_path(store, tournament, round_number) if round_number is not None else None
    if path is None or not path.exists():
        path = latest_universe_snapshot(store, tournament)
    if path is None:
        raise BadInputError(f"no {tournament} universe snapshot in {store.root / 'universe' / tournament}; "
                            "run `numerflow universe` first", tag="no_universe")
    return load_universe_ids(path, tournament)


def check_submission(path: Path, universe_ids: pd.Series, tournament: str, settings: Settings,
                     out_dir: Path) -> tuple[Path, dict]:
    """Numerai's submission rules on the file as it will be sent (``tasks.numerai.submission``).

    Rows whose ticker is not in the live universe are dropped into a copy in ``out_dir`` (that
    copy is what is sent) and counted; above ``submission.max_off_universe_share`` the file is
    refused. Returns the path to send and the checks' summary."""
    rules = settings.submission
    frame = read_submission_file(path, rules.max_file_mb)
    validation = validate_submission(frame, universe_ids, tournament=tournament, min_tickers=rules.min_tickers)
    ids = frame[tournament_spec(tournament).ticker_column].astype(str)
    off = ~ids.isin(set(universe_ids.astype(str))).to_numpy()
    if off.any():
        share = float(off.mean())
        sample = ids[off].head(5).tolist()
        if share > rules.max_off_universe_share:
            raise BadInputError(
                f"{int(off.sum())} of {len(frame)} tickers in {path} ({share:.0%}) are not in the live {tournament} "
                f"universe (e.g. {sample}), over the {rules.max_off_universe_share:.0%} limit "
                "(submission.max_off_universe_share): is it the right file and tournament?",
                tag="not_in_universe")
        frame = frame.loc[~off].reset_index(drop=True)
        sent, _ = write_submission(frame, Path(out_dir) / f"{path.stem}.in-universe.csv")
        log.warning("dropped %d of %d tickers not in the live universe (e.g. %s); sending %s",
                    int(off.sum()), len(off), sample, sent)
        path = sent
        validation = {**validation, "rows": int(len(frame)), "not_in_universe": 0}
    return path, {**validation, "dropped_not_in_universe": int(off.sum()), "file_sent": str(path)}


def submit_file(
    path: Path,
    settings: Settings,
    *,
    tournament: str | None = None,
    model_name: str | None = None,
    force: bool = False,
    client: NumeraiClient | None = None,
    keys: NumeraiKeys | None = None,
    ledger: SubmissionLedger | None = None,
    universe_ids: pd.Series | None = None,
    diagnostics_path: Path | None = None,
    now: dt.datetime | None = None,
) -> SubmitOutcome:
    """Upload a validated submission file for the open round, exactly once per model.

    Order: validate the file → (no keys: dry-run record, stop) → current round → ledger
    (already sent: skip unless ``force``) → open-window guard → model name → id →
    upload (checked PUT) → ledger entry → optional diagnostics upload. Any failure before
    the ledger entry leaves no entry, so the next run tries again.
    """
    tournament = tournament or settings.tournament
    spec = tournament_spec(tournament)
    model_name = model_name or settings.numerai.model_name
    store = Store(settings.data_dir)
    path = Path(path)
    if client is None and keys is None:
        keys = resolve_keys(settings.numerai)
    has_keys = (client.keys is not None) if client is not None else keys is not None

    if not has_keys:
        # Without keys nothing can be sent (and nothing is asked of the network).
        ids = universe_ids
        if ids is None and latest_universe_snapshot(store, tournament) is not None:
            ids = universe_ids_for(store, tournament, None)
        # A dry run checks everything a real upload checks that needs no network: the file is
        # read and its format checked always; against the universe when a snapshot exists.
        stamp = dt.datetime.now(dt.UTC)
        dry_dir = store.submission_dir(tournament, "dry-run")
        if ids is not None:
            path, validation = check_submission(path, ids, tournament, settings, dry_dir / f"{stamp:%Y%m%dT%H%M%S%fZ}")
            sha256 = file_sha256(path)
        else:
            check_submission_format(read_submission_file(path, settings.submission.max_file_mb), tournament)
            validation = {}
            sha256 = file_sha256(path)
        record_path = write_dry_run_record(
            dry_dir / f"{stamp:%Y%m%dT%H%M%S%fZ}.json",
            reason="no Numerai API keys (NUMERAI_PUBLIC_ID/NUMERAI_SECRET_KEY, settings or Prefect Secret block)",
            tournament=tournament, round_label=None, model_name=model_name, file=str(path), sha256=sha256,
            rows=validation.get("rows"), validated_against_universe=bool(validation),
            would_call=f"{spec.api_class.__name__}.upload_predictions", api_url=settings.numerai.api_url)
        message = (f"DRY RUN — no Numerai API keys: nothing was uploaded. Would upload {path} "
                   f"(sha256 {sha256[:12]}) for model {model_name or '<unset>'}; record: {record_path}")
        if ids is None:  # say so: a file that passes the format check may still miss ids
            message += (f" — its format only was checked: no {tournament} universe snapshot in the store to check "
                        "its ids against (a live round writes one)")
        log.warning(message)
        return SubmitOutcome("dry_run", tournament, message, str(path), sha256, model_name=model_name,
                             record=str(record_path), validation=validation)

    if not model_name:
        raise BadInputError("no model name: set numerai.model_name (NUMERFLOW_NUMERAI__MODEL_NAME) or pass --model",
                            tag="no_model")
    client = client or NumeraiClient.from_settings(settings, tournament, keys)
    ledger = ledger or SubmissionLedger.for_settings(settings)
    current = client.current_round()
    at = now or dt.datetime.now(dt.UTC)
    if current is None or not current.is_open(at):
        closed = current is None or at >= current.close_time
        if not (settings.submission.queue_late and closed):
            require_open_window(current, now)  # raises: not open yet, or closed and late uploads not wanted
        return _queue_late(path, settings, current, tournament=tournament, model_name=model_name, force=force,
                           client=client, ledger=ledger, universe_ids=universe_ids, now=at)
    assert current is not None
    # The whole check-then-upload holds this (round, model): a concurrent submitter (another
    # process, or a second scheduled run) waits, then sees this upload in the ledger and skips.
    with ledger.exclusive(tournament, current.number, model_name):
        done = ledger.get(tournament, current.number, model_name)
        if done is not None and not force and not done.get("queued"):  # a fresh file replaces a queued late one
            message = (f"{tournament} round {current.number} already submitted for model {model_name} at "
                       f"{done['uploaded_at']} (submission {done['submission_id']}, sha256 {done['sha256'][:12]}); "
                       "skipped — pass --force to upload again")
            log.info(message)
            return SubmitOutcome("skipped", tournament, message, str(path),
                                 file_sha256(path) if path.is_file() else "", model_name=model_name,
                                 model_id=done.get("model_id"), round=current.as_dict(),
                                 submission_id=done["submission_id"])
        require_open_window(current, now)
        sent = _check_and_upload(path, settings, client, ledger, tournament=tournament, model_name=model_name,
                                 round_number=current.number, universe_round=current.number,
                                 universe_ids=universe_ids, force=force, now=now)
    message = (f"uploaded {sent.path} to Numerai {tournament} round {current.number} for model {model_name}: "
               f"submission {sent.submission_id}; {churn_message(sent.churn)}")
    log.info(message)
    if sent.churn["warning"]:
        message = f"{message}. {sent.churn['warning']}"
        log.warning(sent.churn["warning"])
    outcome = SubmitOutcome("uploaded", tournament, message, str(sent.path), sent.sha256, model_name=model_name,
                            model_id=sent.model_id, round=current.as_dict(), submission_id=sent.submission_id,
                            record=str(ledger.path), validation=sent.validation)
    if diagnostics_path is not None:
        try:
            outcome.diagnostics_id = client.upload_diagnostics(Path(diagnostics_path), sent.model_id)
            ledger.update(tournament, current.number, model_name, diagnostics_id=outcome.diagnostics_id)
        except NumerflowError as exc:
            # The submission itself stands; the diagnostics failure is reported, not hidden.
            outcome.diagnostics_error = str(exc)
            log.warning("diagnostics upload failed (the submission stands): %s", exc)
    return outcome


def round_status(settings: Settings, tournament: str | None = None, *, client: NumeraiClient | None = None,
                 ledger: SubmissionLedger | None = None, now: dt.datetime | None = None) -> dict:
    """Round number, window, open or not, and the last ledger entry per model."""
    tournament = tournament or settings.tournament
    client = client or client_for(settings, tournament)
    ledger = ledger or SubmissionLedger.for_settings(settings)
    now = now or dt.datetime.now(dt.UTC)
    current = client.current_round()
    status = {
        "tournament": tournament,
        "round": current.as_dict() if current else None,
        "open": bool(current and current.is_open(now)),
        "window": current.window() if current else "no round open",
        "now": now.isoformat(),
        "keys": client.keys.source if client.keys else None,
        "last_submissions": ledger.last_per_model(tournament),
        "payout": None,
    }
    payout = client.round_payout(current.number if current else None)
    if payout is not None:
        from numerflow.tasks.numerai.payout import model_previews, payout_config_text

        own = settings if tournament == settings.tournament else settings.model_copy(update={"tournament": tournament})
        status["payout"] = {"round": payout.round_number, "payout_factor": payout.payout_factor,
                            "scores": [asdict(s) for s in payout.scores], "text": payout_config_text(payout),
                            "models": model_previews(own, payout)}
    return status


@dataclass(frozen=True)
class _Sent:
    path: Path
    sha256: str
    model_id: str
    submission_id: str
    validation: dict
    churn: dict


def _check_and_upload(path: Path, settings: Settings, client: NumeraiClient, ledger: SubmissionLedger, *,
                      tournament: str, model_name: str, round_number: int, universe_round: int,
                      universe_ids: pd.Series | None, force: bool, now: dt.datetime | None,
                      data_datestamp: int | None = None, entry_fields: dict | None = None) -> _Sent:
    """Numerai's rules on the file against ``universe_round``'s universe, the churn gate, the upload
    (late with ``data_datestamp``), the model's history and the ledger entry for ``round_number``.
    The caller holds the ledger's lock for (round, model)."""
    store = Store(settings.data_dir)
    ids = universe_ids if universe_ids is not None else universe_ids_for(store, tournament, universe_round)
    path, validation = check_submission(path, ids, tournament, settings,
                                        store.submission_dir(tournament, f"round-{universe_round}"))
    # Churn/turnover of the file as it will be sent against this model's recent submissions;
    # the gate may refuse here.
    submission_frame = read_submission_file(path)
    churn = check_against_history(store, settings.submission, tournament, model_name, f"round-{round_number}",
                                  submission_frame, now)
    validation = {**validation, "churn": churn}
    model_id = client.resolve_model_id(model_name)
    sha256 = file_sha256(path)  # of the exact bytes about to be sent
    submission_id = client.upload_predictions(path, model_id, data_datestamp=data_datestamp)
    record_submission(store, tournament, model_name, f"round-{round_number}", submission_frame, now)
    ledger.record({
        "tournament": tournament, "round": round_number, "model_name": model_name, "model_id": model_id,
        "submission_id": submission_id, "sha256": sha256, "file": str(path), "rows": validation.get("rows"),
        "uploaded_at": dt.datetime.now(dt.UTC).isoformat(), "forced": bool(force), **(entry_fields or {}),
    })
    return _Sent(path, sha256, model_id, submission_id, validation, churn)


def _queue_late(path: Path, settings: Settings, current: RoundInfo | None, *, tournament: str, model_name: str,
                force: bool, client: NumeraiClient, ledger: SubmissionLedger, universe_ids: pd.Series | None,
                now: dt.datetime) -> SubmitOutcome:
    """The round closed before the upload and ``submission.queue_late`` is on: upload with the
    closed round's data datestamp, which Numerai queues for the next round, and record it as
    queued for that round (never as a submission to the closed one). Once per (next round, model)."""
    closed = current if current is not None else client.last_closed_round(now)
    if closed is not None and closed.data_datestamp is None:  # the current-round query does not carry it
        closed = next((r for r in client.recent_rounds(5) if r.number == closed.number), closed)
    if closed is None or closed.data_datestamp is None:
        raise BadInputError(f"no {tournament} round is open and Numerai gives no closed round with a data datestamp "
                            "to queue a late upload for; nothing was uploaded", tag="round_closed")
    queued_for = closed.number + 1
    with ledger.exclusive(tournament, queued_for, model_name):
        done = ledger.get(tournament, queued_for, model_name)
        if done is not None and not force:
            what = "queued late" if done.get("queued") else "submitted"
            message = (f"{tournament} round {queued_for} already {what} for model {model_name} (submission "
                       f"{done['submission_id']}); skipped — pass --force to upload again")
            log.info(message)
            return SubmitOutcome("skipped", tournament, message, str(path), file_sha256(path) if path.is_file() else "",
                                 model_name=model_name, model_id=done.get("model_id"), round=closed.as_dict(),
                                 submission_id=done["submission_id"])
        sent = _check_and_upload(path, settings, client, ledger, tournament=tournament, model_name=model_name,
                                 round_number=queued_for, universe_round=closed.number, universe_ids=universe_ids,
                                 force=force, now=now, data_datestamp=closed.data_datestamp,
                                 entry_fields={"queued": True, "predicted_for_round": closed.number,
                                               "data_datestamp": closed.data_datestamp})
    message = (f"{tournament} round {closed.number} closed at {closed.close_time:%Y-%m-%d %H:%M} UTC before the upload: "
               f"uploaded {sent.path} late for model {model_name} with data datestamp {closed.data_datestamp}, which "
               f"Numerai queues for round {queued_for} (submission {sent.submission_id}); it is not a submission to "
               f"round {closed.number}")
    log.warning(message)
    return SubmitOutcome("queued", tournament, message, str(sent.path), sent.sha256, model_name=model_name,
                         model_id=sent.model_id, round=closed.as_dict(), submission_id=sent.submission_id,
                         record=str(ledger.path), validation=sent.validation)
