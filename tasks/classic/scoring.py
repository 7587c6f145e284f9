"""Numerai Classic diagnostics per era: CORR and FNC against the chosen target, MMC against
Numerai's meta model, and the era summaries (sharpe, max drawdown, positive-era share).

CORR and FNC are ``tasks.model.scoring``'s vectorised scores (each era equals numerai-tools'
``numerai_corr`` / ``feature_neutral_corr`` on that era alone; eras are the grouping keys the
way dates are for Signals). MMC is computed here, all eras at once, and equals numerai-tools
0.7.2 ``scoring.correlation_contribution`` called on each era:

1. the rows where prediction, meta model and target are all present;
2. prediction and meta model tie-kept ranked within the era and gaussianised (``norm.ppf``);
3. the prediction orthogonalised to the meta model: ``p - m (p·m) / (m·m)``;
4. the target times 4 when all of the era's targets lie in [0, 1] (buckets -2..2), centred;
5. MMC = target · orthogonalised prediction / rows.

Summaries are ``tasks.model.eras.era_summary``'s: Classic eras are already weekly and disjoint,
so no collapsing to weeks is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from numerflow.tasks.classic.training import feature_matrix
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.ranking import rank_by_group
from numerflow.tasks.model.eras import era_summary
from numerflow.tasks.model.scoring import corr_and_fnc_by_date, numerai_corr_by_date

SCORES = ("corr", "fnc", "mmc")


def mmc_by_era(predictions: Any, meta_model: Any, targets: Any, eras: Any) -> pd.Series:
    """MMC of each era (numerai-tools ``correlation_contribution`` per era), index = sorted eras.
    An era with fewer than two complete rows, or a constant prediction or meta model, is NaN."""
    p_all = np.asarray(predictions, dtype=np.float64)
    m_all = np.asarray(meta_model, dtype=np.float64)
    t_all = np.asarray(targets, dtype=np.float64)
    keys = np.asarray(eras)
    if not (p_all.shape == m_all.shape == t_all.shape == keys.shape) or p_all.ndim != 1:
        raise BadInputError("predictions, meta model, targets and eras must be aligned 1-d arrays",
                            tag="scoring_bad_input")
    codes_all, labels = pd.factorize(keys, sort=True)
    n = len(labels)
    keep = ~np.isnan(p_all) & ~np.isnan(m_all) & ~np.isnan(t_all)
    codes = codes_all[keep].astype(np.int64)
    p = ndtri(rank_by_group(p_all[keep], codes))
    m = ndtri(rank_by_group(m_all[keep], codes))
    t = t_all[keep]

    def per_era(values: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=values, minlength=n)

    counts = np.bincount(codes, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = per_era(p * m) / per_era(m * m)
        neutral = p - m * slope[codes]
        outside = per_era(((t < 0) | (t > 1)).astype(np.float64)) > 0
        scaled = np.where(outside[codes], t, t * 4.0)
        centred = scaled - (per_era(scaled) / counts)[codes]
        mmc = per_era(centred * neutral) / counts
    constant = (per_era(p * p) == 0) | (per_era(m * m) == 0)
    mmc[(counts < 2) | constant | ~np.isfinite(mmc)] = np.nan
    return pd.Series(mmc, index=pd.Index(labels, name="era"), name="mmc")


def classic_metrics(predictions: np.ndarray, validation: pd.DataFrame, target: str, features: Sequence[str],
                    *, meta_model: np.ndarray | None = None, with_fnc: bool = True) -> dict[str, Any]:
    """Per-era CORR (and FNC against ``features``; MMC when ``meta_model`` is given) of
    ``predictions`` on ``validation``'s rows against ``target``, with era summaries.
    JSON-ready: ``{score: summary}``, ``per_era: {"era": [...], score: [...]}``, ``scored_on``."""
    eras = validation["era"].astype(str).to_numpy()
    targets = validation[target].to_numpy(dtype=np.float64, na_value=np.nan)
    if with_fnc:
        # int8 as read (a view, no copy): the FNC blocks gather a few eras at a time as float64.
        matrix = feature_matrix(validation, features)
        scores = corr_and_fnc_by_date(predictions, targets, matrix, eras)
    else:
        scores = numerai_corr_by_date(predictions, targets, eras).to_frame()
    if meta_model is not None:
        scores["mmc"] = mmc_by_era(predictions, meta_model, targets, eras).reindex(scores.index)
    out: dict[str, Any] = {"scored_on": target}
    for name in scores.columns:
        out[name] = {k: _json(v) for k, v in era_summary(scores[name]).items()}
    out["per_era"] = {"era": [str(e) for e in scores.index],
                      **{name: [_json(float(v)) for v in scores[name].to_numpy()] for name in scores.columns}}
    return out


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def render_classic_markdown(metrics: dict[str, Any], meta: dict[str, Any], chart_ref: str) -> str:
    """The validation report of a Classic model (per-era summaries of CORR, FNC, MMC)."""
    from numerflow.tasks.model.report import SCORE_LABELS

    names = [n for n in SCORES if isinstance(metrics.get(n), dict)]
    rng = meta.get("data_range") or {}
    lineage = meta.get("lineage") or {}
    lines = [
        f"# numerflow Classic validation report — model `{meta['model_id']}`",
        "",
        f"Data `{lineage.get('data_version')}`, feature set `{lineage.get('feature_set')}` "
        f"({len(meta.get('features') or [])} features), targets {', '.join(f'`{t}`' for t in lineage.get('targets', []))}; "
        f"scored on `{metrics.get('scored_on')}` over {rng.get('validation_rows', '?')} validation rows.",
        f"Training eras end at {rng.get('last_train_era', '—')}, first validation era {rng.get('first_validation_era')}"
        f" (embargo {rng.get('embargo_eras', '—')} eras: the target's horizon"
        f"{' + extra' if lineage.get('extra_embargo_eras') else ''}).",
        "",
        "| per era | " + " | ".join(SCORE_LABELS[n] for n in names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for key in ("mean", "std", "sharpe", "max_drawdown", "positive_share", "n_eras"):
        cells = [metrics[n].get(key) for n in names]
        lines.append(f"| {key} | " + " | ".join("—" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
                                                for v in cells) + " |")
    members = metrics.get("members") or {}
    if members:
        lines += ["", f"Ensemble of {len(members)} models (one per target, rank-averaged per era). Each member against "
                  "its own target:", "", "| member target | CORR mean | sharpe |", "|---|---|---|"]
        lines += [f"| `{t}` | {_fmt(s.get('mean'))} | {_fmt(s.get('sharpe'))} |" for t, s in members.items()]
    if metrics.get("neutralization"):
        from numerflow.tasks.round.summary import neutralization_line

        lines += ["", f"Neutralised per era, {neutralization_line(metrics['neutralization'], None, metrics['corr'])}."]
    if "mmc" not in names:
        lines += ["", "MMC not scored: no meta_model.parquet for these validation eras."]
    lines += ["", f"![validation per era]({chart_ref})", ""]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.4f}"


def write_classic_report(store: Any, run_id: str, metrics: dict[str, Any], meta: dict[str, Any]) -> dict[str, str]:
    """report.json, report.md and era_scores.png under ``reports/<run>/`` (Signals' layout and
    chart); returns their paths and the markdown (chart embedded as a data URI)."""
    from numerflow.tasks.core.store import write_bytes, write_json, write_text
    from numerflow.tasks.model.report import data_uri, era_chart_png

    report_dir = store.report_dir(run_id)
    png = era_chart_png(metrics["per_era"])
    chart = write_bytes(report_dir / "era_scores.png", png)
    markdown = render_classic_markdown(metrics, meta, data_uri(png))
    json_path = write_json(report_dir / "report.json", {"model": meta, "metrics": metrics})
    md_path = write_text(report_dir / "report.md", markdown)
    return {"json": str(json_path), "markdown": str(md_path), "chart": str(chart), "markdown_text": markdown}
