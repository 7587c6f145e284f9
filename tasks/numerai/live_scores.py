"""Live scores back: fetch every model's recent round scores into the store's history, summarise
them (last rounds, rolling mean, missed rounds) and notify once per missed round or floor breach.

Used by ``numerflow scores``, the scores flow (flows/scores.py, its own small schedule) and, best
effort, after each scheduled round (its report gets the section). The per-score work is in
``tasks/numerai/scores.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from numerflow.tasks.core.config import Settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, read_json, write_json
from numerflow.tasks.numerai.client import NumeraiClient, client_for
from numerflow.tasks.numerai.ledger import SubmissionLedger
from numerflow.tasks.numerai.scores import (
    ModelScores,
    closed_round_numbers,
    fetch_scores,
    history_path,
    merge_history,
    read_history,
    score_alerts,
    summarise,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoresReport:
    """What a scores refresh found: per model summaries, the alerts, the history file."""

    tournament: str
    history: str
    fetched_rows: int
    models: list[ModelScores]
    alerts: list[dict] = field(default_factory=list)
    notified: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"tournament": self.tournament, "history": self.history, "fetched_rows": self.fetched_rows,
                "models": [m.as_dict() for m in self.models], "alerts": self.alerts, "notified": self.notified}


def model_names(settings: Settings) -> list[str]:
    from numerflow.tasks.round.models import round_models

    return [m.name for m in round_models(settings) if m.name]


def refresh_scores(settings: Settings, *, fetch: bool = True, client: NumeraiClient | None = None,
                   notify: bool = True) -> ScoresReport:
    """Fetch (``fetch``: needs keys, to know the models' ids) into the history, then summarise and
    alert; without fetching, the stored history only."""
    names = model_names(settings)
    if not names:
        raise BadInputError("no model to show scores for: set numerai.model_name or a [[models]] table",
                            tag="no_model")
    store = Store(settings.data_dir)
    tournament, cfg = settings.tournament, settings.scores
    fetched_rows, closed = 0, None
    if fetch:
        client = client or client_for(settings, tournament)
        if client.keys is None:
            raise BadInputError("fetching live scores needs Numerai API keys (the account's model ids); "
                                "pass --no-fetch to show the stored history", tag="no_keys")
        ids = {name: client.resolve_model_id(name) for name in names}
        fetched = fetch_scores(client, ids, cfg.last_n_rounds)
        merge_history(store, tournament, fetched)
        fetched_rows = int(len(fetched))
        closed = closed_round_numbers(client.recent_rounds(cfg.alert_rounds + 5), cfg.alert_rounds)
    ledger = SubmissionLedger.for_settings(settings)
    submitted: dict[str, set[int]] = {}
    for entry in ledger.entries():
        if entry["tournament"] == tournament:
            submitted.setdefault(entry["model_name"], set()).add(int(entry["round"]))
    models = summarise(read_history(store, tournament), names, n=cfg.alert_rounds, closed_rounds=closed,
                       submitted=submitted)
    alerts = score_alerts(models, metric=cfg.metric, floor=cfg.floor, n=cfg.alert_rounds)
    notified = notify_alerts(settings, alerts) if notify else []
    return ScoresReport(tournament, str(history_path(store, tournament)), fetched_rows, models, alerts, notified)


def notify_alerts(settings: Settings, alerts: list[dict]) -> list[dict]:
    """Post each alert not posted before (a record in the store keeps repeats quiet); returns the new ones."""
    from numerflow.tasks.round.alerts import notify_failure

    store = Store(settings.data_dir)
    sent_path = store.root / "scores" / settings.tournament / "alerts-sent.json"
    sent = set(read_json(sent_path)) if sent_path.exists() else set()
    new = [a for a in alerts if f"{a['model']}/{a['kind']}/{a['round']}" not in sent]
    for alert in new:
        notify_failure(settings, flow_name="scores", flow_run_name=alert["model"], stage="scores",
                       cause=alert["text"], state_name="Alert")
        sent.add(f"{alert['model']}/{alert['kind']}/{alert['round']}")
    if new:
        write_json(sent_path, sorted(sent))
    return new


def render_scores_table(report: ScoresReport) -> list[str]:
    """Markdown: per model its last rounds (each metric), rolling mean, missed rounds."""
    lines = []
    for model in report.models:
        metrics = sorted({k for r in model.rounds for k in r if k not in ("round", "resolved")})
        lines += [f"### {model.model}", ""]
        if not model.rounds:
            lines.append("- no live scores yet")
        else:
            lines += ["| round | resolved | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
            lines += [f"| {r['round']} | {'yes' if r['resolved'] else 'no'} | "
                      + " | ".join("—" if r.get(m) is None else f"{r[m]:.4f}" for m in metrics) + " |"
                      for r in model.rounds]
            lines.append("- rolling mean (last scored rounds): "
                         + ", ".join(f"{m} {v:.4f}" for m, v in sorted(model.rolling_mean.items())))
        lines += [f"- missed rounds: {', '.join(map(str, model.missed)) or 'none'}", ""]
    return lines


def render_scores_text(report: ScoresReport, *, fetched: bool, rounds: int) -> str:
    """``numerflow scores``' screen: per model its last rounds (each metric), rolling mean, missed rounds, alerts."""
    lines = [f"numerflow scores: Numerai {report.tournament}, history {report.history}"
             + (f" ({report.fetched_rows} scores fetched)" if fetched else " (stored, not fetched)")]
    for model in report.models:
        metrics = sorted({k for r in model.rounds for k in r if k not in ("round", "resolved")})
        lines.append(f"  {model.model}")
        if not model.rounds:
            lines.append("    no live scores yet")
        else:
            lines.append("    round     " + "".join(f"{m:>12}" for m in metrics) + "  resolved")
            lines += [f"    {r['round']:<10}" + "".join("           —" if r.get(m) is None else f"{r[m]:>12.4f}"
                                                    for m in metrics) + f"  {'yes' if r['resolved'] else 'no'}"
                      for r in model.rounds]
            lines.append("    mean      " + "".join(f"{model.rolling_mean.get(m, float('nan')):>12.4f}" for m in metrics)
                         + f"  (last {rounds} scored rounds)")
        lines.append(f"    missed    {', '.join(map(str, model.missed)) or 'none'}")
    lines += [f"  ALERT {a['text']}" for a in report.alerts]
    return "\n".join(lines)
