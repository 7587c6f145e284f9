"""A local fake of Numerai's API for tests: GraphQL, dataset downloads, presigned PUT.

The real ``numerapi`` client talks to it over 127.0.0.1 (port 0, a thread); wire
formats are numerapi 3.1.1's: POST ``/`` with ``{"query", "variables"}``, auth header
``Token PUBLIC$SECRET``, answers ``{"data": …}`` or ``{"errors": [{"message"}]}``,
timestamps with a timezone, dataset URLs answered by GET with Content-Length, upload
auth answering ``{filename, url}`` with a URL the client PUTs the file to.

Faults are injected per operation (``fail(operation, kind, times)``): a GraphQL error,
an HTTP status (500, 401…), or garbage. The fake records every GraphQL call (operation,
variables, whether it was authorised), every PUT body and every created submission.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOURNAMENT_IDS = {"signals": 11, "crypto": 12, "classic": 8}

# Order matters: the first name found in the query document wins.
OPERATIONS = (
    "submissionScores",
    "createSignalsSubmission",
    "create_submission",
    "createDiagnostics",
    "submissionUploadSignalsAuth",
    "submission_upload_auth",
    "diagnosticsUploadAuth",
    "listDatasets",
    "dataset",
    "rounds",
    "account",
    "diagnostics",
)
AUTHORISED = {
    "createSignalsSubmission", "create_submission", "createDiagnostics", "submissionUploadSignalsAuth",
    "submission_upload_auth", "diagnosticsUploadAuth", "account", "diagnostics",
}

NOT_AUTHENTICATED = "You must be authenticated to perform this action"


def operation_of(query: str) -> str:
    for name in OPERATIONS:
        if re.search(rf"\b{name}\s*[({{]", query) or re.search(rf"\b{name}\b", query):
            return name
    return "unknown"


@dataclass
class Fault:
    operation: str  # a GraphQL operation, or "PUT" / "GET"
    kind: str  # "graphql_error" | "http" | "garbage"
    status: int = 500
    message: str = "Internal server error"
    times: int = 1


@dataclass
class FakeNumeraiState:
    public_id: str = "FAKEPUBLICID"
    secret_key: str = "FAKESECRETKEY0123456789"
    # Bad keys answered as a GraphQL error (Numerai's way) or as HTTP 401.
    bad_keys_as_http: bool = False
    models: list[dict] = field(default_factory=lambda: [
        {"id": "model-signals-1", "name": "my_signals", "tournament": 11},
        {"id": "model-signals-2", "name": "other_signals", "tournament": 11},
        {"id": "model-crypto-1", "name": "my_crypto", "tournament": 12},
    ])
    # tournament id → {filename: bytes}
    datasets: dict[int, dict[str, bytes]] = field(default_factory=dict)
    # (tournament id, round) → {filename: bytes}: what ``dataset(round: n)`` answers for that round
    # instead (a live file that changes every round); a listed file absent here falls back to ``datasets``.
    round_datasets: dict[tuple[int, int], dict[str, bytes]] = field(default_factory=dict)
    # tournament id → round dict (number, openTime, closeStakingTime) or None for "no open round"
    rounds: dict[int, dict | None] = field(default_factory=dict)
    # model id → its submissionScores rows (roundNumber, displayName, value, percentile, day, date, resolved…)
    scores: dict[str, list[dict]] = field(default_factory=dict)
    # tournament id → every round numerapi's list_rounds can see (past, open, upcoming)
    round_list: dict[int, list[dict]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    graphql_calls: list[dict] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    probes: list[str] = field(default_factory=list)  # ranged GETs: a file's size/ETag asked, not downloaded
    uploads: list[dict] = field(default_factory=list)  # {"key", "body", "headers"}
    submissions: list[dict] = field(default_factory=list)  # {"id", "operation", "variables", "body"}
    diagnostics: list[dict] = field(default_factory=list)
    pending: dict[str, dict] = field(default_factory=dict)  # upload key → {"filename", "tournament", "modelId"}
    # diagnostics: how many ``diagnostics`` queries answer "pending" before "done", and how the done
    # answer is made from the uploaded file's bytes (default: fixed summaries, no eras)
    diagnostics_pending_polls: int = 1
    diagnostics_scorer: Any = None
    diagnostics_polls: dict[str, int] = field(default_factory=dict)


def iso(stamp: dt.datetime) -> str:
    return stamp.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def open_round(number: int, now: dt.datetime | None = None, hours_left: float = 1.0) -> dict:
    now = now or dt.datetime.now(dt.UTC)
    return {"number": number, "openTime": iso(now - dt.timedelta(hours=1)),
            "closeTime": iso(now + dt.timedelta(days=30)),
            "closeStakingTime": iso(now + dt.timedelta(hours=hours_left))}


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def upcoming_round(number: int, now: dt.datetime | None = None, opens_in_hours: float = 3.0,
                   open_hours: float = 1.0) -> dict:
    now = now or dt.datetime.now(dt.UTC)
    opens = now + dt.timedelta(hours=opens_in_hours)
    return {"number": number, "openTime": iso(opens), "closeTime": iso(opens + dt.timedelta(days=30)),
            "closeStakingTime": iso(opens + dt.timedelta(hours=open_hours))}


def closed_round(number: int, now: dt.datetime | None = None) -> dict:
    now = now or dt.datetime.now(dt.UTC)
    return {"number": number, "openTime": iso(now - dt.timedelta(days=2)),
            "closeTime": iso(now + dt.timedelta(days=30)),
            "closeStakingTime": iso(now - dt.timedelta(hours=3))}


class FakeNumeraiServer:
    """Start with ``with FakeNumeraiServer() as fake:``; ``fake.url`` is the GraphQL endpoint."""

    def __init__(self, state: FakeNumeraiState | None = None) -> None:
        self.state = state or FakeNumeraiState()
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base + "/"

    def start(self) -> FakeNumeraiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeNumeraiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # configuration helpers
    def add_dataset(self, tournament: str, filename: str, payload: bytes) -> None:
        self.state.datasets.setdefault(TOURNAMENT_IDS[tournament], {})[filename] = payload

    def add_round_dataset(self, tournament: str, round_number: int, filename: str, payload: bytes) -> None:
        """A file's content for one round (numerapi passes ``round`` to ``dataset``); also listed."""
        tid = TOURNAMENT_IDS[tournament]
        self.state.round_datasets.setdefault((tid, round_number), {})[filename] = payload
        self.state.datasets.setdefault(tid, {}).setdefault(filename, payload)

    def set_round(self, tournament: str, round_dict: dict | None) -> None:
        self.state.rounds[TOURNAMENT_IDS[tournament]] = round_dict

    def add_round(self, tournament: str, round_dict: dict) -> None:
        """A round numerapi's ``list_rounds`` sees (its status follows from its times)."""
        self.state.round_list.setdefault(TOURNAMENT_IDS[tournament], []).append(round_dict)

    def add_score(self, model_id: str, round_number: int, metric: str, value: float, *, day: int = 20,
                  resolved: bool = True, percentile: float = 0.5) -> None:
        """One submissionScores row, as Numerai answers numerapi 3.1.1's query."""
        date = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=round_number + day)
        self.state.scores.setdefault(model_id, []).append({
            "roundId": f"round-{round_number}", "submissionId": f"sub-{model_id}-{round_number}",
            "roundNumber": round_number, "roundResolveTime": iso(date), "roundScoreTime": iso(date),
            "roundCloseStakingTime": iso(date - dt.timedelta(days=day + 1)), "value": value,
            "percentile": percentile, "displayName": metric, "version": "2", "date": iso(date), "day": day,
            "resolveDate": iso(date) if resolved else None, "resolved": resolved})

    def list_rounds(self, variables: dict) -> list[dict]:
        """``rounds(tournament, number, target, status, limit)`` as Numerai answers numerapi's
        ``list_rounds``: every field it asks for (``roundScoreConfigs`` a list), newest first."""
        now = dt.datetime.now(dt.UTC)
        tournament = variables.get("tournament")

        def status(r: dict) -> str:
            if now < _parse(r["openTime"]):
                return "UPCOMING"
            if now < _parse(r["closeStakingTime"]):
                return "OPEN"
            return "RESOLVED" if r.get("resolvedGeneral") else "RESOLVING"

        rounds = [r for r in self.state.round_list.get(tournament, [])
                  if variables.get("status") in (None, status(r))
                  and variables.get("number") in (None, r["number"])]
        rounds = sorted(rounds, key=lambda r: -r["number"])[: variables.get("limit") or None]
        return [{"id": f"round-{tournament}-{r['number']}", "tournament": tournament, "target": None,
                 "closeTime": r.get("closeTime"), "scoreTime": None, "resolveTime": None,
                 "resolvedGeneral": False, "resolvedStaking": False, "payoutFactor": "1.0",
                 "stakeThreshold": None, "dataDatestamp": None, "roundScoreConfigs": [], **r} for r in rounds]

    def diagnostics_answer(self, variables: dict) -> dict:
        """``diagnostics(id, modelId)``: "pending" for the first polls, then "done" with the summary
        and per-era fields numerapi 3.1.1 asks for (the scorer's, from the uploaded bytes)."""
        s = self.state
        item = next((d for d in reversed(s.diagnostics) if variables.get("id") in (None, d["id"])
                     and d["variables"].get("modelId") == variables.get("modelId")), None)
        if item is None:
            raise _GraphQLError("Diagnostics not found")
        polls = s.diagnostics_polls.get(item["id"], 0)
        s.diagnostics_polls[item["id"]] = polls + 1
        base = {"status": "pending", "message": None, "erasAcceptedCount": None, "trainedOnVal": False,
                "updatedAt": iso(dt.datetime.now(dt.UTC)), "perEraDiagnostics": []}
        if polls < s.diagnostics_pending_polls:
            return base
        scored = s.diagnostics_scorer(item["body"]) if s.diagnostics_scorer else {
            "validationCorrMean": 0.01, "validationCorrSharpe": 0.5, "perEraDiagnostics": []}
        return {**base, "status": "done", "erasAcceptedCount": len(scored.get("perEraDiagnostics", [])), **scored}

    def fail(self, operation: str, kind: str = "graphql_error", *, status: int = 500,
             message: str = "Internal server error", times: int = 1) -> None:
        self.state.faults.append(Fault(operation, kind, status, message, times))

    def calls(self, operation: str) -> list[dict]:
        return [c for c in self.state.graphql_calls if c["operation"] == operation]

    def _take_fault(self, operation: str) -> Fault | None:
        with self.lock:
            for fault in self.state.faults:
                if fault.operation == operation and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    # GraphQL resolvers: each returns the "data" value or raises _GraphQLError
    def resolve(self, operation: str, variables: dict) -> Any:
        s = self.state
        if operation == "listDatasets":
            files = s.datasets.get(variables.get("tournament"), {})
            return sorted(files)
        if operation == "dataset":
            files = s.datasets.get(variables.get("tournament"), {})
            name = variables["filename"]
            if name not in files:
                raise _GraphQLError(f"File not found: {name}")
            tid, round_number = variables.get("tournament"), variables.get("round")
            if round_number is None and s.rounds.get(tid):  # numerapi's default: the current round
                round_number = s.rounds[tid]["number"]
            if name in s.round_datasets.get((tid, round_number), {}):
                return f"{self.base}/rfiles/{tid}/{round_number}/{name}"
            return f"{self.base}/files/{tid}/{name}"
        if operation == "submissionScores":
            rows = [r for r in s.scores.get(variables["modelId"], [])
                    if variables.get("tournament") in (None, r.get("tournament", variables.get("tournament")))]
            if variables.get("lastNRounds"):
                keep = sorted({r["roundNumber"] for r in rows})[-variables["lastNRounds"]:]
                rows = [r for r in rows if r["roundNumber"] in keep]
            fields = ("roundId", "submissionId", "roundNumber", "roundResolveTime", "roundScoreTime",
                      "roundCloseStakingTime", "value", "percentile", "displayName", "version", "date", "day",
                      "resolveDate", "resolved")
            return [{f: r.get(f) for f in fields} for r in rows]
        if operation == "rounds" and ("status" in variables or "limit" in variables):
            return self.list_rounds(variables)
        if operation == "rounds":
            current = s.rounds.get(variables.get("tournament"))
            if current is None:
                raise _GraphQLError("Current round not open for submissions")
            return [current]
        if operation == "account":
            return {"models": [dict(m) for m in s.models]}
        if operation in ("submissionUploadSignalsAuth", "submission_upload_auth", "diagnosticsUploadAuth"):
            key = uuid.uuid4().hex
            stored_name = f"{key}-{variables['filename']}"
            s.pending[key] = {**variables, "filename": stored_name}
            return {"filename": stored_name, "url": f"{self.base}/upload/{key}?X-Signature=fake"}
        if operation in ("createSignalsSubmission", "create_submission", "createDiagnostics"):
            upload = next((u for u in s.uploads if u["filename"] == variables.get("filename")), None)
            if upload is None:
                raise _GraphQLError(f"no uploaded file named {variables.get('filename')}")
            item = {"id": str(uuid.uuid4()), "operation": operation, "variables": dict(variables),
                    "body": upload["body"]}
            (s.diagnostics if operation == "createDiagnostics" else s.submissions).append(item)
            return {"id": item["id"], "firstEffectiveDate": None} if operation != "createDiagnostics" else {
                "id": item["id"]}
        if operation == "diagnostics":
            return self.diagnostics_answer(variables)
        raise _GraphQLError(f"unknown operation {operation}")


