"""Candlestick patterns: each one found on a textbook shape and missed by a near miss."""

from decimal import Decimal as D

import pytest

from robson.domain.market import Candle
from robson.adapters.signal_engine import (
    is_bearish_engulfing,
    is_bullish_engulfing,
    is_hammer,
    is_inverted_hammer,
    is_morning_star,
    pattern_at,
)


def bar(open_: str, high: str, low: str, close: str, open_time: int = 0) -> Candle:
    return Candle(open_time, D(open_), D(high), D(low), D(close), D("1"))


# --- hammer ------------------------------------------------------------------------------------


def test_a_long_lower_wick_under_a_small_body_with_no_upper_wick_is_a_hammer():
    assert is_hammer(bar("100", "101.2", "95", "101"))


def test_a_bearish_body_can_make_a_hammer_too():
    assert is_hammer(bar("101", "101.2", "95", "100"))


def test_a_hammer_may_sit_exactly_on_both_thresholds():
    # lower wick 2 = 2 × body 1; upper wick 1 = 10 % of the range 10 (second candle)
    assert is_hammer(bar("100", "101", "98", "101"))
    assert is_hammer(bar("100", "102", "92", "101"))


def test_a_lower_wick_just_under_twice_the_body_is_not_a_hammer():
    assert not is_hammer(bar("100", "101.1", "98.1", "101"))  # lower wick 1.9, body 1


def test_an_upper_wick_just_over_a_tenth_of_the_range_is_not_a_hammer():
    assert not is_hammer(bar("100", "101.7", "95", "101"))  # upper 0.7 > 10 % of 6.7


def test_a_dragonfly_doji_is_not_a_hammer():
    assert not is_hammer(bar("101", "101", "95", "101"))


def test_a_flat_candle_is_not_a_hammer():
    assert not is_hammer(bar("100", "100", "100", "100"))


# --- inverted hammer ---------------------------------------------------------------------------


def test_a_long_upper_wick_over_a_small_body_with_no_lower_wick_is_an_inverted_hammer():
    assert is_inverted_hammer(bar("100", "106", "99.8", "101"))


def test_an_upper_wick_just_under_twice_the_body_is_not_an_inverted_hammer():
    assert not is_inverted_hammer(bar("100", "102.9", "99.9", "101"))  # upper wick 1.9, body 1


def test_a_lower_wick_just_over_a_tenth_of_the_range_is_not_an_inverted_hammer():
    assert not is_inverted_hammer(bar("100", "106", "99.3", "101"))  # lower 0.7 > 10 % of 6.7


def test_a_hammer_is_not_an_inverted_hammer():
    assert not is_inverted_hammer(bar("100", "101.2", "95", "101"))


def test_a_gravestone_doji_is_not_an_inverted_hammer():
    assert not is_inverted_hammer(bar("100", "106", "100", "100"))


# --- engulfing ---------------------------------------------------------------------------------

BEARISH_BEFORE = bar("105", "106", "99", "100")  # body 5, from 105 down to 100
BULLISH_BEFORE = bar("100", "106", "99", "105")  # body 5, from 100 up to 105


def test_a_bullish_body_covering_the_previous_bearish_body_is_bullish_engulfing():
    assert is_bullish_engulfing(BEARISH_BEFORE, bar("100", "107", "99", "106"))


def test_a_bullish_body_only_as_large_as_the_previous_one_is_not_engulfing():
    assert not is_bullish_engulfing(BEARISH_BEFORE, bar("100", "106", "99", "105"))


def test_a_bullish_candle_opening_above_the_previous_close_is_not_engulfing():
    assert not is_bullish_engulfing(BEARISH_BEFORE, bar("101", "108", "100", "107"))


def test_a_bullish_candle_closing_under_the_previous_open_is_not_engulfing():
    assert not is_bullish_engulfing(BEARISH_BEFORE, bar("98", "105", "97", "104.9"))


def test_bullish_engulfing_needs_a_bearish_candle_before():
    assert not is_bullish_engulfing(BULLISH_BEFORE, bar("99", "107", "98", "106"))


