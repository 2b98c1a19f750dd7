"""The one evaluator of the scan grammar: conditions, patterns and confirmations over whole series.

`robson scan` (over the last closed candles of a symbol) and `robson backtest` (over years of
them) both judge a strategy's setups here, so a signal the scan records is exactly a signal the
backtest acts on. The grammar itself (what a strategy may say, and the rules' wording) lives in
robson.domain.conditions, the pattern thresholds in robson.domain.patterns and the signal
lifecycle in robson.domain.signals; this module evaluates them over numpy arrays.

Semantics (the domain modules document each rule):

- Values are float64: indicators as computed, prices as the exact decimals read into floats
  (comparing two prices is therefore exact). A value missing during warm-up is NaN.
- Three-valued logic: a comparison with a missing value, a crossing on the first candle or a
  division by zero is *unknown*; ``all``/``any``/``not`` follow Kleene logic and an unknown
  result never matches. Each condition evaluates to two masks: where it is true and where it
  is known.
- Patterns judge candle shapes exactly, in integers of 1e-8 (Binance's finest price step).
- Holding (a confirmation asking "does it still hold on the next close?") judges a crossing as
  a state (left still beyond right) and a pattern as formed.

Every value at index i depends only on candles 0..i: nothing here looks ahead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from robson.domain.conditions import (
    AllOf,
    AnyOf,
    Arithmetic,
    Between,
    Compare,
    Condition,
    ConfirmRule,
    Cross,
    Detection,
    Not,
    Number,
    Pattern,
    Ref,
    ScanDefinition,
    Setup,
    Term,
)
from robson.domain.market import Candle, Side, ms_to_datetime, timeframe_ms
from robson.domain.money import fmt
from robson.domain.patterns import (
    LONG_BODY_OF_RANGE,
    PATTERN_SPANS,
    PENETRATION_OF_FIRST_BODY,
    SHORT_WICK_OF_RANGE,
    STAR_BODY_OF_FIRST_BODY,
    WICK_TO_BODY,
)
from robson.domain.signals import Decision, Signal, SignalEvent, SignalStatus
from robson.errors import IllegalTransition, MarketDataError

PRICE_SERIES = ("open", "high", "low", "close", "volume")
PRICE_SCALE = 10**8  # patterns compare prices as whole multiples of 1e-8
# Outcome codes of a signal's confirmation, as bulk arrays.
WAITING, CONFIRMED, INVALIDATED, EXPIRED = 0, 1, 2, 3
EVENTS = {CONFIRMED: SignalEvent.CONFIRM, INVALIDATED: SignalEvent.INVALIDATE, EXPIRED: SignalEvent.EXPIRE}

Indicators = Callable[[Sequence[Any], Mapping[str, Any]], Mapping[str, Any]]


# --- series -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One symbol's closed candles of one timeframe as arrays, oldest first."""

    open_time: Any  # int64 epoch ms
    open: Any  # float64
    high: Any
    low: Any
    close: Any
    volume: Any

    def __len__(self) -> int:
        return len(self.open_time)

    @classmethod
    def from_candles(cls, candles: Sequence[Candle]) -> Series:
        """Build the arrays of closed candles (oldest first)."""
        def column(name: str) -> Any:
            return np.array([float(getattr(c, name)) for c in candles], dtype=np.float64)

        return cls(np.array([c.open_time for c in candles], dtype=np.int64), column("open"), column("high"),
                   column("low"), column("close"), column("volume"))

    def prices(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PRICE_SERIES}

    def slice(self, start: int, stop: int) -> Series:
        return Series(*(getattr(self, name)[start:stop] for name in ("open_time", *PRICE_SERIES)))

    def index_of(self, open_time: int) -> int | None:
        """Return the index of the candle opening at open_time, or None."""
        position = int(np.searchsorted(self.open_time, open_time))
        if position < len(self) and int(self.open_time[position]) == open_time:
            return position
        return None


VALUE_PLACES = Decimal("1e-8")   # the finest precision Binance quotes; indicator values shown to it


