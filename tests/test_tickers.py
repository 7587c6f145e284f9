import pandas as pd
import pytest

from numerflow.tasks.core.errors import BadInputError
from numerflow.tasks.prices.tickers import (
    COUNTRY_SUFFIXES,
    candidate_map,
    load_overrides,
    resolution_report,
    resolve_universe,
    yahoo_candidates,
)

# Real-world listings: numerai_ticker → the Yahoo symbols to try, in order.
REAL_WORLD = [
    ("AAPL US", ["AAPL"]),
    ("BRK/B US", ["BRK-B"]),
    ("SHOP CA", ["SHOP.TO", "SHOP.V"]),
    ("RCI/B CA", ["RCI-B.TO", "RCI-B.V"]),
    ("PETR4 BR", ["PETR4.SA"]),
    ("WALMEX MX", ["WALMEX.MX", "WALMEX-1.MX"]),  # then the dashed series (LIVEPOLC-1.MX)
    ("SQM-B CL", ["SQM-B.SN"]),
    ("GGAL AR", ["GGAL.BA"]),
    ("VOD GB", ["VOD.L"]),
    ("BT/A GB", ["BT-A.L"]),
    ("RYA IE", ["RYA.IR"]),
    ("SAP DE", ["SAP.DE", "SAP.F"]),  # Xetra, then Frankfurt
    ("MC FR", ["MC.PA"]),
    ("ASML NL", ["ASML.AS"]),
    ("ABI BE", ["ABI.BR"]),
    ("ENI IT", ["ENI.MI"]),
    ("SAN ES", ["SAN.MC"]),
    ("EDP PT", ["EDP.LS"]),
    ("NESN CH", ["NESN.SW"]),
    ("OMV AT", ["OMV.VI"]),
    ("VOLV/B SE", ["VOLV-B.ST"]),
    ("EQNR NO", ["EQNR.OL"]),
    ("NOVO/B DK", ["NOVO-B.CO"]),
    ("NOKIA FI", ["NOKIA.HE"]),
    ("PKO PL", ["PKO.WA"]),
    ("OPAP GR", ["OPAP.AT"]),
    ("CEZ CZ", ["CEZ.PR"]),
    ("OTP HU", ["OTP.BD"]),
    ("THYAO TR", ["THYAO.IS"]),
    ("TEVA IL", ["TEVA.TA"]),
    ("NPN ZA", ["NPN.JO"]),
    ("2222 SA", ["2222.SR"]),
    ("QNBK QA", ["QNBK.QA"]),
    ("NBK KW", ["NBK.KW"]),
    ("COMI EG", ["COMI.CA"]),
    ("7203 JP", ["7203.T"]),
    ("1 HK", ["0001.HK"]),
    ("700 HK", ["0700.HK"]),
    ("09988 HK", ["9988.HK"]),
    ("600519 CN", ["600519.SS", "600519.SZ"]),
    ("000001 CN", ["000001.SZ", "000001.SS"]),
    ("300750 CN", ["300750.SZ", "300750.SS"]),
    ("2330 TW", ["2330.TW", "2330.TWO"]),
    ("5930 KR", ["005930.KS", "005930.KQ"]),
    ("035720 KR", ["035720.KS", "035720.KQ"]),
    ("RELIANCE IN", ["RELIANCE.NS", "RELIANCE.BO"]),
    ("500325 IN", ["500325.BO", "500325.NS"]),
    ("D05 SG", ["D05.SI"]),
    ("BHP AU", ["BHP.AX"]),
    ("FPH NZ", ["FPH.NZ"]),
    ("BBCA ID", ["BBCA.JK"]),
    ("1155 MY", ["1155.KL"]),
    ("PTT TH", ["PTT.BK"]),
    ("SM PH", ["SM.PS"]),
]


@pytest.mark.parametrize(("numerai_ticker", "expected"), REAL_WORLD)
def test_yahoo_candidates_on_real_world_listings(numerai_ticker, expected):
    # Today's numerai_ticker: ISO-2 codes (a lone GR/ID/IT/PL would also try Bloomberg's market).
    assert yahoo_candidates(numerai_ticker, convention="iso") == expected


def test_every_supported_country_has_a_real_world_example():
    covered = {ticker.rsplit(" ", 1)[1] for ticker, _ in REAL_WORLD}
    assert covered == set(COUNTRY_SUFFIXES)


@pytest.mark.parametrize("bad", ["AAPL", "AAPL ZZ", "", "aapl us", "AAPL  "])
def test_no_candidates_for_malformed_or_unknown_country(bad):
    assert yahoo_candidates(bad) == []


