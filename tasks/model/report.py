"""Diagnostics report: JSON (machine), Markdown (people, and the Prefect artifact), PNG chart."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from numerflow.tasks.core.store import Store, write_json, write_text, write_with
from numerflow.tasks.model.scoring import overlap_adjusted_sem


def cumulative_corr_chart(per_date: pd.Series, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    cumulative = per_date.cumsum()
    ax.plot(pd.to_datetime(cumulative.index), cumulative.to_numpy(), color="#2b6cb0")
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_title("Validation: cumulative Numerai CORR")
    ax.set_ylabel("cumulative CORR")
    fig.autofmt_xdate()
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _target_overlap(model_meta: dict) -> int:
    """Dates a target spans (lag + horizon): measured on the training data (right for Numerai's
    60-day targets too), else from the model's lineage; 0 when unknown."""
    measured = (model_meta.get("data_range") or {}).get("target_span_trading_days")
    if measured:
        return int(measured)
    target = (model_meta.get("lineage") or {}).get("target") or {}
    return int(target.get("horizon", 0)) + int(target.get("lag", 0))


def render_markdown(metrics: dict, model_meta: dict, chart_name: str) -> str:
    corr = metrics["corr"]
    fnc = metrics.get("fnc", {})
    exposure = metrics.get("feature_exposure", {})
    rng = model_meta["data_range"]
    lines = [
        f"# numerflow validation report — model `{model_meta['model_id']}`",
        "",
        f"Validation dates {rng['validation_start']} → {model_meta['data_range'].get('last_labelled_date')} "
        f"({rng['validation_rows']} rows); training rows {rng['train_rows']} with targets ending by "
        f"{rng['train_last_target_end']} (embargo {rng['embargo_days']} days).",
        "",
        "| metric | CORR | feature-neutral CORR |",
        "|---|---|---|",
    ]
    for key in ["mean", "std", "sharpe", "max_drawdown", "sem", "n_dates"]:
        lines.append(f"| {key} | {_fmt(corr.get(key))} | {_fmt(fnc.get(key, ''))} |")
    overlap = _target_overlap(model_meta)
    if overlap:
        # Consecutive dates' targets overlap, so the naive sem above understates the noise.
        adjusted = {name: overlap_adjusted_sem(pd.Series(metrics["per_date"][name], dtype="float64"), overlap)
                    for name in ("corr", "fnc") if name in metrics["per_date"]}
        lines.append(f"| sem, overlap-adjusted ({overlap} dates) | {_fmt(adjusted.get('corr'))} | "
                     f"{_fmt(adjusted.get('fnc', ''))} |")
        if adjusted.get("corr"):
            lines.append(f"| t-stat of mean, overlap-adjusted | {_fmt(corr['mean'] / adjusted['corr'])} | |")
    if exposure:
        lines += ["", f"Max feature exposure (mean over dates): {_fmt(exposure.get('mean'))}"
                  f" — most exposed feature `{exposure.get('worst_feature')}`."]
    lines += ["", f"![cumulative CORR]({chart_name})", ""]
    return "\n".join(lines)


def write_report(store: Store, run_id: str, metrics: dict, model_meta: dict) -> dict:
    """Write report.json, report.md and cumulative_corr.png; return their paths and the markdown."""
    report_dir = store.report_dir(run_id)
    per_date = pd.Series(metrics["per_date"]["corr"], index=pd.to_datetime(metrics["per_date"]["date"]))
    chart = cumulative_corr_chart(per_date, report_dir / "cumulative_corr.png")
    markdown = render_markdown(metrics, model_meta, chart.name)
    json_path = write_json(report_dir / "report.json", {"model": model_meta, "metrics": metrics})
    md_path = write_text(report_dir / "report.md", markdown)
    return {"json": str(json_path), "markdown": str(md_path), "chart": str(chart), "markdown_text": markdown}
