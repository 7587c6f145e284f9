"""The news-sentiment plug-in (tasks/features/news_sentiment.py) and its API client against a fake provider."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.news import FakeNewsServer, article

from numerflow.tasks.core.config import FeaturesSettings, NewsSettings
from numerflow.tasks.core.errors import BadInputError, TransientError
from numerflow.tasks.features.news_api import NewsClient, fetch_news
from numerflow.tasks.features.news_sentiment import news_sentiment, read_headlines, weekly_sentiment
from numerflow.tasks.model.plugins import PluginContext, load_sources, resolve_plugin
from numerflow.tasks.prices.ratelimit import TokenBucket

SEED_ARTICLE = {  # the shape the seed document shows
    "news_url": "", "image_url": "", "title": "A Huge Fund Bought Tesla, Apple, and Microsoft Stock. Here's What It Sold.",
    "text": "Dutch pension fund PGGM initiated a position in EV-giant Tesla, bought more Apple and Microsoft stock.",
    "source_name": "Barrons", "date": "Sun, 14 Feb 2021 07:00:00 -0500", "topics": ["paywall"],
    "sentiment": "Neutral", "type": "Article", "tickers": ["AAPL", "MSFT", "TSLA", "T"]}


def test_weekly_mean_of_vader_scores_drops_neutral_maps_tickers_and_stamps_the_week_end(tmp_path):
    articles = [
        SEED_ARTICLE,  # Neutral: dropped
        {**SEED_ARTICLE, "title": "Apple shares surge on a great, record quarter", "sentiment": "Positive",
         "date": "Mon, 15 Feb 2021 09:00:00 -0500", "tickers": ["AAPL", "MSFT"]},
        {**SEED_ARTICLE, "title": "Apple hit by a terrible lawsuit, shares plunge", "sentiment": "Negative",
         "date": "Fri, 19 Feb 2021 20:00:00 -0500", "tickers": ["AAPL"]},  # Saturday 01:00 UTC: next week
    ]
    path = tmp_path / "news.json"
    path.write_text(json.dumps({"data": articles}))
    weekly = weekly_sentiment(read_headlines(path))
    assert set(weekly["ticker"]) == {"AAPL US", "MSFT US"}  # TSLA, T only in the neutral article
    aapl = weekly[weekly["ticker"] == "AAPL US"].set_index("timestamp")["sentiment"]
    # Week ending Fri 19 Feb (UTC) is known Sat 20 Feb 00:00 UTC; the Friday-evening New York article is next week's.
    assert list(aapl.index) == [pd.Timestamp("2021-02-20"), pd.Timestamp("2021-02-27")]
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer()
    assert aapl.iloc[0] == vader.polarity_scores(articles[1]["title"])["compound"] > 0.3
    assert aapl.iloc[1] == vader.polarity_scores(articles[2]["title"])["compound"] < -0.3


def test_plugin_is_registered_and_joins_from_the_first_bar_after_the_week(tmp_path):
    assert resolve_plugin("news_sentiment") is news_sentiment
    path = tmp_path / "news.json"
    path.write_text(json.dumps([{**SEED_ARTICLE, "title": "Great results, shares soar", "sentiment": "Positive"}]))
    days = pd.bdate_range("2021-02-15", "2021-02-26")
    prices = pd.DataFrame({"ticker": ["AAPL US"] * len(days), "date": days})
    settings = FeaturesSettings(use=["own", "news_sentiment"])
    settings.news.headlines_path = path
    (source,) = load_sources(settings, prices, tmp_path, "files")
    from numerflow.tasks.model.plugins import asof_join

    values = asof_join(prices, source)["feature_news_sentiment_sentiment"]
    # Published Sun 14 Feb, week ending Fri 19 Feb: first used Mon 22 Feb, never before.
    assert values[days < "2021-02-22"].isna().all() and (values[days >= "2021-02-22"] > 0).all()


@pytest.fixture
def news_settings():
    return lambda url, **kw: NewsSettings(api_url=url, api_key="news-secret-token", requests_per_second=1000,
                                          backoff_base_seconds=0.01, timeout_seconds=0.3, **kw)


def _client(settings, sleeps=None):
    return NewsClient(settings, limiter=TokenBucket(1000, 10), sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_client_pages_until_the_last_page_and_fetch_news_is_incremental(tmp_path, news_settings):
    with FakeNewsServer({"AAPL": [article("AAPL", i) for i in range(7)], "MSFT": [article("MSFT", 0)]}) as fake:
        client = _client(news_settings(fake.url, items_per_page=3))
        assert [a["title"] for a in client.fetch_ticker("AAPL")] == [f"AAPL headline {i}" for i in range(7)]
        assert [q["page"] for q in fake.requests] == [["1"], ["2"], ["3"]]
        import datetime as dt

        now = dt.datetime(2021, 2, 20, tzinfo=dt.UTC)
        path = fetch_news(client, ["MSFT"], tmp_path, now=now)
        assert json.loads(path.read_text())["data"][0]["tickers"] == ["MSFT"]
        assert fake.requests[-1]["days"] == ["7"]
        fetch_news(client, ["MSFT"], tmp_path, now=now + dt.timedelta(days=2))
        assert fake.requests[-1]["days"] == ["3"]  # only the days since the last fetch
    # The plug-in reads the fetched files; the second fetch's overlap (MSFT's article again) counts once.
    assert len(list((tmp_path / "news" / "api").glob("2*.json"))) == 2
    assert len(read_headlines(tmp_path / "news" / "api")) == 1


def test_client_backs_off_on_429_and_timeouts_and_never_logs_the_key(news_settings, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeNewsServer({"AAPL": [article("AAPL", 0)]}) as fake:
        fake.faults = ["429", "slow", "500"]
        sleeps: list[float] = []
        client = _client(news_settings(fake.url), sleeps)
        assert len(client.fetch_ticker("AAPL")) == 1
        assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff
        assert client.requests == 4
        fake.faults = ["429"] * 4
        with pytest.raises(TransientError, match="after 4 tries") as info:
            client.fetch_ticker("AAPL")
    assert "news-secret-token" not in caplog.text + str(info.value) + repr(client)
    assert "news-secret-token" not in repr(news_settings("http://x"))


def test_garbage_json_is_bad_input_not_retried(news_settings):
    with FakeNewsServer({}) as fake:
        fake.faults = ["garbage"]
        client = _client(news_settings(fake.url))
        with pytest.raises(BadInputError, match="not JSON") as info:
            client.fetch_ticker("AAPL")
        assert len(fake.requests) == 1 and "news-secret-token" not in str(info.value)


def test_no_key_is_a_clear_error():
    with pytest.raises(BadInputError, match="NUMERFLOW_FEATURES__NEWS__API_KEY"):
        NewsClient(NewsSettings())


def test_demo_feed_is_generated_once_and_reused(tmp_path):
    from numerflow.tasks.prices.sources.demo import DemoMarket

    market = DemoMarket(tickers=30, years=1.0, signal=0.0, seed=1)
    prices = market.fetch(market.all_tickers())
    settings = FeaturesSettings()
    context = PluginContext(prices, None, {}, tmp_path, "demo-x", settings)
    out = news_sentiment(context)
    assert out.frame["ticker"].isin(prices["ticker"].astype(str)).mean() == 1.0
    assert (out.frame["timestamp"].dt.weekday == 5).all() and np.isfinite(out.frame["sentiment"]).all()
    files = list((tmp_path / "news").glob("demo-*.json"))
    assert len(files) == 1
    assert news_sentiment.fingerprint(context) == news_sentiment.fingerprint(context)  # type: ignore[attr-defined]
    other = PluginContext(prices, None, {}, tmp_path, "demo-x", FeaturesSettings(news=NewsSettings(demo_signal=0)))
    assert news_sentiment.fingerprint(other) != news_sentiment.fingerprint(context)  # type: ignore[attr-defined]


def _demo_corr(tmp_path, news_signal: float, use: list[str], tickers: int = 200, years: float = 3.0):
    """Validation CORR per date of the demo (price signal 0) with the given feature groups."""
    import datetime as dt

    from numerflow.tasks.core.config import TargetSettings, TrainingSettings
    from numerflow.tasks.core.store import Store, write_parquet
    from numerflow.tasks.model.dataset import build_dataset
    from numerflow.tasks.model.training import train_and_register
    from numerflow.tasks.prices.sources.demo import DemoMarket

    market = DemoMarket(tickers=tickers, years=years, signal=0.0, seed=5, end=dt.date(2025, 6, 27))
    store = Store(tmp_path / f"store-{news_signal}-{'-'.join(use)}")
    write_parquet(store.prices_dir("demo-news") / "part-00000.parquet", market.fetch(market.all_tickers()))
    settings = FeaturesSettings(use=use, news=NewsSettings(demo_signal=news_signal))
    info = build_dataset(store, "demo-news", TargetSettings(), settings)
    fast = TrainingSettings(num_boost_round=80, validation_fraction=0.3, num_threads=1, refit_on_all=False)
    result = train_and_register(store, Path(info.path), fast, run_id="t")
    per_date = result.metrics["per_date"]
    return info, pd.Series(per_date["corr"], dtype="float64").dropna(), result


def test_planted_news_signal_is_found_on_the_demo_and_zero_signal_adds_nothing(tmp_path):
    """The model finds the planted news signal, and so do the per-feature diagnostics: the news feature has
    the top own CORR and a clear share of the model's gain; at signal 0 its own CORR is within 3 SE of 0."""
    from numerflow.tasks.model.scoring import overlap_adjusted_sem

    news = "feature_news_sentiment_sentiment"
    info, with_news, planted = _demo_corr(tmp_path, 1.0, ["own", "news_sentiment"])
    assert news in info.feature_names
    _, own_only, _ = _demo_corr(tmp_path, 1.0, ["own"])
    _, zero_news, noise = _demo_corr(tmp_path, 0.0, ["own", "news_sentiment"])
    features = planted.metrics["features"]
    assert set(features) == set(info.feature_names)
    own_corr = {name: entry["corr"]["mean"] for name, entry in features.items()}
    assert max(own_corr, key=own_corr.get) == news, own_corr
    assert own_corr[news] > 4 * features[news]["corr"]["sem_overlap_adjusted"] > 0
    assert features[news]["importance_gain_share"] > 0.1, features[news]
    # The per-date own CORR is the feature's numerai_corr on that date (numerai-tools), not a global one.
    from numerai_tools.scoring import numerai_corr

    valid = pd.read_parquet(planted.validation_predictions)
    day = valid["date"].drop_duplicates().iloc[len(valid["date"].unique()) // 2]
    frame = pd.read_parquet(info.path, columns=["ticker", "date", news]).merge(valid[valid["date"] == day],
                                                                            on=["ticker", "date"])
    frame = frame.dropna(subset=[news, "target"])
    expected = numerai_corr(frame[[news]], frame["target"])[news]
    per_date = planted.metrics["per_date_features"]["corr"]
    got = per_date[news][per_date["date"].index(pd.Timestamp(day).date().isoformat())]
    assert abs(got - expected) < 1e-9, (got, expected)
    noise_news = noise.metrics["features"][news]["corr"]
    assert abs(noise_news["mean"]) < 3 * noise_news["sem_overlap_adjusted"], noise_news
    sem = overlap_adjusted_sem(with_news, overlap=22)
    assert with_news.mean() > 0.02 and with_news.mean() > 4 * sem, (with_news.mean(), sem)
    # Prices carry no signal here: without news (or with news at 0) the model finds nothing.
    for corr in (own_only, zero_news):
        assert abs(corr.mean()) < 3 * overlap_adjusted_sem(corr, overlap=22), corr.mean()
    assert with_news.mean() > own_only.mean() + 0.02


def test_cli_features_option_becomes_the_features_settings(tmp_path, capsys):
    from numerflow.flows.cli import _features_extra, build_parser, main
    from numerflow.tasks.core.config import load_settings

    args = build_parser().parse_args(["run", "--demo", "--features", "own,news_sentiment", "--news-signal", "0.7"])
    settings = load_settings(**_features_extra(args))
    assert settings.features.use == ["own", "news_sentiment"] and settings.features.news.demo_signal == 0.7
    assert main(["run", "--demo", "--features", "own,News-Feed", "--data-dir", str(tmp_path / "data")]) == 2
    assert "not feature group names" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_news_fetch_cli_fetches_the_universes_us_listings_incrementally_and_never_prints_the_key(
        tmp_path, monkeypatch, capsys, caplog):
    from numerflow.flows.cli import main
    from numerflow.tasks.core.store import Store
    from numerflow.tasks.numerai.universe import write_universe

    caplog.set_level(logging.DEBUG)
    store = Store(tmp_path)
    write_universe(store, "signals", "round-1", pd.DataFrame({"numerai_ticker": ["AAPL US", "MSFT US", "7203 JP"]}))
    with FakeNewsServer({"AAPL": [article("AAPL", i) for i in range(3)], "MSFT": [article("MSFT", 0)]}) as fake:
        monkeypatch.setenv("NUMERFLOW_FEATURES__NEWS__API_URL", fake.url)
        monkeypatch.setenv("NUMERFLOW_FEATURES__NEWS__API_KEY", "news-secret-token")
        monkeypatch.setenv("NUMERFLOW_FEATURES__NEWS__REQUESTS_PER_SECOND", "1000")
        assert main(["news", "fetch", "--data-dir", str(tmp_path), "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert (first["symbols"], first["articles"]) == (2, 4)  # 7203 JP is not asked for: a US-only API
        assert sorted(q["tickers"][0] for q in fake.requests) == ["AAPL", "MSFT"]
        assert {q["days"][0] for q in fake.requests} == {"7"}
        assert main(["news", "fetch", "--data-dir", str(tmp_path), "--tickers", "MSFT US"]) == 0
        assert fake.requests[-1]["tickers"] == ["MSFT"] and fake.requests[-1]["days"] == ["1"]  # since the last fetch
        out = capsys.readouterr()
    # Two files overlap (MSFT's article twice): the plug-in counts it once.
    assert len(list((tmp_path / "news" / "api").glob("2*.json"))) == 2
    assert len(read_headlines(tmp_path / "news" / "api")) == 4
    assert "news-secret-token" not in out.out + out.err + caplog.text
    assert not list((tmp_path / "news" / "api").glob(".*"))  # atomic writes: no temp files left


def test_news_stage_fetches_before_the_dataset_when_an_api_is_configured(tmp_path, prefect_harness, monkeypatch):
    from prefect import flow

    from numerflow.flows import news as news_flow
    from numerflow.flows.news import news_stage, news_wanted
    from numerflow.tasks.core.config import load_settings
    from numerflow.tasks.core.store import Store
    from numerflow.tasks.features.news_api import api_fetch_wanted
    from numerflow.tasks.numerai.universe import write_universe
    from numerflow.tasks.round.results import UniverseRef

    path = write_universe(Store(tmp_path), "signals", "round-1", pd.DataFrame({"numerai_ticker": ["AAPL US"]}))
    universe = UniverseRef("signals", "round-1", str(path), 1)
    with FakeNewsServer({"AAPL": [article("AAPL", 0), article("AAPL", 1, "Negative")]}) as fake:
        news = {"api_url": fake.url, "api_key": "news-secret-token", "requests_per_second": 1000,
                "backoff_base_seconds": 0}
        # The task's own retries (transient errors only) without their 10-90 s waits.
        monkeypatch.setattr(news_flow, "fetch_news_task", news_flow.fetch_news_task.with_options(retry_delay_seconds=0))
        settings = load_settings(data_dir=tmp_path, features={"use": ["own", "news_sentiment"], "news": news})
        assert api_fetch_wanted(settings.features)
        assert not api_fetch_wanted(settings.features.model_copy(update={"use": ["own"]}))
        assert not api_fetch_wanted(load_settings(data_dir=tmp_path, features={"use": ["own", "news_sentiment"]}).features)

        @flow
        def stage(mode: str):
            return news_stage(settings, universe) if news_wanted(settings, mode, universe) else None

        assert stage("demo") is None and not fake.requests  # the demo never calls out
        assert stage("live")["articles"] == 2
        fake.faults = ["500"] * 40  # the provider down: logged, the round goes on with what it has
        before = len(fake.requests)
        assert stage("live") is None
        assert len(fake.requests) - before == 4 * 4  # 4 tries per request, the task run 1 + 3 times (transient)
    prices = pd.DataFrame({"ticker": ["AAPL US"] * 10, "date": pd.bdate_range("2021-02-08", periods=10),
                           "adj_close": 1.0})
    loaded = load_sources(settings.features, prices, tmp_path, "yahoo")
    assert len(loaded) == 1 and len(loaded[0].frame) == 1  # the fetched week, read by the plug-in


def test_finbert_is_an_optional_extra_that_names_what_is_missing(tmp_path, monkeypatch):
    """Without the extra: the install line. With it but no weights: the missing files, no download. With
    (fake) weights and a (fake) transformers pipeline: P(positive) - P(negative) per distinct title."""
    import importlib.util
    import sys
    import types

    from numerflow.tasks.features.news_sentiment import score_titles

    titles = pd.Series(["A great, record quarter", "Terrible losses and a lawsuit", "A great, record quarter"])
    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(BadInputError, match=r"pip install 'numerflow\[finbert\]'"):
            score_titles(titles, "finbert", tmp_path)
    calls = []

    def pipeline(task, model, tokenizer, top_k, local_files_only):
        calls.append((task, model, local_files_only))
        table = {"A great, record quarter": (0.9, 0.05), "Terrible losses and a lawsuit": (0.1, 0.7)}
        return lambda texts, **kw: [[{"label": "positive", "score": table[t][0]}, {"label": "negative",
                                     "score": table[t][1]}, {"label": "neutral", "score": 0.05}] for t in texts]

    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(pipeline=pipeline))
    with pytest.raises(BadInputError, match="FinBERT weights missing: features.news.finbert_path"):
        score_titles(titles, "finbert", None)
    weights = tmp_path / "finbert"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    with pytest.raises(BadInputError, match=r"lacks model.safetensors or pytorch_model.bin. numerflow never downloads"):
        score_titles(titles, "finbert", weights)
    (weights / "model.safetensors").write_bytes(b"")
    np.testing.assert_allclose(score_titles(titles, "finbert", weights), [0.85, -0.6, 0.85])
    assert calls == [("text-classification", str(weights), True)]  # the distinct titles in one call, local only
    assert score_titles(titles)[0] > 0 > score_titles(titles)[1]  # vader stays the default
