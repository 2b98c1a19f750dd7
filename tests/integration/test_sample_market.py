"""The bundled sample market, on the real Binance candles in robson/data/market."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from robson.adapters.market.sample import SAMPLE_END, SAMPLE_START, SampleMarket
from robson.domain.candles import resample
from robson.domain.market import Candle, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.errors import InvalidInput, MarketDataError, NotFound

FIVE_MINUTES = timedelta(minutes=5)
HOUR_MS = timeframe_ms("1h")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def ms(*parts: int) -> int:
    return datetime_to_ms(at(*parts))


def bar(open_time: int, close: str, volume: str = "1") -> Candle:
    price = Decimal(close)
    return Candle(open_time, price, price, price, price, Decimal(volume))


class ImportedCandles:
    """Stands in for the store's imported candles (load_candles / candle_series)."""

    def __init__(self, series: dict[tuple[str, str], list[Candle]]) -> None:
        self.series = series

    def load(self, symbol: str, timeframe: str, end_ms: int | None, limit: int | None) -> list[Candle]:
        rows = [c for c in self.series.get((symbol, timeframe), []) if end_ms is None or c.open_time < end_ms]
        return rows[-limit:] if limit else rows

    def listed(self) -> list[tuple[str, str, int]]:
        return [(symbol, timeframe, len(rows)) for (symbol, timeframe), rows in self.series.items()]


def market_with(imported: ImportedCandles, as_of: datetime | None = None) -> SampleMarket:
    return SampleMarket(as_of=as_of, extra_candles=imported.load, imported_series=imported.listed)


# --- clock and prices ------------------------------------------------------------


def test_default_now_is_the_close_of_the_last_bundled_5m_candle():
    market = SampleMarket()

    assert market.now() == at(2021, 7, 17, 21, 10)
    assert market.candles("BTCUSDT", "5m", 1)[0].open_time + timeframe_ms("5m") == datetime_to_ms(SAMPLE_END)


def test_sample_start_is_the_first_bundled_open():
    market = SampleMarket(as_of=SAMPLE_START + FIVE_MINUTES)

    (first,) = market.candles("BTCUSDT", "5m", 10)

    assert ms_to_datetime(first.open_time) == SAMPLE_START
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("19695.87"),
        Decimal("19720.0"),
        Decimal("19578.96"),
        Decimal("19607.03"),
    )


def test_prices_keep_the_exact_text_of_the_source():
    market = SampleMarket(as_of=SAMPLE_START + FIVE_MINUTES)

    (first,) = market.candles("BTCUSDT", "5m", 1)

    assert [str(v) for v in (first.high, first.volume)] == ["19720.0", "794.500517"]


def test_last_price_by_default_is_the_last_5m_close_stamped_with_the_market_clock():
    quote = SampleMarket().last_price("BTCUSDT")

    assert quote.symbol == "BTCUSDT"
    assert quote.price == Decimal("31706.33")
    assert quote.at == at(2021, 7, 17, 21, 10)


def test_last_price_inside_a_candle_is_the_close_of_the_last_candle_closed_by_then():
    market = SampleMarket(as_of=at(2021, 7, 17, 21, 2))

    quote = market.last_price("btcusdt")

    # The 21:00 candle is still open at 21:02: nothing of it exists yet. The 20:55 candle closed at 21:00.
    assert quote.price == Decimal("31723.09")
    assert quote.at == at(2021, 7, 17, 21, 0)


def test_last_price_at_a_candle_boundary_is_the_close_of_the_candle_that_just_closed():
    market = SampleMarket(as_of=at(2021, 6, 9, 5, 45))

    quote = market.last_price("BTCUSDT")

    # The 05:40 candle closed at 05:45 at 33566.91; the 05:45 candle (close 33466.53) has not closed.
    assert quote.price == Decimal("33566.91")
    assert quote.at == at(2021, 6, 9, 5, 45)


def test_last_price_in_a_gap_is_the_close_of_the_latest_candle_before_it():
    market = SampleMarket(as_of=at(2020, 12, 21, 15, 30))  # no 5m candles from 14:10 to 18:00

    quote = market.last_price("BTCUSDT")

    # The last 5m candle before the gap (14:05) and the 1h candle of 14:00, which closed later, at 15:00.
    assert quote.price == Decimal("22646.53")
    assert quote.at == at(2020, 12, 21, 15, 0)  # the close of the candle it came from: the quote shows its age