def test_a_bearish_body_covering_the_previous_bullish_body_is_bearish_engulfing():
    assert is_bearish_engulfing(BULLISH_BEFORE, bar("105", "106", "98", "99"))


def test_a_bearish_body_only_as_large_as_the_previous_one_is_not_engulfing():
    assert not is_bearish_engulfing(BULLISH_BEFORE, bar("105", "106", "99", "100"))


def test_a_bearish_candle_opening_under_the_previous_close_is_not_engulfing():
    assert not is_bearish_engulfing(BULLISH_BEFORE, bar("104", "105", "97", "98"))


def test_a_bearish_candle_closing_above_the_previous_open_is_not_engulfing():
    assert not is_bearish_engulfing(BULLISH_BEFORE, bar("106", "107", "100", "100.1"))


def test_bearish_engulfing_needs_a_bullish_candle_before():
    assert not is_bearish_engulfing(BEARISH_BEFORE, bar("106", "107", "98", "99"))


# --- morning star ------------------------------------------------------------------------------

FIRST = bar("110", "111", "99", "100")  # bearish, body 10 of range 12
STAR = bar("100", "100.5", "98", "99")  # body 1, top of body 100 = first close
THIRD = bar("99.5", "106.5", "99", "106")  # bullish, closes above the first body's midpoint 105


def test_long_bearish_small_star_and_strong_bullish_close_is_a_morning_star():
    assert is_morning_star(FIRST, STAR, THIRD)


def test_a_third_candle_closing_exactly_at_the_first_body_midpoint_completes_the_star():
    assert is_morning_star(FIRST, STAR, bar("99.5", "106", "99", "105"))


def test_a_short_first_candle_is_not_a_morning_star():
    assert not is_morning_star(bar("110", "115", "94", "100"), STAR, THIRD)  # body 10 < 50 % of 21


def test_a_bullish_first_candle_is_not_a_morning_star():
    assert not is_morning_star(bar("100", "111", "99", "110"), STAR, THIRD)


def test_a_star_with_a_body_over_thirty_percent_of_the_first_is_not_a_morning_star():
    assert not is_morning_star(FIRST, bar("100", "100.5", "96", "96.5"), THIRD)  # body 3.5 > 3


def test_a_star_rising_above_the_first_close_is_not_a_morning_star():
    assert not is_morning_star(FIRST, bar("100", "101.5", "99", "101"), THIRD)


def test_a_third_candle_closing_under_the_first_body_midpoint_is_not_a_morning_star():
    assert not is_morning_star(FIRST, STAR, bar("99.5", "105", "99", "104.9"))


def test_a_bearish_third_candle_is_not_a_morning_star():
    assert not is_morning_star(FIRST, STAR, bar("107", "107.5", "105.5", "106"))


# --- by name over a series ---------------------------------------------------------------------


def test_pattern_at_judges_the_candles_ending_at_the_index():
    candles = [bar("120", "121", "119", "120"), FIRST, STAR, THIRD]
    assert pattern_at("morning_star", candles, -1) is True
    assert pattern_at("morning_star", candles, 2) is False


def test_pattern_at_is_unknown_without_enough_earlier_candles():
    assert pattern_at("morning_star", [STAR, THIRD], 1) is None
    assert pattern_at("bullish_engulfing", [THIRD], 0) is None


@pytest.mark.parametrize(
    ("name", "candles"),
    [
        ("hammer", [bar("100", "101.2", "95", "101")]),
        ("inverted_hammer", [bar("100", "106", "99.8", "101")]),
        ("bullish_engulfing", [BEARISH_BEFORE, bar("100", "107", "99", "106")]),
        ("bearish_engulfing", [BULLISH_BEFORE, bar("105", "106", "98", "99")]),
        ("morning_star", [FIRST, STAR, THIRD]),
    ],
)
def test_every_pattern_is_found_by_its_name(name, candles):
    assert pattern_at(name, candles, len(candles) - 1) is True
