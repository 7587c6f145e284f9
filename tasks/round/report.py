"""One Markdown run report per scheduled round, any tournament (published as the ``round-report`` artifact).

A pure function of the round's ``RoundResult`` (tasks/round/results.py): the universe's coverage
and the ingest ledger (Classic: Numerai's data), validation diagnostics, the submission, each
model, and links to the validation reports' artifacts. No secrets are in these inputs.
"""

from __future__ import annotations

from typing import Any

from numerflow.tasks.round.results import ModelRun, RoundResult


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


def render_round_report(result: RoundResult, *, ui_url: str | None = None, flow_run_id: str | None = None) -> str:
    """The report of a round, any tournament; a round where every model failed still has one (its
    Models table names each failure), so the report stage never depends on a model having finished.
    ``ui_url`` (the Prefect UI): links to this run and to each validation report's artifact."""
    first = result.models[0] if result.models else None
    lines = [f"# numerflow {'Classic ' if result.tournament == 'classic' else ''}round {result.round_label} "
             f"({result.mode})", ""]
    if result.guard is not None:
        lines += [f"- guard: {result.guard.reason}", ""]
    lines += data_lines(result, first)
    if first is not None:
        lines += model_lines(first, alpha=result.tournament == "signals", mmc=result.tournament == "crypto")
    if len(result.models) > 1 or result.failures:
        lines += ["", "## Models", "| model | model id | trained | validation CORR | upload | submission id |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {run.name} | `{run.model.model_id}` | {'yes' if run.model.trained else 'reused'} | "
                  f"{_fmt((run.model.validation or {}).get('mean'), '.4f')} | {run.upload.status} | "
                  f"{_fmt(run.upload.submission_id)} |" for run in result.models]
        lines += [f"| {f.name} | — | — | — | **FAILED** at {f.stage} | {f.message.replace('|', '/')} |"
                  for f in result.failures]
    lines += verdict_section(result)
    if result.scores is not None:
        from numerflow.tasks.numerai.live_scores import render_scores_table

        lines += ["", "## Live scores", *render_scores_table(result.scores)]
        lines += [f"- **alert**: {a['text']}" for a in result.scores.alerts]
    lines += ["", "## Links"]
    lines += [validation_report_line(run, ui_url, several=len(result.models) > 1) for run in result.models]
    if ui_url and flow_run_id:
        lines.append(f"- this run in the Prefect UI: {ui_url}/runs/flow-run/{flow_run_id}")
    return "\n".join(lines) + "\n"


def data_lines(result: RoundResult, first: ModelRun | None) -> list[str]:
    """Classic: Numerai's data version and live rows. Signals/Crypto: the universe's coverage and the ingest ledger."""
    held = (f"; submission holds {first.submission.rows} rows (live date {first.live.live_date})" if first
            else "; no submission (every model failed)")
    if result.prices is None:
        era = result.data.validation_last_era if result.data is not None else None
        validation = f"; validation data to era {era}" if era else ""
        return ["## Data", f"- {result.universe.dataset}: {result.universe.tickers} live rows{validation}{held}"]
    prices = result.prices
    summary = prices.as_dict()
    return [
        "## Universe coverage",
        f"- {coverage_line(prices.coverage or {})}{held}",
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
    ]


def validation_report_line(run: ModelRun, ui_url: str | None, *, several: bool) -> str:
    """The validation report as a link to its artifact in the Prefect UI (its file path without a UI).
    A reused model's report is the artifact of the run that trained it: the key's page lists it."""
    who = f" of {run.name}" if several else ""
    report = run.model.report
    if report is None:
        where = f" ([validation-report artifacts]({ui_url}/artifacts/key/validation-report))" if ui_url else ""
        return f"- validation report{who}: unchanged model `{run.model.model_id}`, reported when it was trained{where}"
    if ui_url and report.artifact_id:
        return f"- validation report{who}: [artifact]({ui_url}/artifacts/artifact/{report.artifact_id}) (`{report.markdown}`)"
    return f"- validation report{who}: `{report.markdown}`"