def test_resolve_universe_batch_equals_single_lookups_and_classifies():
    tickers = [t for t, _ in REAL_WORLD] + ["FOO ZZ"]
    table = resolve_universe(tickers)
    assert table["numerai_ticker"].tolist() == tickers
    for row in table.itertuples():
        assert row.candidates == yahoo_candidates(row.numerai_ticker, convention="iso")
    status = dict(zip(table["numerai_ticker"], table["status"], strict=True))
    assert status["AAPL US"] == "resolved"
    assert status["2330 TW"] == "ambiguous"
    assert status["FOO ZZ"] == "unresolved"
    assert pd.isna(table.set_index("numerai_ticker").loc["FOO ZZ", "yahoo_symbol"])


def test_override_wins_over_remembered_and_rules_and_remembered_goes_first():
    table = resolve_universe(
        ["2330 TW", "5930 KR", "SAP DE", "FOO ZZ"],
        overrides={"SAP DE": "SAP.F", "FOO ZZ": "FOO.XX", "5930 KR": "005930.KS"},
        remembered={"2330 TW": "2330.TWO", "5930 KR": "005930.KQ"},
    ).set_index("numerai_ticker")
    assert table.loc["2330 TW", "candidates"] == ["2330.TWO", "2330.TW"]
    assert table.loc["2330 TW", "status"] == "remembered"
    assert table.loc["5930 KR", "candidates"] == ["005930.KS"]
    assert table.loc["5930 KR", "status"] == "override"
    assert table.loc["SAP DE", "yahoo_symbol"] == "SAP.F"
    assert table.loc["FOO ZZ", "status"] == "override"


def test_duplicates_are_resolved_once():
    table = resolve_universe(["AAPL US", "AAPL US", "VOD GB"])
    assert table["numerai_ticker"].tolist() == ["AAPL US", "VOD GB"]


def test_candidate_map_leaves_out_unresolved():
    mapping = candidate_map(resolve_universe(["AAPL US", "2330 TW", "FOO ZZ"]))
    assert mapping == {"AAPL US": ["AAPL"], "2330 TW": ["2330.TW", "2330.TWO"]}


def test_resolution_report_counts_by_country_with_total():
    table = resolve_universe(
        ["AAPL US", "MSFT US", "2330 TW", "2317 TW", "FOO ZZ", "bad"],
        remembered={"2317 TW": "2317.TW"},
    )
    report = resolution_report(table).set_index("country")
    assert report.loc["US", ["resolved", "ambiguous", "unresolved"]].tolist() == [2, 0, 0]
    assert report.loc["TW", ["resolved", "ambiguous", "unresolved", "remembered"]].tolist() == [1, 1, 0, 1]
    assert report.loc["ZZ", "unresolved"] == 1
    assert report.loc["??", "unresolved"] == 1
    assert report.loc["TOTAL", ["resolved", "ambiguous", "unresolved", "total"]].tolist() == [3, 1, 2, 6]


def test_load_overrides_reads_valid_file_with_comments(tmp_path):
    path = tmp_path / "overrides.csv"
    path.write_text("# my fixes\nnumerai_ticker,yahoo_symbol\nSAP DE,SAP.F\n\n2330 TW, 2330.TWO \n")
    assert load_overrides(path) == {"SAP DE": "SAP.F", "2330 TW": "2330.TWO"}


def test_load_overrides_reports_every_bad_row_by_line_number(tmp_path):
    path = tmp_path / "overrides.csv"
    path.write_text(
        "numerai_ticker,yahoo_symbol\n"  # line 1
        "SAP DE,SAP.F\n"  # 2 ok
        "SAPDE,SAP.F\n"  # 3 malformed ticker
        "VOD GB,\n"  # 4 empty symbol
        "SAP DE,SAP.DE\n"  # 5 conflicting duplicate
        "AAPL US,AAPL,extra\n"  # 6 wrong field count
        ",X\n"  # 7 empty ticker
        "BHP AU,BHP AX\n"  # 8 symbol with a space
    )
    with pytest.raises(BadInputError) as err:
        load_overrides(path)
    message = str(err.value)
    assert message.startswith("invalid_overrides:")
    for line in (3, 4, 5, 6, 7, 8):
        assert f"line {line}:" in message
    assert "line 2:" not in message
    assert "6 bad row(s)" in message