def test_last_price_past_the_data_is_the_last_close():
    market = SampleMarket(as_of=at(2021, 9, 1))

    assert market.last_price("BTCUSDT").price == Decimal("31706.33")


def test_last_price_of_a_symbol_with_only_1h_data_is_the_close_of_the_last_closed_hour():
    inside = SampleMarket(as_of=at(2021, 7, 17, 20, 30)).last_price("ETHUSDT")
    after = SampleMarket(as_of=at(2021, 7, 17, 21, 0)).last_price("ETHUSDT")

    assert (inside.price, inside.at) == (Decimal("1908.0"), at(2021, 7, 17, 20, 0))  # the 19:00 candle
    assert (after.price, after.at) == (Decimal("1898.28"), at(2021, 7, 17, 21, 0))  # the 20:00 candle


def test_a_market_order_at_a_candle_boundary_fills_at_the_open_of_the_candle_opening_then():
    market = SampleMarket(as_of=at(2021, 6, 9, 5, 45))

    assert market.fill_price("BTCUSDT").price == Decimal("33566.91")  # the 05:45 candle's open: the next trade
    assert market.fill_price("BTCUSDT").at == at(2021, 6, 9, 5, 45)


def test_a_market_order_inside_a_candle_or_past_the_data_fills_at_the_last_price():
    inside = SampleMarket(as_of=at(2021, 6, 9, 5, 47))
    past = SampleMarket(as_of=at(2021, 9, 1))
    hourly = SampleMarket(as_of=at(2021, 7, 17, 20, 30))

    assert inside.fill_price("BTCUSDT").price == Decimal("33566.91")  # the 05:40 candle's close
    assert past.fill_price("BTCUSDT").price == Decimal("31706.33")
    assert hourly.fill_price("ETHUSDT").price == Decimal("1908.0")


def test_a_naive_as_of_is_taken_as_utc():
    market = SampleMarket(as_of=datetime(2021, 7, 17, 21, 2))

    assert market.now() == at(2021, 7, 17, 21, 2)


def test_an_as_of_before_the_data_starts_is_refused():
    with pytest.raises(MarketDataError, match="before the sample market's data.*2020-12-01 00:00 UTC"):
        SampleMarket(as_of=at(2020, 11, 30, 23, 59))


def test_constructing_the_market_reads_nothing():
    def boom(*args: object) -> list:
        raise AssertionError("read during construction")

    market = SampleMarket(extra_candles=boom, imported_series=boom)

    assert market.name == "sample"


# --- candles --------------------------------------------------------------------


def test_candles_as_of_include_only_candles_closed_by_then():
    market = SampleMarket(as_of=at(2021, 7, 17, 21, 2))

    rows = market.candles("BTCUSDT", "5m", 3)

    assert [ms_to_datetime(c.open_time) for c in rows] == [
        at(2021, 7, 17, 20, 45),
        at(2021, 7, 17, 20, 50),
        at(2021, 7, 17, 20, 55),
    ]


def test_a_candle_closing_exactly_at_as_of_counts_as_closed():
    market = SampleMarket(as_of=at(2021, 7, 17, 21, 0))

    assert market.candles("BTCUSDT", "1h", 1)[0].open_time == ms(2021, 7, 17, 20)


def test_candles_return_up_to_limit_oldest_first():
    rows = SampleMarket().candles("BTCUSDT", "15m", 100)

    assert len(rows) == 100
    assert [b.open_time - a.open_time for a, b in zip(rows, rows[1:])] == [timeframe_ms("15m")] * 99
    assert rows[-1].open_time == ms(2021, 7, 17, 20, 45)  # 21:00-21:15 has not closed at 21:10


def test_a_15m_candle_is_built_from_its_three_real_5m_candles():
    market = SampleMarket(as_of=at(2020, 12, 1, 0, 15))

    (first,) = market.candles("BTCUSDT", "15m", 5)

    # 5m rows 00:00, 00:05, 00:10 of BTCUSDT-5m.json
    assert first == Candle(
        ms(2020, 12, 1),
        Decimal("19695.87"),
        Decimal("19720.0"),
        Decimal("19505.9"),
        Decimal("19567.99"),
        Decimal("794.500517") + Decimal("710.941254") + Decimal("251.34441"),
    )


