"""Diagnostics report: JSON (machine), Markdown (people, and the Prefect artifact), PNG chart.

Figures follow Numerai's: summaries on weekly eras (``tasks.model.eras``), daily scores only as a
mean with its overlap-adjusted standard error. The chart (per-era bars, cumulative era lines) is
written as a PNG and embedded in the Markdown as a data URI, so it renders in the Prefect UI's
artifact page too (a relative image path would point nowhere there).
"""

from __future__ import annotations

import base64
import io

import pandas as pd

from numerflow.tasks.core.store import Store, write_bytes, write_json, write_parquet, write_text
from numerflow.tasks.model.scoring import overlap_adjusted_sem

SCORE_LABELS = {"corr": "CORR", "fnc": "FNC (feature-neutral CORR)", "corr_target": "CORR vs Numerai's target",
                "fnc_target": "FNC vs Numerai's target", "alpha": "ALPHA",
                "mmc": "MMC (vs Numerai's meta model)"}


def era_chart_png(per_era: dict) -> bytes:
    """Per-era bars and cumulative lines of every score in ``per_era`` (``date`` + score lists)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in SCORE_LABELS if n in per_era]
    # Signals' per_era has dates; Numerai Classic's has numbered eras ("0001", one a week).
    numbered = "era" in per_era
    dates = pd.Series(per_era["era"]).astype(int) if numbered else pd.to_datetime(pd.Series(per_era["date"]))
    fig, (bars, lines) = plt.subplots(2, 1, figsize=(9, 5.5), dpi=90, sharex=True)
    colours = {"corr": "#2b6cb0", "fnc": "#38a169", "corr_target": "#805ad5", "fnc_target": "#319795",
               "alpha": "#d69e2e", "mmc": "#dd6b20"}
    width = (0.8 if numbered else pd.Timedelta(days=5)) / max(len(names), 1)
    for i, name in enumerate(names):
        values = pd.Series(per_era[name], dtype="float64")
        bars.bar(dates + width * i, values.fillna(0.0).to_numpy(), width=width, color=colours[name],
                 label=SCORE_LABELS[name])
        lines.plot(dates, values.fillna(0.0).cumsum().to_numpy(), color=colours[name], label=SCORE_LABELS[name])
    for ax in (bars, lines):
        ax.axhline(0, color="#888", linewidth=0.8)
        ax.legend(loc="upper left", fontsize=8)
    bars.set_title("Validation per weekly era")
    bars.set_ylabel("score per era")
    lines.set_ylabel("cumulative over eras")
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def feature_scores_frame(per_date_features: dict) -> pd.DataFrame:
    """Long per-date per-feature scores: ``date, feature, score, value`` (one row per date, feature and score)."""
    parts = []
    for score, table in per_date_features.items():
        wide = pd.DataFrame({k: pd.Series(v, dtype="float64") for k, v in table.items() if k != "date"})
        wide.insert(0, "date", pd.to_datetime(pd.Series(table["date"])))
        long = wide.melt(id_vars="date", var_name="feature", value_name="value")
        parts.append(long.assign(score=score)[["date", "feature", "score", "value"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["date", "feature", "score", "value"])


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: object, spec: str = ".4f") -> str:
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, float) else str(value)


def _target_overlap(model_meta: dict) -> int:
    """Dates a target spans (lag + horizon): measured on the training data (right for Numerai's
    60-day targets too), else from the model's lineage; 0 when unknown."""
    measured = (model_meta.get("data_range") or {}).get("target_span_trading_days")
    if measured:
        return int(measured)
    target = (model_meta.get("lineage") or {}).get("target") or {}
    return int(target.get("horizon", 0)) + int(target.get("lag", 0))