def _to_decimal(value: float) -> Decimal | None:
    """A float as a decimal of at most 8 places (a price or an indicator value as a trader reads it).

    The shortest decimal that reads back to the float, rounded half-even to 1e-8 without trailing
    zeros: candle prices come back exactly, averages stop at 8 places instead of float noise
    (33020.70333333, not 33020.703333333326). None when the value is missing.
    """
    number = float(value)
    if not np.isfinite(number):
        return None
    exact = Decimal(repr(number))
    if exact.as_tuple().exponent >= -8:  # type: ignore[operator]
        return exact
    rounded = exact.quantize(VALUE_PLACES)
    text = format(rounded, "f").rstrip("0").rstrip(".")
    return Decimal(text or "0")


def _scaled(values: Any) -> Any:
    """Prices as int64 multiples of 1e-8 (exact for the decimals an exchange quotes)."""
    return np.rint(np.asarray(values, dtype=np.float64) * PRICE_SCALE).astype(np.int64)


# --- patterns -----------------------------------------------------------------------------------------


def _ratio(value: Decimal) -> tuple[int, int]:
    numerator, denominator = value.as_integer_ratio()
    return numerator, denominator


def pattern_mask(name: str, series: Series) -> tuple[Any, Any]:
    """Return (true, known) masks of a candle pattern ending at each candle (robson.domain.patterns)."""
    o, h, lo, c = (_scaled(getattr(series, n)) for n in ("open", "high", "low", "close"))
    body = np.abs(c - o)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    upper, lower, spread = h - top, bottom - lo, h - lo
    bullish, bearish = c > o, c < o
    span = PATTERN_SPANS[name]
    known = np.arange(len(series)) >= span - 1

    def prev(values: Any, by: int = 1) -> Any:
        shifted = np.empty_like(values)
        shifted[:by] = values[:by]  # never read: known is False there
        shifted[by:] = values[:-by]
        return shifted

    wick_n, wick_d = _ratio(WICK_TO_BODY)
    short_n, short_d = _ratio(SHORT_WICK_OF_RANGE)
    if name in ("hammer", "inverted_hammer"):
        long_wick, short_wick = (lower, upper) if name == "hammer" else (upper, lower)
        true = ((spread > 0) & (body > 0) & (long_wick * wick_d >= wick_n * body)
                & (short_wick * short_d <= short_n * spread))
    elif name in ("bullish_engulfing", "bearish_engulfing"):
        p_o, p_c, p_body = prev(o), prev(c), prev(body)
        if name == "bullish_engulfing":
            true = prev(bearish) & bullish & (o <= p_c) & (c >= p_o) & (body > p_body)
        else:
            true = prev(bullish) & bearish & (o >= p_c) & (c <= p_o) & (body > p_body)
    else:  # morning_star: first (i − 2), star (i − 1), third (i)
        f_c, f_body, f_spread, f_bearish = prev(c, 2), prev(body, 2), prev(spread, 2), prev(bearish, 2)
        long_n, long_d = _ratio(LONG_BODY_OF_RANGE)
        star_n, star_d = _ratio(STAR_BODY_OF_FIRST_BODY)
        pen_n, pen_d = _ratio(PENETRATION_OF_FIRST_BODY)
        true = (f_bearish & (f_body * long_d >= long_n * f_spread)
                & (prev(body) * star_d <= star_n * f_body) & (prev(top) <= f_c)
                & bullish & (c * pen_d >= f_c * pen_d + pen_n * f_body))
    return true & known, known


def pattern_at(name: str, candles: Sequence[Candle], index: int) -> bool | None:
    """Tell whether the pattern ends at candles[index]; None when too few candles precede it."""
    position = index if index >= 0 else len(candles) + index
    if not 0 <= position < len(candles):
        return None
    true, known = pattern_mask(name, Series.from_candles(candles))
    return bool(true[position]) if known[position] else None


def _one(name: str, *candles: Candle) -> bool:
    return bool(pattern_at(name, candles, -1))


def is_hammer(candle: Candle) -> bool:
    return _one("hammer", candle)


def is_inverted_hammer(candle: Candle) -> bool:
    return _one("inverted_hammer", candle)


def is_bullish_engulfing(previous: Candle, current: Candle) -> bool:
    return _one("bullish_engulfing", previous, current)


def is_bearish_engulfing(previous: Candle, current: Candle) -> bool:
    return _one("bearish_engulfing", previous, current)


