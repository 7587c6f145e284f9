"""What a round pays, read from Numerai, and a preview of a submission's payout from local figures.

Numerai publishes each round's payout configuration with the round: numerapi 3.1.1's
``list_rounds(number=)`` returns ``roundScoreConfigs``, one entry per score it computes (``name``,
``displayName``, ``version``, ``isPayout``, ``defaultMultiplier`` with ``min``/``maxMultiplier``,
``clipThreshold``, ``payoutFactor``…) beside the round's own ``payoutFactor``. Score names are read
from there, never from a list written here: Signals pays on ``alpha`` and
``meta_portfolio_contribution`` (shown as ``mpc``), Crypto on MMC, Classic on CORR and MMC, and
Numerai changes these from round to round.

The payout of one round is ``stake × clip(payout_factor × Σ multiplier_i × score_i, ±clip)``.
``payout_preview`` fills in what it can: each paying score either has a local estimate (ALPHA
from validation, CORR and MMC for Classic…) or is *unknown* (MPC needs other users' stakes); an
unknown score makes the estimate partial, and the preview says so rather than guessing. A neutral
churn penalty (``tasks.numerai.churn.neutral_churn_penalty``) keeps only a share of a positive payout.
Nothing here changes a stake: ``stake`` is the user's own figure, read-only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from numerflow.tasks.core.errors import NumerflowError


@dataclass(frozen=True)
class ScoreConfig:
    """One score of a round's ``roundScoreConfigs``."""

    name: str
    display_name: str
    version: str | None
    is_payout: bool
    is_canon: bool
    multiplier: float | None  # defaultMultiplier
    min_multiplier: float | None
    max_multiplier: float | None
    clip_threshold: float | None
    payout_factor: float | None

    def aliases(self) -> set[str]:
        """The lower-case names a local figure may be given under (``alpha``, ``mpc``, ``mmc``…)."""
        return {self.name.lower(), self.display_name.lower()}

    def matches(self, key: str) -> int:
        """How well a local figure's name fits this score: 2 = its name or display name, 1 = a part
        of one (``corr`` for ``corr20v2``), 0 = not at all."""
        key = key.lower()
        if key in self.aliases():
            return 2
        return 1 if any(key in alias for alias in self.aliases()) else 0


@dataclass(frozen=True)
class RoundPayout:
    """A round's payout configuration: its payout factor and every score Numerai computes."""

    tournament: str
    round_number: int
    payout_factor: float | None
    scores: tuple[ScoreConfig, ...]

    @property
    def paying(self) -> tuple[ScoreConfig, ...]:
        return tuple(s for s in self.scores if s.is_payout)


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NumerflowError(f"Numerai's payout configuration holds a non-number {value!r}; the API may have "
                             "changed", tag="numerai_unexpected_response") from None
    return number if math.isfinite(number) else None


def parse_round_payout(raw: Mapping[str, Any], tournament: str) -> RoundPayout:
    """A ``list_rounds`` entry → ``RoundPayout`` (numbers as floats, missing ones None)."""
    configs = raw.get("roundScoreConfigs") or []
    if not isinstance(configs, list):
        raise NumerflowError("Numerai's round has roundScoreConfigs that is not a list; the API may have changed",
                             tag="numerai_unexpected_response")
    scores = []
    for config in configs:
        if not isinstance(config, Mapping) or not config.get("name"):
            continue
        scores.append(ScoreConfig(
            name=str(config["name"]), display_name=str(config.get("displayName") or config["name"]),
            version=None if config.get("version") is None else str(config["version"]),
            is_payout=bool(config.get("isPayout")), is_canon=bool(config.get("isCanonScore")),
            multiplier=_number(config.get("defaultMultiplier")),
            min_multiplier=_number(config.get("minMultiplier")), max_multiplier=_number(config.get("maxMultiplier")),
            clip_threshold=_number(config.get("clipThreshold")), payout_factor=_number(config.get("payoutFactor"))))
    return RoundPayout(tournament, int(raw["number"]), _number(raw.get("payoutFactor")), tuple(scores))


