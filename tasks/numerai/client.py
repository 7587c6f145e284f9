"""Numerai through the real ``numerapi`` client: keys, transport, rounds, models, datasets, upload.

What this module adds around numerapi 3.1.1 (the pinned version), and why:

- **Endpoint per client, timeouts, classified errors.** numerapi posts every GraphQL
  request to the module constant ``numerapi.base_api.API_TOURNAMENT_URL`` with no
  timeout, retries 5xx with 5 s / 10 s sleeps, and turns any non-2xx answer into ``{}``
  (the caller then dies on ``KeyError: 'data'``). Mutating that constant would point
  every client in the process at one URL (unsafe with threads and tests), so our
  subclasses override ``raw_query`` (the one method all numerapi calls go through):
  same request body and auth header, but the URL from ``Settings.numerai.api_url``, a
  timeout on every call, retries only on transient failures (5xx, 429, network), and
  explicit ``TransientError`` / ``BadInputError`` with the operation's name. Everything
  else (query texts, parsing, ``download_dataset``, ``upload_predictions``) is numerapi's.
- **Checked presigned PUT.** numerapi's ``upload_predictions`` never looks at the PUT's
  status: while we call it, ``requests.put`` in numerapi's modules is a checked version
  (timeout, raise on non-2xx), so a refused file never becomes a "successful" submission.
- **Per-round downloads.** ``download_dataset`` silently skips an existing file of the
  same size: we download into a fresh temporary file and rename it to a per-round name.
- **Exactly once** lives next door: ``tasks.numerai.ledger`` (``SubmissionLedger``) and
  ``tasks.numerai.submit`` (``submit_file``); the live universe is ``tasks.numerai.universe``.
  This module imports neither, so they can all import it.
- **Secrets.** Keys live in ``NumeraiKeys`` (``SecretStr``), are scrubbed from every
  message we build, and appear in no repr, log, ledger or dry-run record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numerapi
import pandas as pd
import requests
from pydantic import SecretStr

from numerflow.tasks.core.config import NumeraiSettings, Settings
from numerflow.tasks.core.errors import BadInputError, NumerflowError, TransientError
from numerflow.tasks.core.store import Store, atomic_path

if TYPE_CHECKING:
    from numerflow.tasks.numerai.payout import RoundPayout

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- tournaments


@dataclass(frozen=True)
class TournamentSpec:
    """What differs between Numerai Signals, Crypto and Classic."""

    name: str
    id: int
    ticker_column: str  # the id column of live files and submissions
    dataset_prefix: str  # list_datasets names are "<prefix>/vX.Y/<file>"; Classic's have none ("vX.Y/<file>")
    live_files: tuple[str, ...]  # live-universe file names, preferred first
    api_class: type
    signal_column: str = "signal"  # the submission's value column (Classic: ``prediction``)


SIGNALS = TournamentSpec("signals", 11, "numerai_ticker", "signals", ("live.parquet",), numerapi.SignalsAPI)
#: Crypto: v2's live.parquet (the universe with Numerai's live features) before the v1 layout's live_universe.parquet.
CRYPTO = TournamentSpec(
    "crypto", 12, "symbol", "crypto", ("live.parquet", "live_universe.parquet"), numerapi.CryptoAPI
)
#: Classic: ``NumerAPI`` (tournament 8), datasets named ``v5.x/…`` (no prefix), ``id,prediction`` files.
CLASSIC = TournamentSpec("classic", 8, "id", "", ("live.parquet",), numerapi.NumerAPI, signal_column="prediction")
TOURNAMENTS: dict[str, TournamentSpec] = {"signals": SIGNALS, "crypto": CRYPTO, "classic": CLASSIC}
#: Numerai's tournament ids, for naming the tournament a model belongs to.
TOURNAMENT_NAMES = {8: "classic", 11: "signals", 12: "crypto"}


def tournament_spec(name: str) -> TournamentSpec:
    try:
        return TOURNAMENTS[name]
    except KeyError:
        raise BadInputError(f"unknown tournament {name!r}; use one of {sorted(TOURNAMENTS)}",
                            tag="unknown_tournament") from None


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, repr=False)
class NumeraiKeys:
    """API keys. ``repr``/``str`` never show them; ``source`` says where they came from."""

    public_id: SecretStr
    secret_key: SecretStr
    source: str

    def __repr__(self) -> str:
        return f"NumeraiKeys(source={self.source!r}, public_id=SecretStr('**********'), secret_key=SecretStr('**********'))"

    __str__ = __repr__

    def secrets(self) -> tuple[str, str]:
        return self.public_id.get_secret_value(), self.secret_key.get_secret_value()


def load_prefect_secret(block_name: str) -> tuple[str, str]:
    """Keys from a Prefect ``Secret`` block: JSON {public_id, secret_key} or 'PUBLIC$SECRET'."""
    from prefect.blocks.system import Secret

    try:
        value = cast("Secret[Any]", Secret.load(block_name)).get()  # sync context: not a coroutine
    except ValueError as exc:
        raise BadInputError(f"Prefect Secret block {block_name!r} could not be loaded ({type(exc).__name__}); "
                            "create it or unset numerai.secret_block", tag="numerai_keys") from None
    if isinstance(value, dict) and {"public_id", "secret_key"} <= set(value):
        return str(value["public_id"]), str(value["secret_key"])
    if isinstance(value, str) and value.count("$") == 1:
        public_id, secret_key = value.split("$")
        return public_id, secret_key
    raise BadInputError(
        f"Prefect Secret block {block_name!r} must hold JSON {{\"public_id\": ..., \"secret_key\": ...}} "
        "or the string 'PUBLIC_ID$SECRET_KEY'",
        tag="numerai_keys",
    )


def checked_keys(public_id: str, secret_key: str, source: str) -> NumeraiKeys:
    """Keys stripped of surrounding whitespace (a CRLF env file leaves a trailing ``\\r``), then
    refused if anything but printable ASCII is left: such a key would end up verbatim in an HTTP
    library's "invalid header" error. The message names the key and its source, never its value."""
    cleaned = []
    for what, value in (("public id", public_id), ("secret key", secret_key)):
        value = value.strip()
        if not value or any(not 33 <= ord(c) <= 126 for c in value):
            raise BadInputError(
                f"invalid_keys: the Numerai {what} from {source} "
                f"{'is empty' if not value else 'holds a space, control or non-ASCII character'}; "
                "copy it again from numer.ai (account → API keys), one line, nothing around it",
                tag="numerai_keys")
        cleaned.append(value)
    return NumeraiKeys(SecretStr(cleaned[0]), SecretStr(cleaned[1]), source)


