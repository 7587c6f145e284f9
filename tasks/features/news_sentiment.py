"""The news-sentiment feature plug-in: headlines per ticker → VADER sentiment → weekly mean per ticker.

Headlines come in the Stock News API's JSON shape (a list of articles, or ``{"data": [...]}``), each
with ``title``, ``text``, ``date`` (RFC 2822 with its UTC offset, e.g. "Sun, 14 Feb 2021 07:00:00
-0500"), ``tickers`` (provider symbols: "AAPL"), ``source_name`` and the provider's own
``sentiment`` label ("Positive", "Neutral", "Negative"). As in the walk-through this follows:
articles the provider calls Neutral are dropped, every title is scored (VADER's compound score in
[-1, 1]; its lexicon ships in the vaderSentiment package, no download), the article counts for each
of its tickers, and scores are averaged per ticker and week (weeks end Friday, UTC). A week's mean is
known when the week is over, so it is stamped Saturday 00:00 UTC: the point-in-time join first uses it
on the next bar (Monday).

Where the headlines come from (first that applies): the ``path`` option or
``features.news.headlines_path``; the news API cache ``<data_dir>/news/api`` (tasks/features/news_api.py
fills it); in a demo round, a synthetic feed for the demo market (``synthetic_news``) whose sentiment
carries a planted signal of strength ``features.news.demo_signal``.

``features.news.sentiment_model = "finbert"`` scores titles with FinBERT instead (the ``finbert`` extra,
weights from ``features.news.finbert_path``, never downloaded); VADER stays the default.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import file_sha256, write_json
from numerflow.tasks.model.plugins import Availability, PluginContext, PluginOutput, day_month_as_iso

AVAILABILITY = Availability(timezone="UTC", lag_hours=0.0, max_age_days=14.0)
FEED_VERSION = "1"


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score_titles(titles: pd.Series, model: str = "vader", finbert_path: Path | None = None) -> np.ndarray:
    """Sentiment of each title in [-1, 1]: VADER's compound score (default), or with ``model="finbert"``
    FinBERT's P(positive) − P(negative). Each distinct text is scored once."""
    codes, unique = pd.factorize(titles.fillna("").astype(str))
    if not len(unique):
        return np.empty(0)
    if model == "finbert":
        return finbert_scores(list(unique), finbert_path)[codes]
    analyzer = _analyzer()
    scores = np.array([analyzer.polarity_scores(text)["compound"] for text in unique], dtype="float64")
    return scores[codes]


FINBERT_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def finbert_scores(texts: list[str], path: Path | None, batch_size: int = 32) -> np.ndarray:
    """FinBERT (the ``finbert`` extra) on ``texts``: P(positive) − P(negative) per text, from local weights
    only. A clear error when transformers is not installed or the weights are not in ``path``."""
    try:
        import transformers
    except ImportError:
        raise BadInputError("features.news.sentiment_model = \"finbert\" needs the finbert extra: pip install "
                            "'numerflow[finbert]' (transformers, torch); or use the default, vader",
                            tag="invalid_config") from None
    folder = Path(path) if path is not None else None
    missing = [] if folder is not None and folder.is_dir() else ["the folder itself"]
    if folder is not None and folder.is_dir():
        if not (folder / "config.json").is_file():
            missing.append("config.json")
        if not any((folder / name).is_file() for name in FINBERT_WEIGHTS):
            missing.append(" or ".join(FINBERT_WEIGHTS))
    if missing:
        where = str(folder) if folder is not None else "features.news.finbert_path (not set)"
        raise BadInputError(f"FinBERT weights missing: {where} lacks {', '.join(missing)}. numerflow never downloads "
                            "them: fetch ProsusAI/finbert from Hugging Face where there is network, copy the folder "
                            "here and set features.news.finbert_path; or use sentiment_model = \"vader\"",
                            tag="invalid_config")
    assert folder is not None
    classify = transformers.pipeline("text-classification", model=str(folder), tokenizer=str(folder), top_k=None,
                                     local_files_only=True)
    scores = np.empty(len(texts))
    for i, labels in enumerate(classify(texts, batch_size=batch_size, truncation=True)):
        probability = {item["label"].lower(): float(item["score"]) for item in labels}
        scores[i] = probability.get("positive", 0.0) - probability.get("negative", 0.0)
    return scores


def headline_files(path: Path) -> list[Path]:
    path = Path(path)
    files = (sorted(p for p in path.glob("*.json") if not p.name.startswith(("_", "."))) if path.is_dir()
             else [path] if path.is_file() else [])
    if not files:
        raise BadInputError(f"no headlines JSON at {path}; set features.news.headlines_path or fetch news first",
                            tag="invalid_feature_source")
    return files