@dataclass(frozen=True)
class ScoreLine:
    """One paying score in a preview: its multiplier and the local estimate used, or why none."""

    name: str
    display_name: str
    multiplier: float | None
    estimate: float | None
    source: str  # where the estimate comes from, or why there is none


@dataclass(frozen=True)
class PayoutPreview:
    """What a submission would be paid this round, as far as local figures tell."""

    round_number: int
    tournament: str
    lines: tuple[ScoreLine, ...]
    payout_factor: float | None
    clip: float | None
    stake: float | None
    raw_score: float | None  # Σ multiplier × estimate over the known paying scores
    fraction: float | None  # clip(payout_factor × raw_score, ±clip), before any churn penalty
    churn_penalty: float | None  # share of a positive payout kept (1 = none)
    amount: float | None  # stake × fraction (× penalty when positive)
    partial: bool  # some paying score had no local estimate
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """One line for summaries."""
        if not self.lines:
            return f"payout: round {self.round_number} lists no paying score; nothing to estimate"
        parts = []
        for line in self.lines:
            value = "unknown" if line.estimate is None else f"{line.estimate:+.4f}"
            mult = "?" if line.multiplier is None else f"{line.multiplier:g}"
            parts.append(f"{mult}×{line.display_name} {value}")
        head = f"payout: round {self.round_number} pays " + " + ".join(parts)
        if self.fraction is None:
            return head + " (no estimate: " + "; ".join(self.notes) + ")"
        tail = f" → {self.fraction:+.4f} of stake"
        if self.churn_penalty is not None and self.churn_penalty < 1:
            tail += f", × {self.churn_penalty:.3f} neutral-churn penalty if positive"
        if self.amount is not None:
            tail += f" ≈ {self.amount:+.4f} NMR on a stake of {self.stake:g}"
        if self.partial:
            tail += " (partial: " + ", ".join(line.display_name for line in self.lines if line.estimate is None) \
                + " unknown, counted as 0)"
        return head + tail


def payout_preview(payout: RoundPayout, estimates: Mapping[str, float | None], *,
                   sources: Mapping[str, str] | None = None, stake: float | None = None,
                   churn_penalty: float | None = None) -> PayoutPreview:
    """Preview ``payout``'s paying scores with local ``estimates`` (keyed by a score's name or
    display name, any case; a None value or a missing key is unknown).

    The estimate counts unknown scores as 0 and is flagged partial; with no known paying score
    there is no estimate. The clip is the paying scores' ``clipThreshold`` (the smallest when they
    differ: the payout cannot exceed it), the payout factor the round's (else the scores')."""
    sources = {k.lower(): v for k, v in (sources or {}).items()}
    given = {k.lower(): v for k, v in estimates.items()}
    lines, notes = [], []
    for score in payout.paying:
        ranked = sorted(((score.matches(k), k) for k in set(given) | set(sources)), reverse=True)
        key = ranked[0][1] if ranked and ranked[0][0] > 0 else None
        raw_value = given.get(key) if key else None
        value = float(raw_value) if raw_value is not None and math.isfinite(float(raw_value)) else None
        source = sources.get(key or "", "local estimate" if value is not None else "no local estimate")
        lines.append(ScoreLine(score.name, score.display_name, score.multiplier, value, source))
    factors = [payout.payout_factor] + [s.payout_factor for s in payout.paying]
    factor = next((f for f in factors if f is not None), None)
    clips = [s.clip_threshold for s in payout.paying if s.clip_threshold is not None]
    clip = min(clips) if clips else None
    if clips and len(set(clips)) > 1:
        notes.append(f"the paying scores have different clips {sorted(set(clips))}: the smallest is used")
    known = [line for line in lines if line.estimate is not None]
    raw = fraction = amount = None
    if not lines:
        notes.append("no paying score in this round's configuration")
    elif not known:
        notes.append("no paying score has a local estimate")
    elif any(line.multiplier is None for line in known):
        notes.append("Numerai gives no multiplier for " + ", ".join(line.display_name for line in known
                                                                      if line.multiplier is None))
    elif factor is None:
        notes.append("Numerai gives no payout factor for this round")
    else:
        raw = float(sum(float(line.multiplier or 0.0) * float(line.estimate or 0.0) for line in known))
        fraction = factor * raw
        if clip is not None:
            fraction = max(-clip, min(clip, fraction))
        if stake is not None:
            kept = churn_penalty if (churn_penalty is not None and fraction > 0) else 1.0
            amount = stake * fraction * kept
    return PayoutPreview(payout.round_number, payout.tournament, tuple(lines), factor, clip, stake, raw, fraction,
                         churn_penalty, amount, partial=bool(known) and len(known) < len(lines), notes=tuple(notes))


