"""One Markdown run report per scheduled round (published as the ``round-report`` artifact).

A pure function of the round's result dict (flows/round.py and flows/numerai_round.py shapes):
universe coverage, the ingest ledger summary, validation diagnostics, the submission and
where everything is. No secrets are in these inputs.
"""

from __future__ import annotations

from typing import Any

from numerflow.tasks.core.store import read_parquet


def universe_size(universe_path: str | None) -> int | None:
    if not universe_path:
        return None
    return len(read_parquet(universe_path, columns=["numerai_ticker"]))


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "—"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def render_round_report(result: dict[str, Any], *, mode: str, round_label: str, flow_run_url: str | None = None,
                        universe_tickers: int | None = None) -> str:
    ingest, train, submit = result["ingest"], result["train"], result["submit"]
    prices = ingest["prices"]
    model, corr = train["model"], train["model"].get("validation") or {}
    submission, upload = submit["submission"], submit["upload"]
    covered = prices.get("ok", 0) + prices.get("stale", 0)
    coverage = (f"{covered} of {universe_tickers} universe tickers have prices ({covered / universe_tickers:.1%})"
                if universe_tickers else f"{covered} tickers have prices")
    status = upload.get("status") or ("dry_run" if upload.get("dry_run") else "uploaded")
    lines = [
        f"# numerflow round {round_label} ({mode})",
        "",
        "## Universe coverage",
        f"- {coverage}; submission holds {submission['rows']} tickers (live date {submit['live']['live_date']})",
        "",
        "## Ingest ledger",
        "| source | tickers | ok | stale | failed | delisted | no data | unresolved | new bars | excluded | re-pulled |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| " + " | ".join(_fmt(prices.get(k)) for k in ("source", "tickers", "ok", "stale", "failed", "delisted",
                                                      "no_data", "unresolved", "rows", "excluded_rows", "repulled"))
        + " |",
        f"- ledger: `{prices.get('ledger_path')}`; prices to {prices.get('last_date')}",
        "",
        "## Model and validation diagnostics",
        f"- model `{model['model_id']}` ({'trained this run' if model.get('trained') else 'reused'}): "
        f"{train.get('decision', '')}",
        f"- validation CORR mean {_fmt(corr.get('mean'), '.4f')}, std {_fmt(corr.get('std'), '.4f')}, "
        f"sharpe {_fmt(corr.get('sharpe'), '.2f')}, max drawdown {_fmt(corr.get('max_drawdown'), '.4f')} "
        f"over {_fmt(corr.get('n_dates'))} dates",
        "",
        "## Submission",
        f"- status: **{status}** — {upload.get('reason') or upload.get('message') or ''}",
        f"- file `{submission['path']}` ({submission['rows']} rows, sha256 `{submission['sha256'][:16]}`)",
    ]
    if upload.get("submission_id"):
        lines.append(f"- Numerai submission id `{upload['submission_id']}`")
    lines += ["", "## Links"]
    report = (model.get("report") or {}).get("markdown")
    lines.append(f"- validation report: `{report}`" if report else "- validation report: unchanged model (earlier run)")
    if flow_run_url:
        lines.append(f"- this run in the Prefect UI: {flow_run_url}")
    return "\n".join(lines) + "\n"