def read_headlines(path: Path) -> pd.DataFrame:
    """Articles of every JSON file at ``path``: title, date (UTC), tickers (list), sentiment label."""
    frames = []
    for file in headline_files(path):
        try:
            payload = json.loads(file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{file}: not JSON ({exc})", tag="invalid_feature_source") from None
        articles = payload.get("data", []) if isinstance(payload, dict) else payload
        frame = pd.DataFrame(articles)
        missing = [c for c in ("title", "date", "tickers") if c not in frame.columns]
        if len(frame) and missing:
            raise BadInputError(f"{file}: articles have no {missing} field", tag="invalid_feature_source")
        frames.append(frame)
    articles = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if articles.empty:
        return pd.DataFrame({"title": [], "date": pd.Series([], dtype="datetime64[ns, UTC]"), "tickers": [],
                             "sentiment": []})
    # A numeric day/month date (04/07/2025) is refused, never guessed: read the wrong way it would date a
    # headline months away from when it was published.
    text = day_month_as_iso(articles["date"].astype("string").str.strip(), f"headlines at {path}", "date", None,
                            fix="write each article's date in ISO 8601 (2025-07-04T14:30:00Z) or as the news API "
                            "does (Fri, 04 Jul 2025 10:30:00 -0400)")
    dates = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    if dates.isna().any():
        i = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise BadInputError(f"headlines at {path}: article {i + 1} has date {articles['date'].iloc[i]!r}, not a date",
                            tag="invalid_feature_source")
    articles["date"] = dates
    if "sentiment" not in articles.columns:
        articles["sentiment"] = None
    # Incremental API fetches overlap by a day: an article in two files counts once (same title, time, tickers).
    key = articles["title"].astype(str) + "\x1f" + articles["date"].astype(str) + "\x1f" + articles["tickers"].astype(str)
    return articles[~key.duplicated().to_numpy()].reset_index(drop=True)


def to_numerai_ticker(symbols: pd.Series) -> pd.Series:
    """Provider symbols are US listings ("AAPL"): "AAPL US"; a symbol that already has a country stays."""
    symbols = symbols.astype("string").str.strip().str.upper()
    return symbols.where(symbols.str.contains(" ", regex=False), symbols + " US")


def weekly_sentiment(articles: pd.DataFrame, model: str = "vader", finbert_path: Path | None = None) -> pd.DataFrame:
    """Neutral articles dropped, titles scored (``score_titles``), one row per (ticker, article), weekly mean
    per ticker: ``ticker, timestamp`` (the week's end, Saturday 00:00 UTC), ``sentiment``."""
    kept = articles[articles["sentiment"].astype("string").str.lower().fillna("") != "neutral"]
    kept = kept.assign(score=score_titles(kept["title"], model, finbert_path)).explode("tickers")
    kept = kept.dropna(subset=["tickers"])
    day = kept["date"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    week_end = day + pd.to_timedelta((4 - day.dt.weekday) % 7 + 1, unit="D")  # the Saturday after Friday
    frame = pd.DataFrame({"ticker": to_numerai_ticker(kept["tickers"]).to_numpy(), "timestamp": week_end.to_numpy(),
                          "sentiment": kept["score"].to_numpy()})
    return frame.groupby(["ticker", "timestamp"], as_index=False, sort=True)["sentiment"].mean()


# ---------------------------------------------------------------- the synthetic demo feed

_POSITIVE = ["Shares surge after record quarterly profit", "Analysts upgrade the stock, citing strong growth",
             "Company beats estimates and raises its outlook", "Investors cheer a great product launch",
             "Strong demand lifts revenue to a new high", "Board approves a generous buyback, shares rally"]
_NEGATIVE = ["Shares plunge after a profit warning", "Analysts downgrade the stock on weak demand",
             "Company misses estimates and cuts its outlook", "Regulators open a probe; investors worried",
             "Weak sales hurt margins, losses widen", "Lawsuit and recall hit the company, shares fall"]
_NEUTRAL = ["Company to present at an industry conference", "Quarterly report scheduled for next month"]


def synthetic_news(prices: pd.DataFrame, signal: float, seed: int = 7, horizon: int = 20, lag: int = 2,
                   per_week: int = 2, coverage: float = 0.8) -> list[dict]:
    """Headlines for a demo market: each Friday evening (22:00 UTC, after the New York close) ``per_week``
    articles for a ``coverage`` share of tickers. An article's tone is positive when ``signal × z + noise``
    is high, negative when low, neutral between; ``z`` is the ticker's cross-sectional standardised return
    over the ``horizon`` bars starting ``lag`` bars after the next bar (0 where that is past the panel's end).
    So ``signal = 0`` is pure noise."""
    wide = prices.pivot_table(index="date", columns="ticker", values="adj_close", observed=True).sort_index().ffill()
    log_price = np.log(wide.to_numpy())
    n_dates, n_tickers = log_price.shape
    fridays = np.flatnonzero(wide.index.weekday == 4)
    # Weeks whose future is not in the panel yet (the live end) get headlines too, their tone pure noise.
    start = np.minimum(fridays + 1 + lag, n_dates - 1)
    forward = log_price[np.minimum(start + horizon, n_dates - 1)] - log_price[start]
    forward[fridays + 1 + lag + horizon >= n_dates] = np.nan
    with np.errstate(invalid="ignore"), warnings.catch_warnings():  # weeks past the end: all NaN, z = 0 below
        warnings.simplefilter("ignore", RuntimeWarning)
        z = (forward - np.nanmean(forward, axis=1, keepdims=True)) / np.nanstd(forward, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    shape = (len(fridays), n_tickers, per_week)
    latent = signal * np.nan_to_num(z)[:, :, None] + rng.normal(size=shape)
    listed = np.isfinite(log_price[fridays])  # a ticker gets news only once it trades
    present = (rng.random(shape[:2]) < coverage)[:, :, None] & listed[:, :, None] & np.ones(shape, bool)
    tone = np.where(latent > 0.3, 1, np.where(latent < -0.3, -1, 0))
    pick = rng.integers(0, 1 << 16, size=shape)
    week, ticker, _ = np.nonzero(present)
    tone_kept, pick_kept = tone[present], pick[present]
    titles = np.where(tone_kept > 0, np.array(_POSITIVE)[pick_kept % len(_POSITIVE)],
                      np.where(tone_kept < 0, np.array(_NEGATIVE)[pick_kept % len(_NEGATIVE)],
                               np.array(_NEUTRAL)[pick_kept % len(_NEUTRAL)]))
    labels = np.array(["Negative", "Neutral", "Positive"])[tone_kept + 1]
    stamps = (wide.index[fridays[week]] + pd.Timedelta(hours=22)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    # The demo market is international: tag articles with the full "7203 JP" ticker (kept as is).
    symbols = wide.columns.to_numpy()[ticker].astype(str)
    return [{"title": t, "text": t, "date": d, "tickers": [s], "source_name": "Demo Wire", "sentiment": lab,
             "type": "Article"} for t, d, s, lab in zip(titles.tolist(), list(stamps), symbols.tolist(),
                                                        labels.tolist(), strict=True)]


# ---------------------------------------------------------------- the plug-in


def _headlines_path(context: PluginContext) -> Path | None:
    option = context.options.get("path") or context.settings.news.headlines_path
    if option:
        return Path(option)
    cache = context.data_dir / "news" / "api"
    if cache.is_dir() and any(cache.glob("*.json")):
        return cache
    return None


def _is_demo(context: PluginContext) -> bool:
    return context.price_source.startswith("demo")


def _demo_key(context: PluginContext) -> str:
    identity = {"source": context.price_source, "signal": context.settings.news.demo_signal, "v": FEED_VERSION,
                "options": {k: v for k, v in context.options.items() if k != "path"}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def news_sentiment(context: PluginContext) -> PluginOutput:
    """The plug-in: weekly mean VADER sentiment of each ticker's non-neutral headlines."""
    path = _headlines_path(context)
    if path is None:
        if not _is_demo(context):
            raise BadInputError("news_sentiment has no headlines: set features.news.headlines_path (or the path "
                                "option), or fetch them with the news API client into <data_dir>/news/api",
                                tag="invalid_feature_source")
        assert context.prices is not None
        path = context.data_dir / "news" / f"demo-{_demo_key(context)}.json"
        if not path.exists():
            opts = {k: context.options[k] for k in ("seed", "horizon", "lag", "per_week", "coverage")
                    if k in context.options}
            write_json(path, synthetic_news(context.prices, context.settings.news.demo_signal, **opts))
    news = context.settings.news
    frame = weekly_sentiment(read_headlines(path), news.sentiment_model, news.finbert_path)
    return PluginOutput(frame, AVAILABILITY)


def _fingerprint(context: PluginContext) -> str:
    news = context.settings.news
    # The scorer is part of the values (vader: no prefix, so datasets built before the option stay valid).
    scorer = "" if news.sentiment_model == "vader" else f"{news.sentiment_model}:{news.finbert_path};"
    path = _headlines_path(context)
    if path is None:
        return scorer + (f"demo:{_demo_key(context)}" if _is_demo(context) else "none")
    return scorer + ";".join(f"{p.name}:{file_sha256(p)}" for p in headline_files(path))


news_sentiment.fingerprint = _fingerprint  # type: ignore[attr-defined]