def local_estimates(validation_metrics: Mapping[str, Any], tournament: str) -> tuple[dict[str, float | None],
                                                                                     dict[str, str]]:
    """The local figures a model's validation gives for the scores Numerai pays, and where each
    comes from (the mean per weekly era of the validation dates): Signals ALPHA (MPC needs other
    users' stakes: unknown), Classic CORR and MMC, Crypto MMC when one was scored (the demo's
    synthetic meta model; Numerai publishes no Crypto meta model: unknown for a live model)."""
    def era_mean(name: str) -> float | None:
        block = validation_metrics.get(name)
        value = block.get("mean") if isinstance(block, Mapping) else None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def described(name: str, label: str) -> str:
        block = validation_metrics.get(name)
        eras = block.get("n_eras") if isinstance(block, Mapping) else None
        return f"validation {label}, mean of {eras} eras" if eras else f"validation {label}"

    estimates: dict[str, float | None] = {}
    sources: dict[str, str] = {}
    wanted = {"signals": (("alpha", "ALPHA"),), "classic": (("corr", "CORR"), ("mmc", "MMC")),
              "crypto": (("mmc", "MMC"),)}.get(tournament, ())
    for name, label in wanted:
        estimates[name] = era_mean(name)
        sources[name] = described(name, label) if estimates[name] is not None else \
            "needs Numerai's meta model: not computable locally" if tournament == "crypto" else \
            f"no validation {label} (not scored for this model)"
    if tournament == "signals":
        estimates["mpc"] = None
        sources["mpc"] = "needs other users' stakes: not computable locally"
    if tournament in ("signals", "crypto"):
        estimates.setdefault("mmc", None)
        sources.setdefault("mmc", "needs Numerai's meta model: not computable locally")
    return estimates, sources


def model_previews(settings: Any, payout: RoundPayout) -> list[dict[str, Any]]:
    """For each model of the round (the ``[[models]]`` table, or the configured model): its stake,
    its newest registered model and the payout preview from that model's validation figures."""
    from numerflow.tasks.classic.training import classic_model_label
    from numerflow.tasks.core.store import Store, read_json
    from numerflow.tasks.model.training import META_FILE, latest_model_of
    from numerflow.tasks.round.models import round_models

    store = Store(settings.data_dir)
    previews = []
    for model in round_models(settings):
        own = model.settings
        name = own.numerai.model_name or "model"
        latest = latest_model_of(store, payout.tournament, model.name if model.in_table else None,
                                 classic_model_label(own))
        metrics = read_json(latest / META_FILE).get("validation_metrics") or {} if latest else {}
        estimates, sources = local_estimates(metrics, payout.tournament)
        if latest is None:
            sources = {k: "no registered model yet" for k in sources}
        preview = payout_preview(payout, estimates, sources=sources, stake=own.numerai.stake)
        previews.append({"model": name, "registry_model": latest.name if latest else None, **preview.as_dict(),
                         "text": preview.text()})
    return previews


def payout_config_text(payout: RoundPayout) -> str:
    """One line: what this round pays, as Numerai configured it."""
    paying = [f"{'?' if s.multiplier is None else format(s.multiplier, 'g')}×{s.display_name}" for s in payout.paying]
    clips = sorted({s.clip_threshold for s in payout.paying if s.clip_threshold is not None})
    return (f"round {payout.round_number} pays " + (" + ".join(paying) or "no score")
            + (f", clip ±{clips[0]:g}" if clips else "")
            + (f", payout factor {payout.payout_factor:g}" if payout.payout_factor is not None else "")
            + f"; also scored: {', '.join(s.display_name for s in payout.scores if not s.is_payout) or 'none'}")