def is_morning_star(first: Candle, star: Candle, third: Candle) -> bool:
    return _one("morning_star", first, star, third)


# --- conditions -------------------------------------------------------------------------------------


def _shift(values: Any) -> Any:
    """The previous candle's values (NaN before the first)."""
    shifted = np.empty_like(values)
    shifted[0] = np.nan
    shifted[1:] = values[:-1]
    return shifted


class Evaluation:
    """A strategy's scan definition evaluated over one series: masks, detections and confirmations."""

    def __init__(self, definition: ScanDefinition | None, series: Series, values: Mapping[str, Any]) -> None:
        self.definition = definition
        self.series = series
        self._values = dict(values)
        self._terms: dict[tuple[str, int], Any] = {}
        self._masks: dict[tuple[int, bool], tuple[Condition, tuple[Any, Any]]] = {}
        self._patterns: dict[str, tuple[Any, Any]] = {}
        self._boosts: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.series)

    # values of terms --------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        if name in PRICE_SERIES:
            return getattr(self.series, name)
        values = self._values.get(name)
        if values is None:
            raise MarketDataError(f"no values were computed for '{name}'")
        if len(values) != len(self.series):
            raise MarketDataError(f"'{name}' has {len(values)} values for {len(self.series)} candles")
        return values

    def term(self, term: Term) -> Any:
        """Return a term's values at every candle (float64, NaN where unknown)."""
        if isinstance(term, Number):
            return np.full(len(self.series), float(term.value))
        if isinstance(term, Ref):
            return self.ref(term.name)
        key = (term.describe(), 0)
        if key not in self._terms:
            left, right = self.term(term.left), self.term(term.right)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if term.op == "add":
                    result = left + right
                elif term.op == "sub":
                    result = left - right
                elif term.op == "mul":
                    result = left * right
                else:
                    result = np.where(right != 0, left / np.where(right != 0, right, 1.0), np.nan)
            self._terms[key] = np.where(np.isfinite(result), result, np.nan)
        return self._terms[key]

    # conditions -------------------------------------------------------------------------------

    def mask(self, condition: Condition, *, holding: bool = False) -> tuple[Any, Any]:
        """Return (true, known) masks of condition at every candle."""
        key = (id(condition), holding)
        if key not in self._masks:
            self._masks[key] = (condition, self._mask(condition, holding))
        return self._masks[key][1]

    def _mask(self, condition: Condition, holding: bool) -> tuple[Any, Any]:
        if isinstance(condition, Compare):
            left, right = self.term(condition.left), self.term(condition.right)
            known = ~np.isnan(left) & ~np.isnan(right)
            with np.errstate(invalid="ignore"):
                true = {"gt": np.greater, "lt": np.less, "ge": np.greater_equal, "le": np.less_equal}[condition.op](
                    left, right)
            return true & known, known
        if isinstance(condition, Between):
            value, low, high = (self.term(t) for t in (condition.value, condition.low, condition.high))
            known = ~np.isnan(value) & ~np.isnan(low) & ~np.isnan(high)
            with np.errstate(invalid="ignore"):
                true = (low <= value) & (value <= high)
            return true & known, known
        if isinstance(condition, Cross):
            left, right = self.term(condition.left), self.term(condition.right)
            above = condition.op == "crosses_above"
            known = ~np.isnan(left) & ~np.isnan(right)
            with np.errstate(invalid="ignore"):
                now = left > right if above else left < right
            if holding:
                return now & known, known
            before_left, before_right = _shift(left), _shift(right)
            known = known & ~np.isnan(before_left) & ~np.isnan(before_right)
            with np.errstate(invalid="ignore"):
                was = before_left <= before_right if above else before_left >= before_right
            return was & now & known, known
        if isinstance(condition, AllOf | AnyOf):
            parts = [self.mask(item, holding=holding) for item in condition.items]
            trues = np.array([t for t, _ in parts])
            falses = np.array([k & ~t for t, k in parts])
            if isinstance(condition, AllOf):
                true, false = trues.all(axis=0), falses.any(axis=0)
            else:
                true, false = trues.any(axis=0), falses.all(axis=0)
            return true, true | false
        if isinstance(condition, Not):
            true, known = self.mask(condition.item, holding=holding)
            return known & ~true, known
        if isinstance(condition, Pattern):
            if holding:
                everywhere = np.ones(len(self.series), dtype=bool)
                return everywhere, everywhere
            if condition.name not in self._patterns:
                self._patterns[condition.name] = pattern_mask(condition.name, self.series)
            return self._patterns[condition.name]
        raise TypeError(f"not a condition: {condition!r}")  # pragma: no cover (the parser builds only these)

    def matched(self, condition: Condition, index: int, *, holding: bool = False) -> bool:
        return bool(self.mask(condition, holding=holding)[0][index])

    def values_at(self, condition: Condition, index: int) -> dict[str, Decimal | None]:
        """Every value condition looks at on candles[index] (name, or name[-1] for the candle before)."""
        values: dict[str, Decimal | None] = {}
        self._collect(condition, index, values)
        return values

    def _collect(self, condition: Condition, index: int, values: dict[str, Decimal | None]) -> None:
        if isinstance(condition, Compare | Cross):
            for term in (condition.left, condition.right):
                self._collect_term(term, index, 0, values)
            now_known = all(not np.isnan(self.term(t)[index]) for t in (condition.left, condition.right))
            if isinstance(condition, Cross) and index > 0 and now_known:
                for term in (condition.left, condition.right):
                    self._collect_term(term, index, 1, values)
        elif isinstance(condition, Between):
            for term in (condition.value, condition.low, condition.high):
                self._collect_term(term, index, 0, values)
        elif isinstance(condition, AllOf | AnyOf):
            for item in condition.items:
                self._collect(item, index, values)
        elif isinstance(condition, Not):
            self._collect(condition.item, index, values)
        elif isinstance(condition, Pattern):
            for name in ("open", "high", "low", "close"):
                values[name] = _to_decimal(getattr(self.series, name)[index])

    def _collect_term(self, term: Term, index: int, offset: int, values: dict[str, Decimal | None]) -> None:
        position = index - offset
        if position < 0 or isinstance(term, Number):
            return
        label = term.describe() if offset == 0 else f"{term.describe()}[-{offset}]"
        if isinstance(term, Arithmetic):
            self._collect_term(term.left, index, offset, values)
            self._collect_term(term.right, index, offset, values)
        values[label] = _to_decimal(self.term(term)[position])

    # setups -----------------------------------------------------------------------------------

    def setup_mask(self, setup: Setup) -> Any:
        """Where the setup is detected (its condition true)."""
        return self.mask(setup.when)[0]

    def boosts_held(self, setup: Setup) -> Any:
        """How many of the setup's confidence boosts hold at every candle."""
        if setup.name not in self._boosts:
            held = np.zeros(len(self.series), dtype=np.int64)
            for boost in setup.boosts:
                held += self.mask(boost)[0]
            self._boosts[setup.name] = held
        return self._boosts[setup.name]

    def detection(self, setup: Setup, index: int) -> Detection | None:
        """Return the setup's Detection at candles[index], or None when it does not hold there."""
        position = index if index >= 0 else len(self.series) + index
        if not 0 <= position < len(self.series):
            raise MarketDataError(f"candle index {index} is outside the {len(self.series)} candles given")
        if not self.setup_mask(setup)[position]:
            return None
        values = self.values_at(setup.when, position)
        held = []
        for boost in setup.boosts:
            values.update(self.values_at(boost, position))
            if self.matched(boost, position):
                held.append(boost.describe())
        reason = setup.when.describe()
        if setup.boosts:
            reason += f"; boosts {len(held)}/{len(setup.boosts)}" + (f": {', '.join(held)}" if held else "")
        return Detection(setup=setup.name, side=setup.side, candle_open_time=int(self.series.open_time[position]),
                         confidence=setup.confidence(len(held)), values=values, reason=reason)

    def outcomes(self, setup: Setup, indices: Any) -> tuple[Any, Any]:
        """Return, for signals on candles[indices], (outcome code, index of the deciding candle or −1).

        Codes: WAITING (not decided by the last candle), CONFIRMED, INVALIDATED, EXPIRED. With
        confirm none the signal candle itself confirms.
        """
        indices = np.asarray(indices, dtype=np.int64)
        codes = np.full(len(indices), WAITING, dtype=np.int8)
        at = np.full(len(indices), -1, dtype=np.int64)
        last = len(self.series) - 1
        if setup.confirm is ConfirmRule.NONE:
            return np.full(len(indices), CONFIRMED, dtype=np.int8), indices.copy()
        if setup.confirm is ConfirmRule.CONDITION_HOLDS:
            holds = self.mask(setup.confirm_condition, holding=True)[0]
            ready = indices + 1 <= last
            nxt = np.minimum(indices + 1, last)
            codes[ready] = np.where(holds[nxt[ready]], CONFIRMED, INVALIDATED)
            at[ready] = indices[ready] + 1
            return codes, at
        buy = setup.side is Side.BUY
        high, low, close = self.series.high, self.series.low, self.series.close
        for step in range(1, setup.window + 1):
            later = indices + step
            open_ = (codes == WAITING) & (later <= last)
            if not open_.any():
                break
            idx = np.minimum(later, last)
            above = close[idx] > high[indices]
            below = close[idx] < low[indices]
            confirm = open_ & (above if buy else below)
            invalidate = open_ & (below if buy else above)
            codes[confirm], at[confirm] = CONFIRMED, later[confirm]
            codes[invalidate], at[invalidate] = INVALIDATED, later[invalidate]
        expire = (codes == WAITING) & (indices + setup.window <= last)
        codes[expire], at[expire] = EXPIRED, indices[expire] + setup.window
        return codes, at

    def timeline(self, setup: Setup) -> list[tuple[int, int, int, int]]:
        """Every detection of the setup as (candle index, outcome code, deciding index or −1, boosts held)."""
        indices = np.flatnonzero(self.setup_mask(setup))
        codes, at = self.outcomes(setup, indices)
        held = self.boosts_held(setup)[indices]
        return list(zip(indices.tolist(), codes.tolist(), at.tolist(), held.tolist(), strict=True))

    def decide(self, signal: Signal, setup: Setup) -> Decision:
        """Decide a DETECTED signal from the candles closed after its own (see decide_in)."""
        return decide_in(signal, setup, self)

    def decision(self, setup: Setup, index: int) -> Decision:
        """Return the decision on a signal at candles[index] from the candles closed since, with reason and values."""
        codes, at = self.outcomes(setup, [index])
        code, decided = int(codes[0]), int(at[0])
        if code == WAITING:
            closed_after = len(self.series) - 1 - index
            return Decision(None, f"waiting: {closed_after} of {setup.window} candles closed")
        if code == EXPIRED:
            return Decision(SignalEvent.EXPIRE, f"not confirmed within {_candles(setup.window)}")
        when = int(self.series.open_time[decided])
        if setup.confirm is ConfirmRule.NONE:
            return Decision(SignalEvent.CONFIRM, "no confirmation asked: entered on the next open", when)
        if setup.confirm is ConfirmRule.CONDITION_HOLDS:
            condition = setup.confirm_condition
            verdict = "still holds" if code == CONFIRMED else "no longer holds"
            return Decision(EVENTS[code], f"{condition.describe()} {verdict} on the next close", when,
                            self.values_at(_holding(condition), decided))
        close = _to_decimal(self.series.close[decided])
        high, low = _to_decimal(self.series.high[index]), _to_decimal(self.series.low[index])
        if close is not None and high is not None and close > high:
            return Decision(EVENTS[code], f"close {fmt(close)} above the signal high {fmt(high)}", when,
                            {"close": close, "signal_high": high})
        return Decision(EVENTS[code], f"close {fmt(close)} below the signal low {fmt(low)}", when,
                        {"close": close, "signal_low": low})


