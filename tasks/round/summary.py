"""What ``numerflow run`` prints: a round's summary as a dict (``--json``) and as text, for a
Signals/Crypto round (prices, dataset, validation CORR and ALPHA or, for Crypto, MMC, churn, upload, each model) and
for a Classic round (Numerai's data version, per-era CORR, the upload)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from numerflow.tasks.round.results import ModelRun, RoundResult


def summary_of(result: RoundResult) -> tuple[dict[str, Any], str]:
    """The round's summary and its text, by tournament."""
    if result.tournament == "classic":
        summary = classic_summary(result)
        return summary, render_classic_summary(summary)
    summary = run_summary(result)
    return summary, render_summary(summary)


def run_summary(result: RoundResult) -> dict[str, Any]:
    dataset, model, upload = result.dataset, result.model, result.upload
    assert dataset is not None and result.prices is not None and result.resolution is not None  # Signals, Crypto
    summary: dict[str, Any] = {
        "round": result.round_label,
        "tournament": result.tournament,
        "mode": result.mode,
        "prices": result.prices.as_dict(),
        "dataset": {"path": dataset.path, "rows": dataset.rows, "tickers": dataset.tickers,
                    "first_date": dataset.first_date, "last_date": dataset.last_date, "built": dataset.built},
        "model": {"id": model.model_id, "trained": model.trained, "decision": model.decision},
        # Weekly-era summaries (tasks.model.eras); a model trained before eras existed has n_dates instead.
        "validation": {k: model.validation.get(k) for k in ("mean", "std", "sharpe", "max_drawdown", "positive_share",
                                                             "n_eras", "n_dates")},
        "alpha": {k: (model.alpha or {}).get(k) for k in ("mean", "std", "sharpe", "positive_share", "n_eras")}
        if model.alpha else None,
        "mmc": {k: (model.mmc or {}).get(k) for k in ("mean", "std", "sharpe", "positive_share", "n_eras")}
        if model.mmc else None,
        "report": model.report.markdown if model.report else None,
        "neutralization": model.neutralization,
        "live_date": result.live.live_date,
        "submission": {"path": result.submission.path, "rows": result.submission.rows,
                       "sha256": result.submission.sha256, "churn": result.submission.checks.get("churn"),
                       "neutral_churn": result.submission.checks.get("neutral_churn")},
        "upload": {"dry_run": upload.dry_run, "reason": upload.message, "record": upload.record,
                   "status": upload.status, "submission_id": upload.submission_id},
        **verdict_summary(result.models[0]),
        "payout_config": payout_config(result),
    }
    summary["models"] = [{"name": run.name, "model_id": run.model.model_id, "trained": run.model.trained,
                          "validation_mean": run.model.validation.get("mean"), "submission": run.submission.path,
                          "upload": run.upload.status, "submission_id": run.upload.submission_id,
                          **verdict_summary(run)}
                         for run in result.models]
    if result.mode == "live":
        summary["numerai"] = {"tournament": result.universe.tournament, "round": result.universe.round_number,
                              "window": result.window, "universe": {"tickers": result.universe.tickers,
                                                                    "dataset": result.universe.dataset},
                              "resolution": result.resolution.totals,
                              "candidates_path": result.resolution.candidates_path}
    return summary


def neutralization_line(block: dict[str, Any], alpha: dict[str, Any] | None, corr: dict[str, Any]) -> str:
    """[neutralize]: how, and the validation CORR and ALPHA means before → after (what is uploaded)."""
    def mean(summary: dict[str, Any] | None) -> str:
        value = (summary or {}).get("mean")
        return "—" if value is None else format(value, ".5f")

    before = block.get("before") or {}
    # Classic's block keeps its CORR, FNC, MMC after; Signals shows CORR and ALPHA; Crypto (no ALPHA) CORR
    scored_alpha = before.get("alpha") is not None or alpha is not None
    after = block.get("after") or {"corr": corr, **({"alpha": alpha} if scored_alpha else {})}
    features = block.get("features") or []
    figures = ", ".join(f"{name.upper()} mean {mean(before.get(name))} → {mean(after.get(name))}" for name in after)
    return (f"proportion {block['proportion']:g} against {', '.join(block['against'])} ({len(features)} features): "
            f"{figures} (validation figures are of the neutralised predictions, as uploaded)")


def verdict_summary(run: ModelRun) -> dict[str, Any]:
    """Numerai's verdict on a model of the round: its payout preview and its diagnostics (when on)."""
    from numerflow.tasks.round.verdict import diagnostics_line, verdict_numbers

    diagnostics = run.diagnostics
    return {"payout": verdict_numbers(run.submission.checks),
            "diagnostics": None if diagnostics is None else {**asdict(diagnostics), "flagged": diagnostics.flagged,
                                                             "line": diagnostics_line(diagnostics)}}