class _GraphQLError(Exception):
    pass


def _make_handler(fake: FakeNumeraiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj).encode())

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_POST(self) -> None:  # noqa: N802
            request = json.loads(self._body() or b"{}")
            query = request.get("query", "")
            variables = request.get("variables") or {}
            operation = operation_of(query)
            header = self.headers.get("Authorization")
            valid = header == f"Token {fake.state.public_id}${fake.state.secret_key}"
            with fake.lock:
                fake.state.graphql_calls.append({"operation": operation, "variables": variables,
                                                 "authorized": header is not None, "query": query})
            fault = fake._take_fault(operation)
            if fault is not None:
                if fault.kind == "http":
                    return self._json(fault.status, {"detail": fault.message})
                if fault.kind == "garbage":
                    return self._send(200, b"<html>oops</html>", "text/html")
                return self._json(200, {"data": None, "errors": [{"message": fault.message}]})
            if operation in AUTHORISED and not valid:
                if fake.state.bad_keys_as_http:
                    return self._json(401, {"detail": "Invalid token"})
                return self._json(200, {"data": None, "errors": [{"message": NOT_AUTHENTICATED}]})
            try:
                with fake.lock:
                    data = fake.resolve(operation, variables)
            except _GraphQLError as exc:
                return self._json(200, {"data": None, "errors": [{"message": str(exc)}]})
            return self._json(200, {"data": {operation: data}})

        def do_GET(self) -> None:  # noqa: N802
            match = re.fullmatch(r"/files/(\d+)/(.+)", self.path)
            per_round = re.fullmatch(r"/rfiles/(\d+)/(\d+)/(.+)", self.path)
            fault = fake._take_fault("GET")
            if fault is not None:
                if fault.kind == "garbage":
                    return self._send(200, b"<html>oops</html>", "text/html")
                return self._json(fault.status, {"detail": fault.message})
            if per_round:
                key = (int(per_round[1]), int(per_round[2]))
                payload = fake.state.round_datasets.get(key, {}).get(per_round[3])
                if payload is None:
                    return self._json(404, {"detail": "not found"})
                return self._file(per_round[3], payload)
            if not match:
                return self._json(404, {"detail": "not found"})
            payload = fake.state.datasets.get(int(match[1]), {}).get(match[2])
            if payload is None:
                return self._json(404, {"detail": "not found"})
            self._file(match[2], payload)

        def _file(self, name: str, payload: bytes) -> None:
            """A stored file as S3 serves it: ETag (the content's md5) and Last-Modified on every
            answer; ``Range: bytes=a-b`` answered 206 with Content-Range (a probe, not a download)."""
            ranged = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range") or "")
            etag = '"' + hashlib.md5(payload).hexdigest() + '"'
            self.send_response(206 if ranged else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Sun, 06 Dec 2026 08:00:00 GMT")
            if ranged:
                start, end = int(ranged[1]), min(int(ranged[2]), len(payload) - 1)
                body = payload[start:end + 1]
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(payload)}")
                with fake.lock:
                    fake.state.probes.append(name)
            else:
                body = payload
                with fake.lock:
                    fake.state.downloads.append(name)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:  # noqa: N802
            body = self._body()
            match = re.fullmatch(r"/upload/([0-9a-f]+)\?X-Signature=fake", self.path)
            fault = fake._take_fault("PUT")
            if fault is not None:
                return self._send(fault.status, b"<Error>fault</Error>", "application/xml")
            if not match or match[1] not in fake.state.pending:
                return self._send(403, b"<Error>SignatureDoesNotMatch</Error>", "application/xml")
            with fake.lock:
                pending = fake.state.pending.pop(match[1])
                fake.state.uploads.append({"key": match[1], "filename": pending["filename"], "body": body,
                                           "headers": dict(self.headers)})
            self._send(200, b"")

    return Handler
