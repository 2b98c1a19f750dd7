"""Pure Decimal indicators behind the stops: true range, Wilder's ATR, SMA."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from robson.domain.indicators import average_true_range, simple_moving_average, true_range
from robson.domain.market import Candle
from robson.errors import InvalidInput, MarketDataError

# CI checks out ../shared beside the repository (/work/main and /work/shared).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def bar(high: str, low: str, close: str, open_time: int = 0) -> Candle:
    return Candle(open_time, Decimal(close), Decimal(high), Decimal(low), Decimal(close), Decimal("1"))


def load_candles(name: str) -> list[Candle]:
    rows = json.loads((SHARED_DATA / "binance" / name).read_text(), parse_float=Decimal)
    return [Candle(int(row[0]), *(Decimal(value) for value in row[1:])) for row in rows]


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# Period 3 by hand: TRs of candles 1..5 are 8, 10, 8, 24 (gap up from close 96), 28 (gap down from 118).
HAND_BARS = [
    bar("110", "100", "105"),
    bar("112", "104", "110"),  # max(8, |112−105| = 7, |104−105| = 1) = 8
    bar("111", "101", "102"),  # max(10, 1, 9) = 10
    bar("103", "95", "96"),  # max(8, 1, 7) = 8
    bar("120", "110", "118"),  # max(10, |120−96| = 24, 14) = 24
    bar("117", "90", "91"),  # max(27, 1, |90−118| = 28) = 28
]


def test_true_range_of_a_candle_without_previous_close_is_its_spread():
    assert true_range(bar("110", "100", "105"), None) == Decimal("10")


def test_true_range_includes_a_gap_up_from_the_previous_close():
    assert true_range(bar("120", "110", "118"), Decimal("96")) == Decimal("24")


def test_true_range_includes_a_gap_down_from_the_previous_close():
    assert true_range(bar("117", "90", "91"), Decimal("118")) == Decimal("28")


def test_atr_seeds_with_the_mean_of_the_first_true_ranges_then_smooths_like_wilder():
    # first ATR = (8 + 10 + 8) / 3 = 26/3; then (26/3 × 2 + 24) / 3 = 124/9; then (124/9 × 2 + 28) / 3 = 500/27
    assert abs(average_true_range(HAND_BARS[:4], 3) - Decimal(26) / 3) < Decimal("1e-24")
    assert abs(average_true_range(HAND_BARS[:5], 3) - Decimal(124) / 9) < Decimal("1e-24")
    assert abs(average_true_range(HAND_BARS, 3) - Decimal(500) / 27) < Decimal("1e-24")


def test_atr_ignores_the_first_candles_true_range():
    # TA-Lib starts at the second candle: a huge first bar must not change the seed.
    wide_first = [bar("500", "1", "105"), *HAND_BARS[1:4]]
    assert average_true_range(wide_first, 3) == average_true_range(HAND_BARS[:4], 3)


def test_atr_needs_period_plus_one_candles():
    with pytest.raises(MarketDataError, match=r"ATR\(3\) needs at least 4 candles, got 3"):
        average_true_range(HAND_BARS[:3], 3)


@pytest.mark.parametrize("period", [0, -1, True])
def test_atr_rejects_a_period_below_one(period):
    with pytest.raises(InvalidInput):
        average_true_range(HAND_BARS, period)


def test_atr_returns_a_decimal():
    assert isinstance(average_true_range(HAND_BARS, 3), Decimal)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2020-12-05 03:00", "197.497720"),  # only 7 periods of warm-up, and still within 1e-6
        ("2021-04-05 05:00", "410.445145"),
        ("2021-07-17 20:00", "256.147305"),
    ],
)
def test_atr_14_matches_the_talib_reference_on_real_btc_1h(moment, expected):
    candles = load_candles("BTCUSDT-1h.json")
    up_to = [candle for candle in candles if candle.open_time <= utc_ms(moment)]

    atr = average_true_range(up_to, 14)

    assert abs(atr / Decimal(expected) - 1) <= Decimal("1e-6")


def test_sma_is_the_mean_of_the_last_period_values():
    values = [Decimal("1"), Decimal("100"), Decimal("102"), Decimal("104")]
    assert simple_moving_average(values, 3) == Decimal("102")


def test_sma_needs_period_values():
    with pytest.raises(MarketDataError, match=r"SMA\(3\) needs at least 3 values, got 2"):
        simple_moving_average([Decimal("1"), Decimal("2")], 3)


def test_sma_rejects_a_period_below_one():
    with pytest.raises(InvalidInput):
        simple_moving_average([Decimal("1")], 0)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [("2020-12-05 03:00", "18936.189500"), ("2021-04-05 05:00", "57829.833500"), ("2021-07-17 20:00", "31560.674000")],
)
def test_sma_20_matches_the_reference_exactly_on_real_btc_1h(moment, expected):
    closes = [candle.close for candle in load_candles("BTCUSDT-1h.json") if candle.open_time <= utc_ms(moment)]

    assert simple_moving_average(closes, 20) == Decimal(expected)