def payout_config(result: RoundResult) -> str | None:
    """What Numerai pays this round, as configured (live rounds whose configuration was read)."""
    from numerflow.tasks.numerai.payout import payout_config_text

    return payout_config_text(result.payout) if result.payout is not None else None


def verdict_lines(s: dict[str, Any]) -> list[str]:
    """The payout and diagnostics lines of a summary (or of one model's entry)."""
    lines = [f"  pays        {s['payout_config']}"] if s.get("payout_config") else []
    if (s.get("payout") or {}).get("payout"):
        lines.append(f"  payout      {s['payout']['payout']}")
    if s.get("diagnostics"):
        lines.append(f"  diagnostics {s['diagnostics']['line']}")
    return lines


def render_summary(s: dict[str, Any]) -> str:
    from numerflow.tasks.prices.ingest import render_failure_groups

    v = s["validation"]
    lines = [
        f"numerflow round {s['round']}",
        f"  prices      {_prices_line(s['prices'])}",
        *(["  problems    tickers without fresh bars, by cause:", *render_failure_groups(s["prices"]["causes"])]
          if s["prices"].get("causes") else []),
        f"  dataset     {s['dataset']['rows']:,} rows, {s['dataset']['first_date']} → {s['dataset']['last_date']}"
        + (f" ({s['dataset']['built']})" if s["dataset"].get("built") else ""),
        f"  model       {s['model']['id']} ({s['model']['decision']})",
        f"  validation  {_validation_line(v)}",
        # Crypto pays on MMC and has no neutralizer: no ALPHA line.
        f"  mmc         {_mmc_line(s.get('mmc'))}" if s.get("tournament") == "crypto" else
        f"  alpha       {_alpha_line(s.get('alpha'))}",
        *([f"  neutralized {neutralization_line(s['neutralization'], s.get('alpha'), v)}"]
          if s.get("neutralization") else []),
        f"  submission  {s['submission']['path']} ({s['submission']['rows']} rows, live date {s['live_date']})",
        f"  churn       {s['submission'].get('churn') or 'not checked'}",
        *([f"  neutral     {s['submission']['neutral_churn']}"] if s["submission"].get("neutral_churn") else []),
        *verdict_lines(s),
        f"  upload      {_upload_line(s['upload'])}",
        f"  report      {s['report'] or 'unchanged model: see its earlier report'}",
    ]
    if len(s["models"]) > 1:
        for m in s["models"]:
            lines.append(f"  model {m['name']:<12}{m['model_id']} ({'trained' if m['trained'] else 'reused'}), "
                         f"CORR {m['validation_mean']:.4f}, {m['upload']}: {m['submission']}")
            lines += [f"    {line.strip()}" for line in verdict_lines(m)]
    n = s.get("numerai")
    if n:
        lines.append(f"  numerai     round {n['round']}, {n['universe']['tickers']} tickers ({n['universe']['dataset']}); "
                     f"{_resolution_text(n['resolution'], s['prices'])}")
        if n["window"]:
            lines.append(f"  window      opens {n['window']['open_time']}, closes {n['window']['close_time']}")
    return "\n".join(lines)


def _resolution_text(totals: dict[str, Any] | None, prices: dict[str, Any]) -> str:
    """What the ids → price symbols step did: Yahoo's resolution counts, or for the user's own files
    (keyed by Numerai's ids, nothing to resolve) how many universe ids the files have prices for."""
    if totals:
        return (f"resolved {totals.get('resolved')}, ambiguous {totals.get('ambiguous')}, "
                f"unresolved {totals.get('unresolved')}")
    coverage = prices.get("coverage") or {}
    have = (f"prices for {coverage['covered']} of {coverage['universe']} universe ids" if coverage.get("universe")
            else "prices")
    return f"{have} from {prices.get('source')} (keyed by Numerai's ids: no Yahoo resolution)"