def _holding(condition: Condition) -> Condition:
    """The condition as a confirmation reads it: a crossing's values on the deciding candle only."""
    if isinstance(condition, Cross):
        return Compare("gt" if condition.op == "crosses_above" else "lt", condition.left, condition.right)
    if isinstance(condition, AllOf | AnyOf):
        return type(condition)(tuple(_holding(item) for item in condition.items))
    if isinstance(condition, Not):
        return Not(_holding(condition.item))
    if isinstance(condition, Pattern):
        return AllOf(())  # a formed pattern still holds: nothing to look at
    return condition


def _candles(count: int) -> str:
    return f"{count} closed candle{'s' if count != 1 else ''}"


# --- the engine the scan and the backtest are given ----------------------------------------------------


class SignalEngine:
    """Computes a definition's indicators over a series and evaluates its setups (the SignalEngine port)."""

    def __init__(self, indicators: Indicators | None = None) -> None:
        if indicators is None:
            from robson.adapters.indicators import indicator_arrays

            indicators = indicator_arrays
        self._indicators = indicators

    def evaluate(self, definition: ScanDefinition, series: Series | Sequence[Candle]) -> Evaluation:
        """Return the definition evaluated over series (arrays, or closed candles oldest first)."""
        if not isinstance(series, Series):
            series = Series.from_candles(series)
        if len(series) == 0:
            raise MarketDataError("cannot evaluate a condition without candles")
        values = self._indicators(definition.indicators, series.prices())
        return Evaluation(definition, series, values)