def test_load_overrides_missing_header_and_missing_file(tmp_path):
    path = tmp_path / "overrides.csv"
    path.write_text("ticker,symbol\nSAP DE,SAP.F\n")
    with pytest.raises(BadInputError, match=r"line 1: header .* lacks \['numerai_ticker', 'yahoo_symbol'\]"):
        load_overrides(path)
    with pytest.raises(BadInputError, match="does not exist"):
        load_overrides(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- crypto


def test_crypto_symbols_resolve_to_usd_quotes_in_the_shared_table():
    from numerflow.tasks.prices.tickers import resolve_crypto_universe, resolve_for_yahoo

    table = resolve_crypto_universe(["BTC", "eth", "BTC", "BAD SYM", ""])
    assert table["numerai_ticker"].tolist() == ["BTC", "eth", "BAD SYM", ""]
    assert table["candidates"].tolist() == [["BTC-USD"], ["ETH-USD"], [], []]
    assert table["status"].tolist() == ["resolved", "resolved", "unresolved", "unresolved"]
    assert candidate_map(table) == {"BTC": ["BTC-USD"], "eth": ["ETH-USD"]}
    report = resolution_report(table).set_index("country")
    assert report.loc["CRYPTO", ["resolved", "unresolved", "total"]].tolist() == [2, 2, 4]
    assert resolve_for_yahoo(["BTC"], "crypto")["candidates"].tolist() == [["BTC-USD"]]
    assert resolve_for_yahoo(["1 HK"], "signals")["candidates"].tolist() == [["0001.HK"]]


def test_crypto_overrides_file_wins_and_is_checked_by_line(tmp_path):
    from numerflow.tasks.prices.tickers import resolve_for_yahoo

    path = tmp_path / "crypto_overrides.csv"
    path.write_text("# Yahoo disambiguates some tokens\nsymbol,yahoo_symbol\nUNI,UNI7083-USD\n")
    table = resolve_for_yahoo(["UNI", "BTC"], "crypto", path).set_index("numerai_ticker")
    assert table.loc["UNI", "candidates"] == ["UNI7083-USD"] and table.loc["UNI", "status"] == "override"
    assert table.loc["BTC", "candidates"] == ["BTC-USD"] and table.loc["BTC", "status"] == "resolved"
    # A Signals-style file for crypto names the header it expects; a bad row names its line.
    path.write_text("numerai_ticker,yahoo_symbol\nAAPL US,AAPL\n")
    with pytest.raises(BadInputError, match=r"line 1: .*expected symbol,yahoo_symbol"):
        resolve_for_yahoo(["UNI"], "crypto", path)
    path.write_text("symbol,yahoo_symbol\nUNI,\n")
    with pytest.raises(BadInputError, match=r"line 2: yahoo_symbol '' for UNI"):
        resolve_for_yahoo(["UNI"], "crypto", path)


def test_report_and_overrides_template_for_a_bloomberg_coded_universe(tmp_path):
    from numerflow.tasks.prices.tickers import resolution_lines, resolution_summary, write_overrides_template

    resolution = resolve_universe(["VOD LN", "ERICB SS", "SAP GR", "RY CN", "ODD ZZ"])
    report = resolution_report(resolution).set_index("country")
    # Counted under the markets' ISO codes (Bloomberg's GR is Germany here, CN Canada).
    assert {"GB", "SE", "DE", "CA", "ZZ"} <= set(report.index) and "LN" not in report.index
    assert report.loc["DE", "total"] == 1 and "GR" not in report.index
    summary = resolution_summary(resolution)
    assert summary["country_codes"] == "bloomberg"
    assert summary["unresolved"] == {"ODD ZZ": "no Yahoo suffix rule for country ZZ"}
    assert any(line.startswith("country codes read as Bloomberg's") for line in resolution_lines(summary))
    assert resolution_summary(resolve_universe(["VOD GB", "SAP DE"]))["country_codes"] == "iso"
    assert not any("Bloomberg" in line for line in resolution_lines(resolution_summary(resolve_universe(["VOD GB"]))))
    # The template keeps the universe's own ids; filled in, it loads and the override wins.
    template = write_overrides_template(tmp_path / "overrides.csv", summary)
    assert "ODD ZZ," in template.read_text()
    template.write_text(template.read_text().replace("ODD ZZ,", "ODD ZZ,ODD.L") + "VOD LN,VOD.L\n")
    overrides = load_overrides(template)
    assert overrides == {"ODD ZZ": "ODD.L", "VOD LN": "VOD.L"}
    forced = resolve_universe(["VOD LN", "ODD ZZ"], overrides=overrides).set_index("numerai_ticker")
    assert forced.loc["ODD ZZ", "candidates"] == ["ODD.L"] and forced.loc["ODD ZZ", "status"] == "override"