def test_30m_candles_are_resampled_from_5m():
    market = SampleMarket()

    thirty = market.candles("BTCUSDT", "30m", 4)
    five = market.candles("BTCUSDT", "5m", 30)

    assert thirty == resample([c for c in five if c.open_time >= thirty[0].open_time][:24], timeframe_ms("30m"))


def test_resampled_candles_keep_real_gaps():
    market = SampleMarket(as_of=at(2020, 12, 21, 19))

    rows = market.candles("BTCUSDT", "15m", 8)

    times = [ms_to_datetime(c.open_time) for c in rows]
    assert at(2020, 12, 21, 14, 0) in times
    assert not any(at(2020, 12, 21, 14, 15) <= t < at(2020, 12, 21, 18) for t in times)
    assert len(rows) == 8  # the window reaches back past the gap to fill the limit


def test_hourly_candles_resampled_from_5m_match_the_bundled_1h_file_except_three_known_volumes():
    market = SampleMarket()
    hourly = {c.open_time: c for c in market.candles("BTCUSDT", "1h", 10_000)}
    resampled = {c.open_time: c for c in resample(market.candles("BTCUSDT", "5m", 100_000), HOUR_MS)}

    differing = {t for t in hourly.keys() & resampled.keys() if hourly[t] != resampled[t]}

    assert hourly.keys() == resampled.keys() - {ms(2021, 7, 17, 21)}  # that hour is still open
    assert differing == {ms(2021, 4, 22, 2), ms(2021, 4, 23, 1), ms(2021, 4, 23, 2)}
    for t in differing:
        hour, derived = hourly[t], resampled[t]
        assert (hour.open, hour.high, hour.low, hour.close) == (derived.open, derived.high, derived.low, derived.close)
        assert hour.volume > derived.volume


def test_the_1h_file_has_its_six_known_gaps():
    hourly = SampleMarket().candles("ETHUSDT", "1h", 10_000)

    gaps = [ms_to_datetime(a.open_time) for a, b in zip(hourly, hourly[1:]) if b.open_time - a.open_time != HOUR_MS]

    assert len(hourly) == 5482
    assert [g.date().isoformat() for g in gaps] == [
        "2020-12-21", "2020-12-25", "2021-02-11", "2021-03-06", "2021-04-20", "2021-04-25",
    ]  # fmt: skip


def test_4h_candles_for_a_symbol_with_only_1h_data_come_from_the_1h_file():
    market = SampleMarket()

    four = market.candles("ETHUSDT", "4h", 2)

    assert [ms_to_datetime(c.open_time) for c in four] == [at(2021, 7, 17, 12), at(2021, 7, 17, 16)]
    hours = market.candles("ETHUSDT", "1h", 5)[:4]  # 16:00 to 19:00; the 20:00 one is in an open bucket
    assert [four[-1]] == resample(hours, timeframe_ms("4h"))


def test_a_timeframe_finer_than_the_data_is_refused_naming_what_exists():
    with pytest.raises(MarketDataError) as raised:
        SampleMarket().candles("ETHUSDT", "15m", 100)

    assert str(raised.value) == "ETHUSDT has no 15m candles in the sample market (available: 1h and above)"


def test_an_unknown_symbol_is_not_found_listing_the_known_ones():
    with pytest.raises(NotFound) as raised:
        SampleMarket().last_price("xyz")

    assert str(raised.value) == "unknown symbol 'XYZ' (known: BTCUSDT, ETHUSDT)"


def test_an_unknown_timeframe_is_invalid_input():
    with pytest.raises(InvalidInput, match="unknown timeframe '7m'"):
        SampleMarket().candles("BTCUSDT", "7m", 10)


def test_no_closed_candle_yet_is_a_market_data_error():
    market = SampleMarket(as_of=SAMPLE_START + timedelta(minutes=30))

    with pytest.raises(MarketDataError, match="no BTCUSDT 1h candles closed by 2020-12-01 00:30 UTC"):
        market.candles("BTCUSDT", "1h", 10)


