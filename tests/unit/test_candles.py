from decimal import Decimal

import pytest

from robson.domain.candles import merge, resample
from robson.domain.market import Candle
from robson.errors import InvalidInput

MINUTE = 60_000
FIVE_MINUTES = 5 * MINUTE
FIFTEEN_MINUTES = 15 * MINUTE


def candle(minute: int, open_: str, high: str, low: str, close: str, volume: str = "1") -> Candle:
    return Candle(minute * MINUTE, Decimal(open_), Decimal(high), Decimal(low), Decimal(close), Decimal(volume))


def test_resample_takes_first_open_highest_high_lowest_low_last_close_and_summed_volume():
    five_minute = [
        candle(0, "100", "105", "99", "104", "1.5"),
        candle(5, "104", "110", "103", "108", "2.25"),
        candle(10, "108", "109", "95", "97", "0.125"),
    ]

    result = resample(five_minute, FIFTEEN_MINUTES)

    assert result == [candle(0, "100", "110", "95", "97", "3.875")]


def test_resample_leaves_a_gap_where_no_source_candle_exists():
    five_minute = [candle(0, "1", "1", "1", "1"), candle(35, "2", "2", "2", "2"), candle(40, "3", "3", "3", "3")]

    result = resample(five_minute, FIFTEEN_MINUTES)

    assert [c.open_time for c in result] == [0, 30 * MINUTE]


def test_resample_builds_a_partial_bucket_from_the_candles_that_exist():
    five_minute = [candle(20, "10", "12", "9", "11", "4")]

    result = resample(five_minute, FIFTEEN_MINUTES)

    assert result == [candle(15, "10", "12", "9", "11", "4")]


def test_resample_aligns_buckets_to_the_epoch_not_to_the_first_candle():
    five_minute = [candle(10, "1", "2", "1", "2"), candle(15, "2", "3", "2", "3"), candle(20, "3", "4", "3", "4")]

    result = resample(five_minute, FIFTEEN_MINUTES)

    assert [c.open_time for c in result] == [0, 15 * MINUTE]
    assert [c.close for c in result] == [Decimal("2"), Decimal("4")]


def test_resample_keeps_prices_exact():
    five_minute = [candle(0, "19695.87", "19720.0", "19578.96", "19607.03", "794.500517")]

    (result,) = resample(five_minute, FIFTEEN_MINUTES)

    assert str(result.high) == "19720.0"
    assert str(result.volume) == "794.500517"


def test_resample_of_nothing_is_nothing():
    assert resample([], FIFTEEN_MINUTES) == []


def test_resample_to_the_same_timeframe_changes_nothing():
    five_minute = [candle(0, "1", "2", "1", "2"), candle(5, "2", "3", "2", "3")]

    assert resample(five_minute, FIVE_MINUTES) == five_minute


def test_resample_refuses_candles_out_of_time_order():
    five_minute = [candle(5, "1", "1", "1", "1"), candle(0, "1", "1", "1", "1")]

    with pytest.raises(InvalidInput, match="time order"):
        resample(five_minute, FIFTEEN_MINUTES)


def test_resample_refuses_a_non_positive_timeframe():
    with pytest.raises(InvalidInput):
        resample([candle(0, "1", "1", "1", "1")], 0)


def test_merge_returns_the_union_oldest_first_with_the_override_winning_on_the_same_time():
    base = [candle(0, "1", "1", "1", "1"), candle(5, "2", "2", "2", "2")]
    override = [candle(10, "3", "3", "3", "3"), candle(5, "9", "9", "9", "9")]

    result = merge(base, override)

    assert [c.close for c in result] == [Decimal("1"), Decimal("9"), Decimal("3")]