def model_lines(run: ModelRun, *, alpha: bool, mmc: bool = False) -> list[str]:
    """The first model's validation diagnostics (``alpha``: Signals' ALPHA line; ``mmc``: Crypto's MMC
    line, Crypto has no ALPHA) and submission."""
    model, submission, upload = run.model, run.submission, run.upload
    corr = model.validation or {}
    lines = [
        "",
        "## Model and validation diagnostics",
        f"- model `{model.model_id}` ({'trained this run' if model.trained else 'reused'}): {model.decision}",
        f"- validation CORR per {'era' if 'n_eras' in corr else 'date'}: mean {_fmt(corr.get('mean'), '.4f')}, "
        f"std {_fmt(corr.get('std'), '.4f')}, sharpe {_fmt(corr.get('sharpe'), '.2f')}, max drawdown "
        f"{_fmt(corr.get('max_drawdown'), '.4f')}, positive {_fmt(corr.get('positive_share'), '.0%')} over "
        f"{_fmt(corr.get('n_eras', corr.get('n_dates')))} eras",
    ]
    if model.neutralization:
        from numerflow.tasks.round.summary import neutralization_line

        lines.append(f"- neutralised: {neutralization_line(model.neutralization, model.alpha, corr)}")
    if alpha:
        lines.append("- validation ALPHA per weekly era: "
                     + (f"mean {_fmt(model.alpha.get('mean'), '.5f')}, sharpe {_fmt(model.alpha.get('sharpe'), '.2f')}, "
                        f"positive {_fmt(model.alpha.get('positive_share'), '.0%')} over "
                        f"{_fmt(model.alpha.get('n_eras'))} eras" if model.alpha
                        else "not scored (no neutralizer for the validation dates)")
                     + "; MPC cannot be computed locally")
    if mmc:
        lines.append("- validation MMC per weekly era: "
                     + (f"mean {_fmt(model.mmc.get('mean'), '.5f')}, sharpe {_fmt(model.mmc.get('sharpe'), '.2f')}, "
                        f"positive {_fmt(model.mmc.get('positive_share'), '.0%')} over "
                        f"{_fmt(model.mmc.get('n_eras'))} eras" if model.mmc
                        else "not scored (no Crypto meta model for the validation dates)"))
    lines += [
        "",
        "## Submission",
        f"- status: **{upload.status}** — {upload.message}",
        f"- file `{submission.path}` ({submission.rows} rows, sha256 `{submission.sha256[:16]}`)",
        f"- {submission.checks.get('churn') or 'churn not checked'}",
        *([f"- {submission.checks['neutral_churn']}"] if submission.checks.get("neutral_churn") else []),
        *([f"- **{submission.checks['neutral_churn_warning']}**"] if submission.checks.get("neutral_churn_warning")
          else []),
    ]
    if upload.submission_id:
        lines.append(f"- Numerai submission id `{upload.submission_id}`")
    return lines


def verdict_section(result: RoundResult) -> list[str]:
    """Numerai's verdict per model: the payout preview of the round's configuration, and (when
    ``numerai.upload_diagnostics`` is on) the diagnostics with the local-vs-Numerai agreement table."""
    from numerflow.tasks.round.verdict import diagnostics_line

    runs = [run for run in result.models if run.submission.checks.get("payout") or run.diagnostics is not None]
    if not runs:
        return []
    lines = ["", "## Numerai's verdict"]
    if result.payout is not None:
        from numerflow.tasks.numerai.payout import payout_config_text

        lines.append(f"- this round: {payout_config_text(result.payout)}")
    for run in runs:
        who = f"{run.name}: " if len(result.models) > 1 else ""
        if run.submission.checks.get("payout"):
            lines.append(f"- {who}{run.submission.checks['payout']}")
        if run.diagnostics is None:
            continue
        lines.append(f"- {who}diagnostics {diagnostics_line(run.diagnostics)}")
        if run.diagnostics.agreement:
            lines += ["", "| score | eras | numerflow mean | Numerai mean | difference | numerflow sharpe | "
                      "Numerai sharpe | agreement |", "|---|---|---|---|---|---|---|---|"]
            lines += [f"| {row['score']} | {row['eras']} | {_fmt(row['local_mean'], '+.4f')} | "
                      f"{_fmt(row['numerai_mean'], '+.4f')} | {_fmt(row['difference'], '+.4f')} | "
                      f"{_fmt(row['local_sharpe'], '.2f')} | {_fmt(row['numerai_sharpe'], '.2f')} | "
                      f"{'**CHECK**: local and Numerai scoring disagree' if row['flagged'] else 'ok'} |"
                      for row in run.diagnostics.agreement]
            lines.append("")
    return lines