def _validation_line(v: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    if v.get("n_eras") is None:  # a model trained before era summaries
        return f"CORR mean {fmt(v.get('mean'), '.4f')} over {v.get('n_dates')} daily dates (retrain for era figures)"
    return (f"CORR per weekly era: mean {fmt(v.get('mean'), '.4f')}, sharpe {fmt(v.get('sharpe'), '.2f')}, "
            f"max drawdown {fmt(v.get('max_drawdown'), '.4f')}, positive {fmt(v.get('positive_share'), '.0%')} "
            f"of {v['n_eras']} eras")


def _alpha_line(alpha: dict[str, Any] | None) -> str:
    if not alpha or alpha.get("mean") is None:
        return "not scored (no neutralizer for the validation dates); MPC cannot be computed locally"
    sharpe = "—" if alpha.get("sharpe") is None else f"{alpha['sharpe']:.2f}"
    return (f"ALPHA per weekly era: mean {alpha['mean']:.5f}, sharpe {sharpe}, positive "
            f"{alpha['positive_share']:.0%} of {alpha['n_eras']} eras (after Numerai-style neutralisation; "
            "MPC cannot be computed locally)")


def _mmc_line(mmc: dict[str, Any] | None) -> str:
    if not mmc or mmc.get("mean") is None:
        return "not scored (Numerai publishes no Crypto meta model for the validation dates)"
    sharpe = "—" if mmc.get("sharpe") is None else f"{mmc['sharpe']:.2f}"
    return (f"MMC per weekly era: mean {mmc['mean']:.5f}, sharpe {sharpe}, positive {mmc['positive_share']:.0%} "
            f"of {mmc['n_eras']} eras (against the meta model; Crypto pays clip(payout_factor × MMC, ±0.05))")


def _prices_line(prices: dict[str, Any]) -> str:
    statuses = ", ".join(f"{prices[k]} {k}" for k in ("ok", "stale", "failed", "delisted", "unresolved")
                         if prices.get(k))
    from numerflow.tasks.round.report import coverage_line

    return (f"{prices['tickers']} tickers from {prices['source']} ({statuses}); {prices['rows']:,} bars written "
            f"this run; data to {prices['last_date']}"
            + (f"; {coverage_line(prices['coverage'])}" if prices.get("coverage") else ""))


def _upload_line(upload: dict[str, Any]) -> str:
    if upload.get("dry_run"):
        reason = str(upload["reason"])
        return reason if reason.startswith("DRY RUN") else f"DRY RUN — {reason}"
    # Live rounds: "uploaded" or "skipped" (already in the ledger), with the reason.
    return f"{upload.get('status') or 'uploaded'} — {upload['reason']}" if upload.get("reason") else "uploaded"


def classic_summary(result: RoundResult) -> dict[str, Any]:
    model, upload = result.model, result.upload
    return {
        "tournament": "classic",
        "round": result.round_label,
        "mode": result.mode,
        "data": {k: (str(v) if v is not None else None) for k, v in asdict(result.data).items()}
        if result.data is not None else None,
        "live_rows": result.universe.tickers,
        "model": {"id": model.model_id, "trained": model.trained, "decision": model.decision},
        "validation": {k: model.validation.get(k) for k in ("mean", "std", "sharpe", "max_drawdown",
                                                             "positive_share", "n_eras")},
        "neutralization": model.neutralization,
        "report": model.report.markdown if model.report else None,
        "submission": {"path": result.submission.path, "rows": result.submission.rows,
                       "sha256": result.submission.sha256},
        "upload": {"dry_run": upload.dry_run, "reason": upload.message, "record": upload.record,
                   "status": upload.status, "submission_id": upload.submission_id},
        "window": result.window,
        **verdict_summary(result.models[0]),
        "payout_config": payout_config(result),
    }


def render_classic_summary(s: dict[str, Any]) -> str:
    v = s["validation"]

    def fmt(value: Any, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    upload = s["upload"]
    return "\n".join([
        f"numerflow Classic round {s['round']} ({s['mode']})",
        f"  data        {s['data']['version']}: {s['live_rows']} live rows"
        + (f", validation to era {s['data']['validation_last_era']}" if s['data'].get('validation_last_era') else ""),
        f"  model       {s['model']['id']} ({s['model']['decision']})",
        f"  validation  CORR per era: mean {fmt(v.get('mean'), '.4f')}, sharpe {fmt(v.get('sharpe'), '.2f')}, "
        f"max drawdown {fmt(v.get('max_drawdown'), '.4f')}, positive {fmt(v.get('positive_share'), '.0%')} of "
        f"{v.get('n_eras')} eras",
        *([f"  neutralized {neutralization_line(s['neutralization'], None, v)}"] if s.get("neutralization") else []),
        f"  submission  {s['submission']['path']} ({s['submission']['rows']} rows)",
        *verdict_lines(s),
        f"  upload      {upload['reason'] if str(upload['reason']).startswith('DRY RUN') else upload['status'] + ' — ' + str(upload['reason'])}",
        f"  report      {s['report'] or 'unchanged model: see its earlier report'}",
    ])
