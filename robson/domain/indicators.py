"""Exact indicators the domain needs for stops: true range, Wilder's ATR, simple moving average.

Pure Decimal arithmetic over closed candles (oldest first), no pandas: the scan's pandas-ta
indicators live elsewhere; these are the few numbers a stop price depends on.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from robson.domain.market import Candle
from robson.errors import InvalidInput, MarketDataError


def true_range(candle: Candle, previous_close: Decimal | None) -> Decimal:
    """Return max(high − low, |high − previous close|, |low − previous close|)."""
    spread = candle.high - candle.low
    if previous_close is None:
        return spread
    return max(spread, abs(candle.high - previous_close), abs(candle.low - previous_close))


def average_true_range(candles: Sequence[Candle], period: int) -> Decimal:
    """Return Wilder's ATR at the last candle, as TA-Lib computes it.

    The first candle has no previous close, so its true range is not used (as in TA-Lib):
    the first ATR is the mean of the true ranges of candles 1..period, then each later
    candle smooths it as (previous ATR × (period − 1) + TR) / period. Needs period + 1
    candles; raise InvalidInput for a period below 1, MarketDataError for too few candles.
    """
    _check_period(period, "ATR")
    if len(candles) < period + 1:
        raise MarketDataError(f"ATR({period}) needs at least {period + 1} candles, got {len(candles)}")
    ranges = [true_range(candle, previous.close) for previous, candle in zip(candles, candles[1:])]
    atr = sum(ranges[:period], Decimal(0)) / period
    for value in ranges[period:]:
        atr = (atr * (period - 1) + value) / period
    return atr


def simple_moving_average(values: Sequence[Decimal], period: int) -> Decimal:
    """Return the mean of the last period values; raise MarketDataError if there are fewer."""
    _check_period(period, "SMA")
    if len(values) < period:
        raise MarketDataError(f"SMA({period}) needs at least {period} values, got {len(values)}")
    return sum(values[-period:], Decimal(0)) / period


def _check_period(period: int, name: str) -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise InvalidInput(f"{name} period must be a whole number of at least 1, got {period!r}")
