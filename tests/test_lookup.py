"""Yahoo's search for tickers no rule can spell: the REAL yfinance.Search against the fake Yahoo's
/v1/finance/search (Yahoo's JSON), exchange filter, price verification, the catalog, 429s with
Retry-After, and the resolution report / overrides template built on it."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from fakes.yahoo import FakeYahoo, make_bars, reset_yfinance

from numerflow.tasks.core.config import load_settings
from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.core.store import Store, write_json, write_parquet
from numerflow.tasks.prices import configured as prices_flow_module
from numerflow.tasks.prices.ingest import ingest_dir, looked_up_symbols
from numerflow.tasks.prices.lookup import YahooSearch, lookup_tickers, price_verifier
from numerflow.tasks.prices.ratelimit import TokenBucket
from numerflow.tasks.prices.sources.yahoo import YahooSource, retry_after_seconds
from numerflow.tasks.prices.tickers import load_overrides, write_overrides_template

TODAY = dt.date.today()
KL = {"timezone": "Asia/Kuala_Lumpur", "currency": "MYR", "exchange": "KLS"}


@pytest.fixture
def fake(tmp_path):
    reset_yfinance(tmp_path / "yf-cache")
    fake = FakeYahoo()
    recent = make_bars(TODAY - dt.timedelta(days=90), TODAY, price=4.0, seed=1)
    fake.add("5099.KL", recent, name="Allianz Malaysia Berhad", search_terms=("AAGB",), **KL)
    fake.add("AAGB", recent, name="Aagb Holdings Inc", exchange="NMS")  # same query, wrong exchange
    # Right exchange, but no bars in the verification window: never taken.
    fake.add("5098.KL", make_bars("2015-01-01", "2016-01-01", seed=2), name="Allianz Malaysia Pref",
             search_terms=("AAGB",), **KL)
    fake.add("C52.SI", recent, name="ComfortDelGro Corporation Limited", exchange="SES",
             timezone="Asia/Singapore", currency="SGD")
    fake.add("AAPL", recent, name="Apple Inc.", exchange="NMS")
    return fake


def _source(fake, limiter=None):
    return YahooSource(limiter=limiter or TokenBucket(10_000, 100), transport=fake, pause_on_429_seconds=0, workers=1)


def _lookup(fake, tickers, names=None, source=None):
    source = source or _source(fake)
    return lookup_tickers(tickers, search=YahooSearch(source.session), verify=price_verifier(source, TODAY),
                          names=names)


def test_search_by_symbol_filters_by_exchange_and_verifies_with_prices(fake):
    (result,) = _lookup(fake, ["AAGB MY"]).values()
    assert result.symbol == "5099.KL" and result.reason is None
    assert result.name == "Allianz Malaysia Berhad"
    # The US namesake is filtered out; the stale .KL hit was verified and refused, or never needed.
    assert "AAGB" not in result.tried
    (search,) = fake.search_requests()
    assert search.host == "query2.finance.yahoo.com" and search.params["q"] == "AAGB"
    assert fake.history_requests("5099.KL")  # verified by a price fetch


def test_a_hit_without_recent_prices_is_never_taken(fake):
    del fake.listings["5099.KL"]
    (result,) = _lookup(fake, ["AAGB MY"]).values()
    assert result.symbol is None and result.tried == ["5098.KL"]
    assert "no .KL equity with prices" in result.reason


def test_search_by_company_name_when_the_symbol_finds_nothing(fake):
    (result,) = _lookup(fake, ["CD SG"], names={"CD SG": "ComfortDelGro"}).values()
    assert result.symbol == "C52.SI"
    assert result.queries == ["CD", "ComfortDelGro"]


def test_a_rate_limited_search_honours_retry_after_and_stops_the_round(fake):
    clock = [0.0]
    limiter = TokenBucket(10_000, 100, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    source = _source(fake, limiter)
    fake.retry_after = 7
    fake.fail_search("429")
    results = _lookup(fake, ["AAGB MY", "CD SG"], source=source)
    assert results["AAGB MY"].transient and "429" in results["AAGB MY"].reason
    assert results["CD SG"].symbol is None and "not asked this round" in results["CD SG"].reason
    assert len(fake.search_requests()) == 1  # no yfinance retry into the limit, no second ticker
    assert source.session.retry_after_pauses == [7.0]
    assert limiter.reserve() == pytest.approx(7.0, abs=0.01)  # nobody sends before Retry-After


def test_a_malformed_search_answer_is_transient(fake):
    fake.fail_search("malformed")
    (result,) = _lookup(fake, ["AAGB MY"]).values()
    assert result.transient and result.symbol is None


def test_retry_after_header_forms():
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait
    assert retry_after_seconds("-3") == 0.0


def test_chart_429_with_retry_after_pauses_every_thread(fake):
    clock = [0.0]
    limiter = TokenBucket(10_000, 100, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    source = _source(fake, limiter)
    fake.retry_after = 4
    fake.fail("AAPL", "429", history_only=True)
    from numerflow.tasks.prices.sources.outcomes import TRANSIENT, FetchRequest

    (outcome,) = source.fetch_outcomes([FetchRequest("AAPL US", ("AAPL",), TODAY - dt.timedelta(days=10))])
    assert outcome.kind == TRANSIENT
    assert source.session.retry_after_pauses == [4.0]
    assert limiter.reserve() == pytest.approx(4.0, abs=0.01)


# ------------------------------------------------------------ the resolution stage with the search


@pytest.fixture
def live_settings(fake, tmp_path, monkeypatch):
    settings = load_settings(data_dir=str(tmp_path / "data"), price_source="yahoo")
    monkeypatch.setitem(prices_flow_module._sources, prices_flow_module.source_key(settings), _source(fake))
    tickers = ["AAPL US", "AAGB MY", "ODD ZZ", "GONE US"]
    write_parquet(Store(settings.data_dir).universe_path("signals", "round-9"),
                  pd.DataFrame({"numerai_ticker": tickers}))
    return settings


def test_resolution_looks_up_remembers_and_reports(fake, live_settings, tmp_path):
    from numerflow.tasks.round.signals import resolve_universe

    store = Store(live_settings.data_dir)
    # GONE US failed the last three ingests: needs an override (and is searched too).
    catalog = {"parts": {}, "symbols": {}, "misses": {"GONE US": {"runs": 3, "reason": "not_found: GONE: HTTP 404"}}}
    write_json(ingest_dir(store, "yahoo") / "catalog.json", catalog)

    resolution = resolve_universe(live_settings, store.universe_path("signals", "round-9"), 9)

    candidates = json.loads(open(resolution.candidates_path).read())
    assert candidates["AAGB MY"][0] == "5099.KL" and candidates["ODD ZZ"] == []
    assert looked_up_symbols(store, "yahoo") == {"AAGB MY": "5099.KL"}
    details = resolution.details
    assert details["by"] == {"rule": 2, "candidate": 0, "lookup": 1, "override": 0, "unresolved": 1}
    assert details["unresolved"]["ODD ZZ"].startswith("no Yahoo suffix rule for country ZZ; lookup: no known")
    assert details["needs_override"]["GONE US"]["line"] == "GONE US,<yahoo symbol>"
    assert details["needs_override"]["GONE US"]["runs"] == 3

    # The winner is remembered: the next resolution asks Yahoo's search nothing for it.
    searched = len(fake.search_requests())
    again = resolve_universe(live_settings, store.universe_path("signals", "round-9"), 9)
    assert again.details["by"]["lookup"] == 1
    assert "AAGB" not in [r.params["q"] for r in fake.search_requests()[searched:]]

    # The template lists what to fill in; unfilled, the loader names the empty line; filled, it loads.
    template = write_overrides_template(tmp_path / "overrides.csv", details)
    text = template.read_text()
    assert "ODD ZZ," in text and "GONE US," in text and "# needs an override" in text
    with pytest.raises(BadInputError, match="yahoo_symbol '' for GONE US is empty"):
        load_overrides(template)
    template.write_text(text.replace("ODD ZZ,", "ODD ZZ,ODD.L").replace("GONE US,", "GONE US,NEWCO"))
    assert load_overrides(template) == {"ODD ZZ": "ODD.L", "GONE US": "NEWCO"}


def test_a_bloomberg_coded_ticker_is_searched_on_its_market(fake):
    # MK is Bloomberg's Malaysia (ISO: North Macedonia, no market here): searched on Bursa (.KL).
    (result,) = _lookup(fake, ["AAGB MK"]).values()
    assert result.symbol == "5099.KL" and result.reason is None
    assert "AAGB" not in result.tried  # the US namesake is still filtered out


def test_a_colliding_code_is_searched_in_the_universes_convention(fake):
    recent = make_bars(TODAY - dt.timedelta(days=90), TODAY, price=3.0, seed=4)
    fake.add("AIBG.JK", recent, name="Another company", exchange="JKT", search_terms=("AIBG",),
             timezone="Asia/Jakarta", currency="IDR")  # the search's first hit
    fake.add("A5G.IR", recent, name="AIB Group plc", exchange="ISE", search_terms=("AIBG",),
             timezone="Europe/Dublin", currency="EUR")
    source = _source(fake)

    def lookup(convention):
        return lookup_tickers(["AIBG ID"], search=YahooSearch(source.session), verify=price_verifier(source, TODAY),
                              convention=convention)["AIBG ID"]

    # ID is Ireland in a Bloomberg-coded universe, Indonesia in an ISO-2 one: the other exchange's
    # namesake is never taken.
    irish = lookup("bloomberg")
    assert irish.symbol == "A5G.IR" and "AIBG.JK" not in irish.tried
    indonesian = lookup("iso")
    assert indonesian.symbol == "AIBG.JK" and "A5G.IR" not in indonesian.tried