def resolve_keys(
    settings: NumeraiSettings,
    env: Mapping[str, str] | None = None,
    secret_loader: Callable[[str], tuple[str, str]] = load_prefect_secret,
) -> NumeraiKeys | None:
    """Keys from, first found: settings (``NUMERFLOW_NUMERAI__PUBLIC_ID``…), env
    ``NUMERAI_PUBLIC_ID``/``NUMERAI_SECRET_KEY``, the Prefect Secret block named in
    ``settings.secret_block``. None when there are none (→ dry run). Half a pair is an error."""
    env = os.environ if env is None else env
    candidates = [
        ("settings", settings.public_id.get_secret_value() if settings.public_id else "",
         settings.secret_key.get_secret_value() if settings.secret_key else ""),
        ("env", env.get("NUMERAI_PUBLIC_ID", ""), env.get("NUMERAI_SECRET_KEY", "")),
    ]
    for source, public_id, secret_key in candidates:
        if public_id.strip() and secret_key.strip():
            return checked_keys(public_id, secret_key, source)
        if public_id.strip() or secret_key.strip():
            missing = "secret key" if public_id else "public id"
            raise BadInputError(f"the Numerai {missing} is missing from {source}; set both "
                                "NUMERAI_PUBLIC_ID and NUMERAI_SECRET_KEY (or neither for a dry run)",
                                tag="numerai_keys")
    if settings.secret_block:
        public_id, secret_key = secret_loader(settings.secret_block)
        if public_id.strip() and secret_key.strip():
            return checked_keys(public_id, secret_key, f"prefect-secret:{settings.secret_block}")
        raise BadInputError(f"Prefect Secret block {settings.secret_block!r} holds an empty key", tag="numerai_keys")
    return None