# --- list-based helpers (one candle at a time), over the same evaluator -----------------------------


def _with_series(series: Mapping[str, Sequence[Any]], candles: Sequence[Candle]) -> Evaluation:
    if not candles:
        raise MarketDataError("cannot evaluate a condition without candles")
    values = {name: np.array([_number(v) for v in items], dtype=np.float64) for name, items in series.items()}
    return Evaluation(None, Series.from_candles(candles), values)


def _number(value: Any) -> float:
    """An indicator value as a float, NaN when missing; raise MarketDataError for what is not a number."""
    if value is None or isinstance(value, bool):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MarketDataError(f"an indicator value is not a number: {value!r}") from None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a condition held at a candle, and every value it looked at (None during warm-up)."""

    matched: bool
    values: dict[str, Decimal | None]


def evaluate(condition: Condition, series: Mapping[str, Sequence[Any]], candles: Sequence[Candle], index: int = -1,
             *, holding: bool = False) -> Verdict:
    """Evaluate condition at candles[index]; series maps indicator outputs to values aligned with candles.

    Raise MarketDataError when a referenced series is missing or misaligned, or index is outside.
    """
    evaluation = _with_series(series, candles)
    position = index if index >= 0 else len(candles) + index
    if not 0 <= position < len(candles):
        raise MarketDataError(f"candle index {index} is outside the {len(candles)} candles given")
    matched = evaluation.matched(condition, position, holding=holding)
    shown = _holding(condition) if holding else condition
    return Verdict(matched, evaluation.values_at(shown, position))


def detect(setup: Setup, series: Mapping[str, Sequence[Any]], candles: Sequence[Candle],
           index: int = -1) -> Detection | None:
    """Return a Detection when setup.when holds at candles[index], else None; raise MarketDataError."""
    return _with_series(series, candles).detection(setup, index)


def decide(signal: Signal, setup: Setup, candles: Sequence[Candle], series: Mapping[str, Sequence[Any]]) -> Decision:
    """Decide a DETECTED signal from the closed candles after its own; raise IllegalTransition or MarketDataError."""
    return decide_in(signal, setup, _with_series(series, candles))


def decide_in(signal: Signal, setup: Setup, evaluation: Evaluation) -> Decision:
    """Decide a DETECTED signal over an evaluation of the closed candles including its own.

    Raise IllegalTransition for a signal that is not DETECTED, MarketDataError when its candle is
    missing yet its window has not passed (it expires once the window has).
    """
    if signal.status is not SignalStatus.DETECTED:
        raise IllegalTransition(f"signal {signal.id} is {signal.status.value}: only a DETECTED signal is decided")
    position = evaluation.series.index_of(signal.candle_open_time)
    if position is None:
        length = timeframe_ms(signal.timeframe)
        times = evaluation.series.open_time
        elapsed = (int(times[-1]) - signal.candle_open_time) // length if len(times) else 0
        if elapsed >= setup.window:
            return Decision(SignalEvent.EXPIRE,
                            f"not confirmed within {_candles(setup.window)} (signal candle no longer in the data)")
        when = ms_to_datetime(signal.candle_open_time).strftime("%Y-%m-%d %H:%M")
        raise MarketDataError(f"the signal candle ({when} UTC) of {signal.id} is not among the candles given")
    return evaluation.decision(setup, position)
