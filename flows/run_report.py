"""One Markdown run report per scheduled round (published as the ``round-report`` artifact).

A pure function of the round's ``RoundResult`` (flows/results.py): universe coverage, the
ingest ledger summary, validation diagnostics, the submission and where everything is. No
secrets are in these inputs.
"""

from __future__ import annotations

from typing import Any

from numerflow.flows.results import RoundResult


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "—"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def coverage_line(coverage: dict[str, Any]) -> str:
    """"N of M universe tickers have prices (x %)": universe ids only (``IngestSummary.coverage``),
    never more than the universe; tickers ingested outside it are named apart."""
    if not coverage.get("universe"):
        return "no universe tickers to cover"
    line = (f"{coverage['covered']} of {coverage['universe']} universe tickers have prices "
            f"({coverage['covered'] / coverage['universe']:.1%})")
    if coverage.get("outside"):
        line += f"; {coverage['outside']} more ingested outside the live universe (delisted or stale history)"
    return line


def render_round_report(result: RoundResult, *, flow_run_url: str | None = None) -> str:
    prices, model, submission, upload = result.prices, result.model, result.submission, result.upload
    corr = model.validation or {}
    coverage = coverage_line(prices.coverage or {})
    summary = prices.as_dict()
    lines = [
        f"# numerflow round {result.round_label} ({result.mode})",
        "",
        "## Universe coverage",
        f"- {coverage}; submission holds {submission.rows} tickers (live date {result.live.live_date})",
        "",
        "## Ingest ledger",
        "| source | tickers | ok | stale | failed | delisted | no data | unresolved | new bars | excluded | re-pulled |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(_fmt(summary.get(k)) for k in ("source", "tickers", "ok", "stale", "failed", "delisted",
                                                      "no_data", "unresolved", "rows", "excluded_rows", "repulled"))
        + " |",
        f"- ledger: `{prices.ledger_path}`; prices to {prices.last_date}",
        *(["- tickers without fresh bars, by cause:", *(f"  - {g['count']} {g['status']}, {g['cause']}: "
                                                        f"{', '.join(g['tickers'])} (e.g. {g['message']})"
                                                        for g in prices.causes)] if prices.causes else []),
        "",
        "## Model and validation diagnostics",
        f"- model `{model.model_id}` ({'trained this run' if model.trained else 'reused'}): {model.decision}",
        f"- validation CORR per weekly era: mean {_fmt(corr.get('mean'), '.4f')}, std {_fmt(corr.get('std'), '.4f')}, "
        f"sharpe {_fmt(corr.get('sharpe'), '.2f')}, max drawdown {_fmt(corr.get('max_drawdown'), '.4f')}, "
        f"positive {_fmt(corr.get('positive_share'), '.0%')} over {_fmt(corr.get('n_eras', corr.get('n_dates')))} eras",
        "- validation ALPHA per weekly era: "
        + (f"mean {_fmt(model.alpha.get('mean'), '.5f')}, sharpe {_fmt(model.alpha.get('sharpe'), '.2f')}, positive "
           f"{_fmt(model.alpha.get('positive_share'), '.0%')} over {_fmt(model.alpha.get('n_eras'))} eras"
           if model.alpha else "not scored (no neutralizer for the validation dates)")
        + "; MPC cannot be computed locally",
        "",
        "## Submission",
        f"- status: **{upload.status}** — {upload.message}",
        f"- file `{submission.path}` ({submission.rows} rows, sha256 `{submission.sha256[:16]}`)",
        f"- {submission.checks.get('churn') or 'churn not checked'}",
    ]
    if upload.submission_id:
        lines.append(f"- Numerai submission id `{upload.submission_id}`")
    if len(result.models) > 1 or result.failures:
        lines += ["", "## Models", "| model | model id | trained | validation CORR | upload | submission id |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {run.name} | `{run.model.model_id}` | {'yes' if run.model.trained else 'reused'} | "
                  f"{_fmt((run.model.validation or {}).get('mean'), '.4f')} | {run.upload.status} | "
                  f"{_fmt(run.upload.submission_id)} |" for run in result.models]
        lines += [f"| {name} | — | — | — | **FAILED** | {cause.replace('|', '/')} |"
                  for name, cause in result.failures.items()]
    if result.scores is not None:
        from numerflow.flows.scores import render_scores_table

        lines += ["", "## Live scores", *render_scores_table(result.scores)]
        lines += [f"- **alert**: {a['text']}" for a in result.scores.alerts]
    lines += ["", "## Links"]
    report = model.report.markdown if model.report else None
    lines.append(f"- validation report: `{report}`" if report else "- validation report: unchanged model (earlier run)")
    if flow_run_url:
        lines.append(f"- this run in the Prefect UI: {flow_run_url}")
    return "\n".join(lines) + "\n"