# --------------------------------------------------------------------------- transport

_AUTH_WORDS = ("authenticat", "api key", "api token", "token", "unauthori", "permission", "forbidden", "credential")
_CLOSED_WORDS = ("not open", "closed", "deadline", "window")
_TRANSIENT_WORDS = ("internal server error", "timeout", "timed out", "try again", "temporarily", "unavailable")


def _operation_of(query: str) -> str:
    """The first field of a GraphQL document (``listDatasets``, ``createSignalsSubmission``…)."""
    match = re.search(r"\{\s*(\w+)", query)
    return match.group(1) if match else "graphql"


class _NumerflowTransport:
    """``raw_query`` with our endpoint, timeout and error policy (mixed into numerapi's classes)."""

    _nf_url: str
    _nf_timeout: float
    _nf_retries: int
    _nf_sleep: Callable[[float], None]
    _nf_session: requests.Session
    _nf_secrets: tuple[str, ...]
    token: Any  # numerapi's (public id, secret key) or None, set by its constructor

    def _nf_configure(self, url: str, timeout: float, retries: int, sleep: Callable[[float], None],
                      secrets: tuple[str, ...]) -> None:
        self._nf_url = url
        self._nf_timeout = timeout
        self._nf_retries = retries
        self._nf_sleep = sleep
        self._nf_session = requests.Session()
        self._nf_secrets = tuple(s for s in secrets if s)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} url={self._nf_url!r} authenticated={self.token is not None}>"

    def _nf_scrub(self, text: str) -> str:
        for secret in self._nf_secrets:
            text = text.replace(secret, "***")
        return text

    def raw_query(self, query: str, variables: dict | None = None, authorization: bool = False,
                  *, retries: int = 3, delay: int = 5, backoff: int = 2) -> dict:
        operation = _operation_of(query)
        headers = {"Content-type": "application/json", "Accept": "application/json"}
        if authorization:
            if not self.token:
                raise BadInputError(f"{operation} needs Numerai API keys; set NUMERAI_PUBLIC_ID and "
                                    "NUMERAI_SECRET_KEY (or the Prefect Secret block)", tag="numerai_keys")
            public_id, secret_key = self.token
            headers["Authorization"] = f"Token {public_id}${secret_key}"
        body = {"query": query, "variables": variables}
        wait = 1.0
        for attempt in range(1, self._nf_retries + 1):
            problem = self._nf_attempt(operation, body, headers)
            if isinstance(problem, dict):
                return problem
            if attempt < self._nf_retries:
                log.warning("Numerai %s: %s (attempt %d/%d), retrying in %.0f s",
                            operation, problem, attempt, self._nf_retries, wait)
                self._nf_sleep(wait)
                wait *= 2
        raise TransientError(
            f"Numerai API {operation} failed {self._nf_retries} times, last: {problem}; "
            f"Numerai may be down or unreachable at {self._nf_url}: retry later",
            tag="numerai_unavailable",
        )

    def _nf_attempt(self, operation: str, body: dict, headers: dict) -> dict | str:
        """The parsed answer, or a string describing a transient failure worth retrying."""
        try:
            resp = self._nf_session.post(self._nf_url, json=body, headers=headers, timeout=self._nf_timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            return self._nf_scrub(f"{type(exc).__name__}: {exc}")
        except (requests.RequestException, ValueError) as exc:
            # e.g. InvalidHeader, whose message is the whole Authorization header: scrubbed, and
            # not chained (the original exception would carry the header into any traceback).
            raise BadInputError(f"the request for {operation} could not be sent: "
                                f"{self._nf_scrub(f'{type(exc).__name__}: {exc}')}", tag="numerai_request") from None
        status = resp.status_code
        if status == 429 or status >= 500:
            return f"HTTP {status}"
        if status in (401, 403):
            raise BadInputError(
                f"Numerai refused the API keys for {operation} (HTTP {status}); check NUMERAI_PUBLIC_ID / "
                "NUMERAI_SECRET_KEY and that the key has the needed scopes", tag="numerai_auth")
        if status >= 400:
            raise BadInputError(f"Numerai answered {operation} with HTTP {status}: "
                                f"{self._nf_scrub(resp.text[:300])}", tag="numerai_api_error")
        try:
            result = resp.json()
        except ValueError:
            return f"invalid JSON in the answer (HTTP {status})"
        if not isinstance(result, dict):
            return "answer is not a JSON object"
        errors = result.get("errors")
        if errors:
            messages = [e.get("message", str(e)) if isinstance(e, dict) else str(e)
                        for e in (errors if isinstance(errors, list) else [errors])]
            message = self._nf_scrub("; ".join(messages))
            lowered = message.lower()
            if any(w in lowered for w in _AUTH_WORDS):
                raise BadInputError(
                    f"Numerai refused the API keys for {operation}: {message}; check NUMERAI_PUBLIC_ID / "
                    "NUMERAI_SECRET_KEY and the key's scopes", tag="numerai_auth")
            if any(w in lowered for w in _CLOSED_WORDS):
                raise BadInputError(f"Numerai says {message} ({operation})", tag="round_closed")
            if any(w in lowered for w in _TRANSIENT_WORDS):
                raise TransientError(f"Numerai API {operation} failed: {message}", tag="numerai_unavailable")
            raise BadInputError(f"Numerai API {operation} returned an error: {message}", tag="numerai_api_error")
        if "data" not in result or result["data"] is None:
            raise NumerflowError(f"Numerai answered {operation} without data; the API may have changed",
                                 tag="numerai_unexpected_response")
        return result


class _SignalsAPI(_NumerflowTransport, numerapi.SignalsAPI):
    pass


class _CryptoAPI(_NumerflowTransport, numerapi.CryptoAPI):
    pass


class _ClassicAPI(_NumerflowTransport, numerapi.NumerAPI):
    pass


_API_CLASSES: dict[str, type[_SignalsAPI] | type[_CryptoAPI] | type[_ClassicAPI]] = {
    "signals": _SignalsAPI, "crypto": _CryptoAPI, "classic": _ClassicAPI}


class _CheckedRequests:
    """Stands in for the ``requests`` module inside numerapi during an upload: ``put`` gets
    our timeout and raises on a non-2xx status; everything else is the real module."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self.put_statuses: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = self._timeout
        try:
            resp = requests.put(url, data=data, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"uploading the file to Numerai's storage failed: {type(exc).__name__}; retry",
                                 tag="upload_failed") from None
        self.put_statuses.append(resp.status_code)
        if resp.status_code == 429 or resp.status_code >= 500:
            raise TransientError(f"Numerai's storage answered the file upload with HTTP {resp.status_code}; "
                                 "nothing was submitted: retry", tag="upload_failed")
        if not 200 <= resp.status_code < 300:
            raise BadInputError(f"Numerai's storage refused the file upload (HTTP {resp.status_code}); "
                                "nothing was submitted", tag="upload_failed")
        return resp


_UPLOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _checked_put(timeout: float) -> Iterator[_CheckedRequests]:
    import numerapi.base_api
    import numerapi.signalsapi

    modules = (numerapi.base_api, numerapi.signalsapi)
    checked = _CheckedRequests(timeout)
    with _UPLOAD_LOCK:  # uploads are rare: serialise them rather than race on module attributes
        saved = [m.requests for m in modules]
        for module in modules:
            module.requests = checked  # type: ignore[attr-defined]  # numerapi's module-level import
        try:
            yield checked
        finally:
            for module, original in zip(modules, saved, strict=True):
                module.requests = original  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- rounds


@dataclass(frozen=True)
class RoundInfo:
    """The current round: number and submission window (timezone-aware UTC)."""

    tournament: str
    number: int
    open_time: dt.datetime
    close_time: dt.datetime  # closeStakingTime: the submission deadline
    data_datestamp: int | None = None  # the round's data date (YYYYMMDD), when Numerai's answer gives it

    def is_open(self, now: dt.datetime | None = None) -> bool:
        now = now or dt.datetime.now(dt.UTC)
        return self.open_time <= now < self.close_time

    def window(self) -> str:
        return f"opens {self.open_time:%Y-%m-%d %H:%M} UTC, closes {self.close_time:%Y-%m-%d %H:%M} UTC"

    def as_dict(self) -> dict:
        return {"tournament": self.tournament, "number": self.number,
                "open_time": self.open_time.isoformat(), "close_time": self.close_time.isoformat(),
                "data_datestamp": self.data_datestamp}


def _utc(value: Any, name: str) -> dt.datetime:
    if value is None:
        raise NumerflowError(f"Numerai's round has no {name}", tag="numerai_unexpected_response")
    stamp = pd.Timestamp(value)
    # Numerai's times are UTC; a timestamp without a zone is read as UTC, never as local time.
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def parse_round(raw: Mapping[str, Any], tournament: str) -> RoundInfo:
    stamp = raw.get("dataDatestamp")
    return RoundInfo(tournament, int(raw["number"]), _utc(raw.get("openTime"), "openTime"),
                     _utc(raw.get("closeStakingTime") or raw.get("closeTime"), "closeStakingTime"),
                     int(stamp) if stamp not in (None, "") else None)


def require_open_window(round_info: RoundInfo | None, now: dt.datetime | None = None) -> None:
    """Refuse to upload outside the open window, saying when it opens/closes."""
    now = now or dt.datetime.now(dt.UTC)
    if round_info is None:
        raise BadInputError(f"no Numerai round is open now ({now:%Y-%m-%d %H:%M} UTC); "
                            "run `numerflow status` to see the next window", tag="round_closed")
    if not round_info.is_open(now):
        when = "has not opened yet" if now < round_info.open_time else "is closed"
        hint = "" if now < round_info.open_time else (
            " (submission.queue_late = true uploads a late file for Numerai to queue for the next round)")
        raise BadInputError(
            f"{round_info.tournament} round {round_info.number} {when}: it {round_info.window()}, "
            f"now is {now:%Y-%m-%d %H:%M} UTC; nothing was uploaded{hint}",
            tag="round_closed",
        )


# --------------------------------------------------------------------------- client

_ROUND_QUERY = """
    query($tournament: Int!) {
      rounds(tournament: $tournament number: 0) {
        number
        openTime
        closeTime
        closeStakingTime
      }
    }
"""


@contextlib.contextmanager
def _translated(operation: str) -> Iterator[None]:
    """numerapi methods index answers directly and parse their dates (dateutil's ParserError is a
    ValueError): turn shape and value surprises into clear errors."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, OverflowError) as exc:
        raise NumerflowError(f"unexpected answer from Numerai to {operation} ({type(exc).__name__}: {exc}); "
                             "the API may have changed", tag="numerai_unexpected_response") from None


class NumeraiClient:
    """One tournament's Numerai API, with our endpoint, timeouts, retries and errors."""

    def __init__(
        self,
        tournament: str = "signals",
        keys: NumeraiKeys | None = None,
        *,
        api_url: str = "https://api-tournament.numer.ai",
        timeout: float = 30.0,
        retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.spec = tournament_spec(tournament)
        self.keys = keys
        public_id, secret_key = keys.secrets() if keys else (None, None)
        api = _API_CLASSES[tournament](public_id=public_id, secret_key=secret_key, verbosity="WARNING",
                                       show_progress_bars=False)
        if keys is None:
            api.token = None  # numerapi falls back to env keys by itself; "no keys" must mean none
        api._nf_configure(api_url.rstrip("/"), timeout, retries, sleep, (public_id or "", secret_key or ""))
        self.api: _SignalsAPI | _CryptoAPI | _ClassicAPI = api
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, tournament: str | None = None, keys: NumeraiKeys | None = None,
                      **kwargs: Any) -> NumeraiClient:
        numerai = settings.numerai
        return cls(tournament or settings.tournament, keys, api_url=numerai.api_url,
                   timeout=numerai.timeout_seconds, retries=numerai.retries, **kwargs)

    def __repr__(self) -> str:
        return f"NumeraiClient(tournament={self.spec.name!r}, url={self.api._nf_url!r}, keys={self.keys!r})"

    # datasets
    def list_datasets(self, round_number: int | None = None) -> list[str]:
        with _translated("listDatasets"):
            return list(self.api.list_datasets(round_number))

    def download(self, filename: str, dest: Path, round_number: int | None = None) -> Path:
        """Download a dataset file into ``dest`` atomically (never numerapi's same-size skip)."""
        dest = Path(dest)
        with atomic_path(dest) as tmp:
            leftover = Path(f"{tmp}.temp")
            # numerapi skips an existing file whose size equals Content-Length (0 if absent): let
            # it find none; its own ".temp" file is ours to clean.
            tmp.unlink()
            try:
                with _translated("dataset"):
                    self.api.download_dataset(filename, str(tmp), round_number)
                if not tmp.exists() or tmp.stat().st_size == 0:
                    raise TransientError(f"downloading {filename} gave an empty file; retry", tag="download_failed")
            except requests.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else 0
                cls = TransientError if code == 429 or code >= 500 else BadInputError
                raise cls(f"downloading {filename} failed with HTTP {code}", tag="download_failed") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(f"downloading {filename} failed: {type(exc).__name__}",
                                     tag="download_failed") from None
            finally:
                leftover.unlink(missing_ok=True)
        return dest

    def remote_file_identity(self, filename: str, round_number: int | None = None) -> dict[str, Any]:
        """What Numerai's copy of a dataset file is now, without downloading it: ``size``, ``etag``,
        ``last_modified`` (None where not given). The file's URL comes from numerapi's ``dataset``
        query; a one-byte ranged GET reads the headers (a presigned URL is signed for GET, so HEAD
        would be refused)."""
        query = """query ($filename: String! $round: Int $tournament: Int) {
            dataset(filename: $filename round: $round tournament: $tournament) }"""
        with _translated("dataset"):
            url = self.api.raw_query(query, {"filename": filename, "round": round_number,
                                             "tournament": self.spec.id})["data"]["dataset"]
        try:
            with requests.get(url, headers={"Range": "bytes=0-0"}, stream=True, timeout=self.timeout) as resp:
                status, headers = resp.status_code, resp.headers
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientError(f"asking Numerai's storage about {filename} failed: {type(exc).__name__}; retry",
                                 tag="download_failed") from None
        if status == 429 or status >= 500:
            raise TransientError(f"Numerai's storage answered {filename} with HTTP {status}; retry",
                                 tag="download_failed")
        if status not in (200, 206):
            raise BadInputError(f"Numerai's storage refused {filename} (HTTP {status})", tag="download_failed")
        total = headers.get("Content-Range", "").rpartition("/")[2] if status == 206 else headers.get("Content-Length")
        return {"size": int(total) if total and total.isdigit() else None, "etag": headers.get("ETag"),
                "last_modified": headers.get("Last-Modified")}

    # rounds and models
    def current_round(self) -> RoundInfo | None:
        """The current round, or None when Numerai says no round is open."""
        try:
            raw = self.api.raw_query(_ROUND_QUERY, {"tournament": self.spec.id})
        except BadInputError as exc:
            if exc.tag == "round_closed":
                return None
            raise
        with _translated("rounds"):
            rounds = raw["data"]["rounds"]
            return parse_round(rounds[0], self.spec.name) if rounds and rounds[0] else None

    def upcoming_round(self) -> RoundInfo | None:
        """The next round to open, from numerapi's ``list_rounds(status="upcoming")`` (openTime,
        closeStakingTime), or None when Numerai lists none."""
        with _translated("rounds"):
            rounds = self.api.list_rounds(status="upcoming")
            soonest = sorted(rounds, key=lambda r: _utc(r.get("openTime"), "openTime"))
            return parse_round(soonest[0], self.spec.name) if soonest else None

    def submission_scores(self, model_id: str, last_n_rounds: int) -> list[dict]:
        """A model's live scores of its last rounds, from numerapi's ``submission_scores``
        (Numerai's ``submissionScores``: roundNumber, displayName, value, percentile, day, date,
        resolved), every scoring day of each round."""
        with _translated("submissionScores"):
            return list(self.api.submission_scores(model_id, last_n_rounds=last_n_rounds))

    def round_payout(self, round_number: int | None = None) -> RoundPayout | None:
        """A round's payout configuration (``list_rounds(number=)``'s ``roundScoreConfigs`` and
        ``payoutFactor``): the given round, else the open one, else the newest listed; None when
        Numerai lists none."""
        from numerflow.tasks.numerai.payout import parse_round_payout

        with _translated("rounds"):
            if round_number is not None:
                rounds = self.api.list_rounds(number=round_number)
            else:
                rounds = self.api.list_rounds(status="open") or self.api.list_rounds(limit=1)
            if not rounds:
                return None
            newest = max(rounds, key=lambda r: int(r["number"]))
            return parse_round_payout(newest, self.spec.name)

    def diagnostics(self, model_id: str, diagnostics_id: str | None = None) -> dict:
        """Numerai's answer for an uploaded diagnostics (numerapi's ``diagnostics``): ``status``
        (pending until done), the summaries and ``perEraDiagnostics``."""
        with _translated("diagnostics"):
            answer = self.api.diagnostics(model_id, diagnostics_id)
        if not isinstance(answer, dict):
            raise NumerflowError(f"Numerai answered diagnostics with {type(answer).__name__}, not an object",
                                 tag="numerai_unexpected_response")
        return answer

    def last_closed_round(self, now: dt.datetime | None = None) -> RoundInfo | None:
        """The newest round whose submission window has closed (with its data datestamp), or None."""
        now = now or dt.datetime.now(dt.UTC)
        closed = [r for r in self.recent_rounds(5) if r.close_time <= now]
        return closed[0] if closed else None

    def recent_rounds(self, limit: int) -> list[RoundInfo]:
        """The latest ``limit`` rounds Numerai lists (numerapi's ``list_rounds``), newest first."""
        with _translated("rounds"):
            rounds = self.api.list_rounds(limit=limit)
            return sorted((parse_round(r, self.spec.name) for r in rounds), key=lambda r: -r.number)

    def models(self, tournament_id: int | None = None) -> dict[str, str]:
        """``{model name: model id}`` of the account, for this tournament (or another)."""
        with _translated("account.models"):
            return dict(self.api.get_models(tournament_id))

    def resolve_model_id(self, model_name: str) -> str:
        mine = self.models()
        if model_name in mine:
            return mine[model_name]
        for other_id, other_name in TOURNAMENT_NAMES.items():
            if other_id != self.spec.id and model_name in self.models(other_id):
                raise BadInputError(
                    f"model {model_name!r} is a Numerai {other_name} model, not a {self.spec.name} one; "
                    f"use --tournament {other_name} or one of this account's {self.spec.name} models: {sorted(mine)}",
                    tag="wrong_tournament_model",
                )
        raise BadInputError(
            f"model {model_name!r} is not in this account's {self.spec.name} models {sorted(mine)}; "
            "set numerai.model_name (or --model) to one of them",
            tag="unknown_model",
        )

    # uploads
    def upload_predictions(self, path: Path, model_id: str, data_datestamp: int | None = None) -> str:
        """Upload a submission file; ``data_datestamp`` (a closed round's data date) makes it a late
        upload, which Numerai queues for the next round."""
        with _checked_put(self.timeout), _translated("createSubmission"):
            submission_id = self.api.upload_predictions(str(path), model_id=model_id, data_datestamp=data_datestamp)
        if not isinstance(submission_id, str) or not submission_id:
            raise NumerflowError(f"Numerai returned no submission id ({submission_id!r})",
                                 tag="numerai_unexpected_response")
        return submission_id

    def upload_diagnostics(self, path: Path, model_id: str) -> str:
        with _checked_put(self.timeout), _translated("createDiagnostics"):
            diagnostics_id = self.api.upload_diagnostics(str(path), model_id=model_id)
        if not isinstance(diagnostics_id, str) or not diagnostics_id:
            raise NumerflowError(f"Numerai returned no diagnostics id ({diagnostics_id!r})",
                                 tag="numerai_unexpected_response")
        return diagnostics_id


def client_for(settings: Settings, tournament: str | None = None, *, keys: NumeraiKeys | None = None,
               **kwargs: Any) -> NumeraiClient:
    """A client with the keys from settings/env/Prefect Secret (none → public queries only)."""
    if keys is None:
        keys = resolve_keys(settings.numerai)
    return NumeraiClient.from_settings(settings, tournament, keys, **kwargs)


# --------------------------------------------------------------------------- datasets

_VERSIONED = re.compile(r"^(?:(?P<prefix>[a-z_]+)/)?v(?P<major>\d+)\.(?P<minor>\d+)/(?P<file>.+)$")


def pick_dataset_version(filenames: list[str], tournament: str, required: tuple[str, ...] | None = None,
                         *, all_required: bool = False) -> str:
    """The newest ``<prefix>/vX.Y`` directory holding one of ``required`` (default: a live
    universe file), or every one of them with ``all_required``: e.g. ``"signals/v2.1"``, or
    ``"v5.2"`` for Classic (whose names have no prefix). Never hard-coded: read from list_datasets."""
    spec = tournament_spec(tournament)
    required = required or spec.live_files
    held: dict[tuple[int, int], set[str]] = {}
    for name in filenames:
        match = _VERSIONED.match(name)
        if match and (match["prefix"] or "") == spec.dataset_prefix and match["file"] in required:
            held.setdefault((int(match["major"]), int(match["minor"])), set()).add(match["file"])
    versions = [v for v, files in held.items() if not all_required or files == set(required)]
    if not versions:
        raise BadInputError(
            f"Numerai lists no {spec.name} dataset with {'all of ' if all_required else ''}{list(required)} "
            f"(found {sorted(filenames)[:20]}); the dataset layout may have changed", tag="no_dataset")
    major, minor = max(versions)
    return f"{spec.dataset_prefix}/v{major}.{minor}" if spec.dataset_prefix else f"v{major}.{minor}"


def dataset_file(filenames: list[str], version: str, candidates: tuple[str, ...]) -> str:
    """The first of ``candidates`` that exists under ``version`` in the listing."""
    for name in candidates:
        if f"{version}/{name}" in filenames:
            return f"{version}/{name}"
    raise BadInputError(f"{version} has none of {list(candidates)}", tag="no_dataset")


def numerai_dir(store: Store, tournament: str) -> Path:
    return store.root / "numerai" / tournament


def round_download_path(store: Store, tournament: str, remote_name: str, round_number: int) -> Path:
    """Per-round local name: ``numerai/<t>/<version>/round-<n>/<file>`` (a new round never
    reuses an old round's file, whatever numerapi's same-size check would think)."""
    version_dir, _, file_name = remote_name.rpartition("/")
    version = version_dir.rpartition("/")[2]
    return numerai_dir(store, tournament) / version / f"round-{round_number}" / file_name