# --- symbols --------------------------------------------------------------------


def test_symbols_are_the_bundled_ones():
    assert SampleMarket().symbols() == ["BTCUSDT", "ETHUSDT"]


def test_symbol_info_carries_the_real_2021_filters():
    info = SampleMarket().symbol_info("btcusdt")

    assert (info.symbol, info.base_asset, info.quote_asset, info.tradable) == ("BTCUSDT", "BTC", "USDT", True)
    assert (info.tick_size, info.step_size, info.min_qty) == (Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"))
    assert info.min_notional == Decimal("10")
    assert SampleMarket().symbol_info("ETHUSDT").step_size == Decimal("0.0001")


# --- imported candles -------------------------------------------------------------


def test_an_imported_candle_wins_over_the_resampled_one_at_the_same_time():
    replacement = bar(ms(2021, 7, 17, 20, 45), "40000")
    market = market_with(ImportedCandles({("BTCUSDT", "15m"): [replacement]}))

    rows = market.candles("BTCUSDT", "15m", 3)

    assert rows[-1] == replacement
    assert rows[:-1] == SampleMarket().candles("BTCUSDT", "15m", 3)[:-1]


def test_imported_candles_after_the_bundled_data_join_the_series_and_the_price():
    later = [bar(ms(2021, 7, 17, 21, 10), "32000"), bar(ms(2021, 7, 17, 21, 15), "32100")]
    market = market_with(ImportedCandles({("BTCUSDT", "5m"): later}), as_of=at(2021, 7, 17, 21, 17))

    rows = market.candles("BTCUSDT", "5m", 3)

    assert [c.close for c in rows] == [Decimal("31689.45"), Decimal("31706.33"), Decimal("32000")]
    assert rows[-1] == later[0]  # the 21:15 candle is still open at 21:17
    assert market.last_price("BTCUSDT").price == Decimal("32000")  # so its close (32100) is not known yet


def test_imported_5m_candles_feed_resampled_timeframes():
    later = [bar(ms(2021, 7, 17, 21, 10), "32000", "2"), bar(ms(2021, 7, 17, 21, 15), "32100", "3")]
    market = market_with(ImportedCandles({("BTCUSDT", "5m"): later}), as_of=at(2021, 7, 17, 21, 20))

    (last,) = market.candles("BTCUSDT", "15m", 1)

    # bundled 21:00 and 21:05 plus the imported 21:10; the 21:15 bucket has not closed
    assert last == Candle(
        ms(2021, 7, 17, 21),
        Decimal("31723.08"),
        Decimal("32000"),
        Decimal("31673.15"),
        Decimal("32000"),
        Decimal("110.868083") + Decimal("65.710159") + Decimal("2"),
    )


def test_a_symbol_known_only_from_imported_candles_works_except_for_filters():
    hours = [bar(ms(2021, 7, 17, h), str(100 + h)) for h in range(8, 20)]
    market = market_with(ImportedCandles({("SOLUSDT", "1h"): hours}))

    assert market.symbols() == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert market.candles("solusdt", "1h", 2) == hours[-2:]
    assert [c.open_time for c in market.candles("SOLUSDT", "4h", 5)] == [ms(2021, 7, 17, h) for h in (8, 12, 16)]
    assert market.last_price("SOLUSDT").price == Decimal("119")
    with pytest.raises(NotFound, match="no exchange filters for SOLUSDT"):
        market.symbol_info("SOLUSDT")


def test_an_imported_series_is_found_even_without_the_series_list():
    replacement = bar(ms(2021, 7, 17, 20, 45), "40000")
    imported = ImportedCandles({("BTCUSDT", "15m"): [replacement]})
    market = SampleMarket(extra_candles=imported.load)

    assert market.candles("BTCUSDT", "15m", 1) == [replacement]


def test_imported_candles_earlier_than_the_bundled_data_allow_an_earlier_as_of():
    imported = ImportedCandles({("BTCUSDT", "1h"): [bar(ms(2020, 11, 30, 22), "18000")]})

    market = market_with(imported, as_of=at(2020, 11, 30, 23, 30))

    assert market.candles("BTCUSDT", "1h", 5) == imported.series[("BTCUSDT", "1h")]
