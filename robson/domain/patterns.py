"""Candlestick patterns on closed candles (shape only, exact Decimal arithmetic).

Vocabulary: range = high − low; body = |close − open|; upper wick = high − max(open, close);
lower wick = min(open, close) − low. A candle is bullish when close > open, bearish when
close < open. Thresholds are the usual textbook ones (Nison, Bulkowski), named below:

- **hammer**: range > 0 and body > 0 (a dragonfly doji is not a hammer); lower wick ≥
  ``WICK_TO_BODY`` (2) × body; upper wick ≤ ``SHORT_WICK_OF_RANGE`` (10 %) of the range.
  Together these put the whole body in the top 40 % of the range (Nison's "real body at the
  upper end of the trading range"); a separate "top third" rule would make the 2 × rule moot.
- **inverted hammer**: the mirror: upper wick ≥ 2 × body, lower wick ≤ 10 % of the range.
- **bullish engulfing**: the previous candle is bearish, the current one bullish, its body
  covers the previous body (open ≤ previous close, close ≥ previous open) and is strictly
  larger. ≤/≥ rather than a gap: on a 24/7 market a candle opens at the previous close.
- **bearish engulfing**: the mirror (previous bullish, current bearish, open ≥ previous
  close, close ≤ previous open, strictly larger body).
- **morning star**: three candles. The first is bearish with a long body (body ≥
  ``LONG_BODY_OF_RANGE`` (50 %) of its range); the second (the star) has a small body
  (≤ ``STAR_BODY_OF_FIRST_BODY`` (30 %) of the first body) sitting at or below the first
  close (top of its body ≤ first close: no gap needed on 24/7 markets); the third is bullish
  and closes at or above ``PENETRATION_OF_FIRST_BODY`` (50 %) of the way up the first body.

Patterns judge shape, not trend: a strategy adds the trend context it wants (for example
``lt: [close, ma20]`` beside ``pattern: hammer``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from robson.domain.market import Candle

WICK_TO_BODY = Decimal("2")  # a long wick is at least twice the body
SHORT_WICK_OF_RANGE = Decimal("0.1")  # a short wick is at most 10 % of the range
LONG_BODY_OF_RANGE = Decimal("0.5")  # a long body fills at least half of its range
STAR_BODY_OF_FIRST_BODY = Decimal("0.3")  # the star's body is at most 30 % of the first body
PENETRATION_OF_FIRST_BODY = Decimal("0.5")  # the third candle closes at least halfway up the first body


def body(candle: Candle) -> Decimal:
    return abs(candle.close - candle.open)


def upper_wick(candle: Candle) -> Decimal:
    return candle.high - max(candle.open, candle.close)


def lower_wick(candle: Candle) -> Decimal:
    return min(candle.open, candle.close) - candle.low


def is_bullish(candle: Candle) -> bool:
    return candle.close > candle.open


def is_bearish(candle: Candle) -> bool:
    return candle.close < candle.open


def is_hammer(candle: Candle) -> bool:
    """Tell whether a candle is a hammer: a lower wick twice the body, almost no upper wick."""
    spread = candle.high - candle.low
    size = body(candle)
    if spread <= 0 or size <= 0:
        return False
    return lower_wick(candle) >= WICK_TO_BODY * size and upper_wick(candle) <= SHORT_WICK_OF_RANGE * spread


def is_inverted_hammer(candle: Candle) -> bool:
    """Tell whether a candle is an inverted hammer: an upper wick twice the body, almost no lower wick."""
    spread = candle.high - candle.low
    size = body(candle)
    if spread <= 0 or size <= 0:
        return False
    return upper_wick(candle) >= WICK_TO_BODY * size and lower_wick(candle) <= SHORT_WICK_OF_RANGE * spread


def is_bullish_engulfing(previous: Candle, current: Candle) -> bool:
    """Tell whether a bullish candle's body engulfs the previous bearish body."""
    return (
        is_bearish(previous)
        and is_bullish(current)
        and current.open <= previous.close
        and current.close >= previous.open
        and body(current) > body(previous)
    )


def is_bearish_engulfing(previous: Candle, current: Candle) -> bool:
    """Tell whether a bearish candle's body engulfs the previous bullish body."""
    return (
        is_bullish(previous)
        and is_bearish(current)
        and current.open >= previous.close
        and current.close <= previous.open
        and body(current) > body(previous)
    )


def is_morning_star(first: Candle, star: Candle, third: Candle) -> bool:
    """Tell whether three candles form a morning star: long bearish, small star below, bullish recovery."""
    first_body = body(first)
    first_range = first.high - first.low
    if not is_bearish(first) or first_body < LONG_BODY_OF_RANGE * first_range:
        return False
    star_is_small_and_low = (
        body(star) <= STAR_BODY_OF_FIRST_BODY * first_body and max(star.open, star.close) <= first.close
    )
    recovers = is_bullish(third) and third.close >= first.close + PENETRATION_OF_FIRST_BODY * first_body
    return star_is_small_and_low and recovers


# name → (candles the pattern spans, test on exactly those candles, oldest first)
PATTERNS: dict[str, tuple[int, Callable[..., bool]]] = {
    "hammer": (1, is_hammer),
    "inverted_hammer": (1, is_inverted_hammer),
    "bullish_engulfing": (2, is_bullish_engulfing),
    "bearish_engulfing": (2, is_bearish_engulfing),
    "morning_star": (3, is_morning_star),
}


def pattern_at(name: str, candles: Sequence[Candle], index: int) -> bool | None:
    """Tell whether the pattern ends at candles[index]; None when too few candles precede it.

    Raise KeyError for an unknown pattern name (names are checked when a strategy is parsed).
    """
    span, test = PATTERNS[name]
    position = index if index >= 0 else len(candles) + index
    if position < span - 1 or position >= len(candles):
        return None
    return test(*candles[position - span + 1 : position + 1])
