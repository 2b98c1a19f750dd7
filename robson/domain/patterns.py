"""Candlestick patterns on closed candles (shape only): the rules and their thresholds.

robson.adapters.signal_engine evaluates them over whole series, exactly (prices in whole
multiples of 1e-8), for the scan and the backtest alike.

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

from decimal import Decimal

WICK_TO_BODY = Decimal("2")  # a long wick is at least twice the body
SHORT_WICK_OF_RANGE = Decimal("0.1")  # a short wick is at most 10 % of the range
LONG_BODY_OF_RANGE = Decimal("0.5")  # a long body fills at least half of its range
STAR_BODY_OF_FIRST_BODY = Decimal("0.3")  # the star's body is at most 30 % of the first body
PENETRATION_OF_FIRST_BODY = Decimal("0.5")  # the third candle closes at least halfway up the first body

# name → how many candles the pattern spans (it ends at the candle it is found on)
PATTERN_SPANS: dict[str, int] = {
    "hammer": 1,
    "inverted_hammer": 1,
    "bullish_engulfing": 2,
    "bearish_engulfing": 2,
    "morning_star": 3,
}
PATTERNS = tuple(PATTERN_SPANS)