def render_markdown(metrics: dict, model_meta: dict, chart_ref: str) -> str:
    """The report; ``chart_ref`` is the image target (a data URI, or a file name)."""
    rng = model_meta["data_range"]
    names = [n for n in SCORE_LABELS if isinstance(metrics.get(n), dict)]
    header = "| " + " | ".join(["per weekly era", *(SCORE_LABELS[n] for n in names)]) + " |"
    lines = [
        f"# numerflow validation report — model `{model_meta['model_id']}`",
        "",
        f"Validation dates {rng['validation_start']} → {rng.get('last_labelled_date')} "
        f"({rng['validation_rows']} rows); training rows {rng['train_rows']} with targets ending by "
        f"{rng['train_last_target_end']} (embargo {rng['embargo_days']} days).",
        "",
        "Summaries are on weekly eras (the last date of each week, one score each), the way Numerai shows them."
        + (" CORR and FNC are against the target the model trained on; Numerai shows CORR against its `target`, "
           "in the columns marked so." if "corr_target" in names else ""),
        "",
        header,
        "|" + "---|" * (len(names) + 1),
    ]
    for key in ["mean", "std", "sharpe", "max_drawdown", "positive_share", "n_eras"]:
        lines.append(f"| {key} | " + " | ".join(_fmt(metrics[n].get(key)) for n in names) + " |")
    daily = metrics.get("daily") or {}
    overlap = _target_overlap(model_meta)
    if not daily and overlap:  # metrics of an older model: derive the daily figures here
        daily = {n: {"mean": metrics[n].get("mean"), "n_dates": metrics[n].get("n_dates"),
                     "sem_overlap_adjusted": overlap_adjusted_sem(pd.Series(metrics["per_date"][n], dtype="float64"),
                                                                  overlap)}
                 for n in names if n in metrics.get("per_date", {})}
    if daily:
        shown = [n for n in names if n in daily]
        first = daily[shown[0]] if shown else {}
        lines += [
            "",
            f"Daily scores overlap ({first.get('overlap', overlap)} dates share a target window): their mean "
            "with the overlap-adjusted standard error; no sharpe or drawdown is computed on them.",
            "",
            "| " + " | ".join(["daily", *(SCORE_LABELS[n] for n in shown)]) + " |",
            "|" + "---|" * (len(shown) + 1),
        ]
        for key, label in [("mean", "mean"), ("sem_overlap_adjusted", "sem, overlap-adjusted"),
                           ("t_stat", "t-stat of mean"), ("n_dates", "n_dates")]:
            lines.append(f"| {label} | " + " | ".join(_fmt(daily[n].get(key)) for n in shown) + " |")
    members = metrics.get("members") or {}
    if members:
        weights = {m["target"]: m["weight"] for m in model_meta.get("members", [])}
        lines += ["", f"Ensemble of {len(members)} models, one per target, rank-averaged; the table above scores the "
                  f"ensemble against `{model_meta.get('scored_on')}`. Each member against its own target:", "",
                  "| member target | weight | CORR mean per era | sharpe | positive share | daily t-stat |",
                  "|---|---|---|---|---|---|"]
        member_daily = metrics.get("member_daily") or {}
        for target, summary in members.items():
            lines.append(f"| `{target}` | {_fmt(weights.get(target), '.3f')} | {_fmt(summary.get('mean'))} | "
                         f"{_fmt(summary.get('sharpe'))} | {_fmt(summary.get('positive_share'))} | "
                         f"{_fmt((member_daily.get(target) or {}).get('t_stat'))} |")
    importance = metrics.get("feature_importance") or {}
    per_feature = metrics.get("features") or {}
    if per_feature:
        with_alpha = any("alpha" in entry for entry in per_feature.values())
        ranked = sorted(per_feature.items(), key=lambda item: -((item[1].get("corr") or {}).get("mean") or -1.0))
        lines += ["", "Per feature (each feature's own score on the validation dates, the feature used as the "
                  "prediction; daily mean and t-stat on the overlap-adjusted SE), with its gain share in the model. "
                  "All of them: `feature_diagnostics.json` and `feature_scores.parquet` beside this report.", "",
                  "| feature | own CORR | t-stat | " + ("own ALPHA | t-stat | " if with_alpha else "") + "gain share |",
                  "|---|---|---|" + ("---|---|" if with_alpha else "") + "---|"]
        for name, entry in ranked[:20]:
            corr, alpha = entry.get("corr") or {}, entry.get("alpha") or {}
            cells = [_fmt(corr.get("mean")), _fmt(corr.get("t_stat"), ".2f")]
            if with_alpha:
                cells += [_fmt(alpha.get("mean")), _fmt(alpha.get("t_stat"), ".2f")]
            lines.append(f"| `{name}` | " + " | ".join(cells) + f" | {_fmt(entry.get('importance_gain_share'), '.3f')} |")
    if importance and not per_feature:
        lines += ["", "Feature importance (gain share of the held-out model, top 15):", "",
                  "| feature | gain share |", "|---|---|"]
        lines += [f"| `{name}` | {share:.3f} |" for name, share in list(importance.items())[:15]]
    lineage = model_meta.get("lineage") or {}
    if lineage:
        training = lineage.get("training") or {}
        lines += ["", f"Lineage: data `{lineage.get('source')}`, feature set `{training.get('feature_set', 'own')}`, "
                  f"target span {overlap or '?'} {'calendar' if lineage.get('tournament') == 'crypto' else 'trading'} "
                  f"days (lag + horizon), tournament `{lineage.get('tournament')}`."]
    exposure = metrics.get("feature_exposure") or {}
    if exposure:
        lines += ["", f"Max feature exposure (mean over dates): {_fmt(exposure.get('mean'))}"
                  f" — most exposed feature `{exposure.get('worst_feature')}`."]
    if lineage.get("tournament") == "crypto":  # Crypto pays on MMC; it has no neutralizer (no ALPHA, no MPC)
        lines += ["", f"MMC is scored against {metrics['mmc_scored_on']}." if "mmc" in names else
                  "MMC needs a Crypto meta model for the validation dates; Numerai publishes none: not scored.",
                  "", "Numerai Crypto pays stake × clip(payout_factor × MMC, ±0.05)."]
    else:
        if "alpha" in names and metrics.get("alpha_scored_on"):
            lines += ["", f"ALPHA is scored against {metrics['alpha_scored_on']} (Numerai pays ALPHA on target_chili_60)."]
        if "alpha" not in names:
            lines += ["", "ALPHA needs Numerai's neutralizer and sample-weight files for the validation dates; "
                      "none were scored for this model."]
        lines += ["", "MPC (0.8 of the payout) needs every staked user's predictions: it cannot be computed locally."]
    lines += ["", f"![validation per era]({chart_ref})", ""]
    return "\n".join(lines)


def write_report(store: Store, run_id: str, metrics: dict, model_meta: dict) -> dict:
    """Write report.json, report.md and era_scores.png; return their paths and the markdown
    (the chart embedded as a data URI, so the artifact renders it)."""
    report_dir = store.report_dir(run_id)
    per_era = metrics.get("per_era") or {"date": metrics["per_date"]["date"], "corr": metrics["per_date"]["corr"]}
    png = era_chart_png(per_era)
    chart = write_bytes(report_dir / "era_scores.png", png)
    markdown = render_markdown(metrics, model_meta, data_uri(png))
    json_path = write_json(report_dir / "report.json", {"model": model_meta, "metrics": metrics})
    if metrics.get("features"):  # per-feature diagnostics: the summary as JSON, the per-date scores as Parquet
        write_json(report_dir / "feature_diagnostics.json", metrics["features"])
        write_parquet(report_dir / "feature_scores.parquet", feature_scores_frame(metrics["per_date_features"]))
    md_path = write_text(report_dir / "report.md", markdown)
    return {"json": str(json_path), "markdown": str(md_path), "chart": str(chart), "markdown_text": markdown}
