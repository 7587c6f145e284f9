"""The submission ledger: exactly one live upload per (tournament, round, model).

A local JSON file records each successful upload with the submission id and the file's
sha256; ``tasks.numerai.submit.submit_file`` skips a (tournament, round, model) that is
already in it unless ``force``. Only successful uploads are recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, exclusive_lock, read_json, write_json


class SubmissionLedger:
    """Successful uploads, one JSON file: exactly one live entry per (tournament, round, model).

    Forced re-uploads replace the entry and keep the earlier ones under ``replaced``.
    Writes are atomic and serialised with a lock file (several flows may submit at once).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_settings(cls, settings: Settings) -> SubmissionLedger:
        return cls(settings.numerai.ledger_path or Store(settings.data_dir).root / "submissions" / "ledger.json")

    @staticmethod
    def key(tournament: str, round_number: int, model_name: str) -> str:
        return f"{tournament}/{round_number}/{model_name}"

    def _load(self) -> dict:
        if not self.path.exists():
            return {"version": 1, "submissions": {}}
        data = read_json(self.path)
        if not isinstance(data, dict) or not isinstance(data.get("submissions"), dict):
            raise BadInputError(f"submission ledger {self.path} is not a numerflow ledger; move it away",
                                tag="invalid_ledger")
        return data

    def get(self, tournament: str, round_number: int, model_name: str) -> dict | None:
        return self._load()["submissions"].get(self.key(tournament, round_number, model_name))

    def entries(self) -> list[dict]:
        return list(self._load()["submissions"].values())

    def last_per_model(self, tournament: str) -> dict[str, dict]:
        latest: dict[str, dict] = {}
        for entry in self.entries():
            if entry["tournament"] == tournament:
                name = entry["model_name"]
                if name not in latest or entry["round"] > latest[name]["round"]:
                    latest[name] = entry
        return latest

    @contextlib.contextmanager
    def exclusive(self, tournament: str, round_number: int, model_name: str) -> Iterator[None]:
        """Hold (tournament, round, model) for a whole check-then-upload, across processes: a second
        submitter waits here, then finds the first one's entry and skips. An OS file lock, so a
        process killed with -9 releases it (no stale lock to clean up)."""
        name = f"{tournament}-{round_number}-{hashlib.sha256(model_name.encode()).hexdigest()[:16]}.lock"
        with exclusive_lock(self.path.parent / ".locks" / name):
            yield

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(Path(f"{self.path}.lock"))

    def record(self, entry: dict) -> None:
        with self._locked():
            data = self._load()
            key = self.key(entry["tournament"], entry["round"], entry["model_name"])
            previous = data["submissions"].get(key)
            if previous is not None:
                replaced = previous.pop("replaced", [])
                entry = {**entry, "replaced": [*replaced, previous]}
            data["submissions"][key] = entry
            write_json(self.path, data)

    def update(self, tournament: str, round_number: int, model_name: str, **fields: Any) -> None:
        with self._locked():
            data = self._load()
            data["submissions"][self.key(tournament, round_number, model_name)].update(fields)
            write_json(self.path, data)
