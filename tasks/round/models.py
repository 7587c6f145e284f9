"""The models of a round, typed: each with its Numerai name and its own settings.

A round runs the ``[[models]]`` table (Classic: ``[[classic.models]]``), or the single configured
model when there is none. A table entry fails alone (its failure is kept, the others go on) and
has its own folder, run id, lineage and stage names (``predict my_model``); the single configured
model's failure is the round's, and its stages are unsuffixed, as before tables existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from numerflow.tasks.core.config import ModelSettings, Settings, settings_for_model
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.round.results import ModelFailure


@dataclass(frozen=True)
class RoundModel:
    """One model of the round, with the settings it runs with (its entry's over the round's)."""

    name: str | None  # the Numerai model name (None: none configured, e.g. a demo)
    settings: Settings
    in_table: bool = False  # a [[models]] entry (else the single configured model)
    submit: bool = True  # false: trained, predicted and validated, not uploaded

    @property
    def label(self) -> str:
        return self.name or "model"

    @property
    def stage_suffix(self) -> str:
        """Appended to the per-model stage names: `` my_model`` for a table entry."""
        return f" {self.name}" if self.in_table else ""

    @property
    def folder(self) -> str | None:
        """Its own submission folder (a table entry), or None: the round's folder."""
        return self.name if self.in_table else None

    def run_id(self, round_run_id: str) -> str:
        return f"{round_run_id}-{self.name}" if self.in_table else round_run_id


def model_entries(settings: Settings) -> list[ModelSettings]:
    """The round's model table: ``[[models]]``; for Classic ``[[classic.models]]`` when there is one (so one
    numerflow.toml can hold both tournaments' models), else ``[[models]]`` too."""
    if settings.tournament == "classic" and settings.classic.models:
        return list(settings.classic.models)
    return list(settings.models)


def round_models(settings: Settings, only: str | None = None) -> list[RoundModel]:
    """The models a round runs: the table's entries (``only``: just that one; an unknown name is
    refused here, before any work), or the single configured model (``only`` then is its name,
    already in its settings)."""
    entries = model_entries(settings)
    if not entries:
        return [RoundModel(settings.numerai.model_name, settings)]
    if only is not None:
        entries = [m for m in entries if m.name == only]
        if not entries:
            names = ", ".join(m.name for m in model_entries(settings))
            raise BadInputError(f"model {only!r} is not in the [[models]] table ({names}); pick one of those or add "
                                "it to numerflow.toml", tag="unknown_model")
    return [RoundModel(entry.name, own_settings(settings, entry), in_table=True, submit=entry.submit)
            for entry in entries]


def own_settings(settings: Settings, entry: ModelSettings) -> Settings:
    """The settings a table entry runs with. Classic: its name, LightGBM parameters over
    ``[classic] params`` and targets (``target``, or ``ensemble_targets`` with their weights);
    Signals/Crypto: ``settings_for_model``."""
    if settings.tournament != "classic":
        return settings_for_model(settings, entry)
    if entry.feature_set is not None or entry.features is not None:
        raise BadInputError(f"[[classic.models]] {entry.name}: feature_set and features are Signals options; a "
                            "Classic model reads Numerai's feature set ([classic] feature_set)", tag="invalid_config")
    classic: dict = {"model_name": entry.name, "params": {**settings.classic.params, **entry.params}}
    if entry.ensemble_targets:
        classic["targets"] = list(entry.ensemble_targets)
        classic["weights"] = list(entry.ensemble_weights or [])
    elif entry.target is not None:
        classic["targets"], classic["weights"] = [entry.target], []
    numerai = settings.numerai.model_copy(update={"model_name": entry.name, **{
        k: getattr(entry, k) for k in ("stake", "upload_diagnostics") if getattr(entry, k) is not None}})
    update = {"classic": settings.classic.model_copy(update=classic), "numerai": numerai}
    if entry.neutralize is not None:
        update["neutralize"] = entry.neutralize
    return settings.model_copy(update=update)


def failures_text(failures: list[ModelFailure] | tuple[ModelFailure, ...]) -> str:
    return "; ".join(f.line() for f in failures)
