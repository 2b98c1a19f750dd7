"""Stop placement methods (SPEC §2): technical stop with its fallbacks, MA, ATR, fixed percent.

Pure functions over closed candles (oldest first). Prices returned here are not yet on the
exchange tick: sizing rounds them away from entry.

Technical stop for a long (a short is the mirror: swing highs, resistance above entry):

1. Examine the last ``lookback`` candles.
2. A swing low is a candle whose low is strictly below the low of each of the ``swing_width``
   candles on either side, so the first and last ``swing_width`` candles are never swings, and
   two equal neighbouring lows are not swings.
3. Grouping, with tolerance = entry × ``tolerance_percent`` / 100: sort the swing lows
   ascending; the lowest opens a group; each next low joins the current group while
   (low − the group's lowest member) ≤ tolerance, else it opens a new group. So every member
   of a group lies within one tolerance of the group's lowest member.
4. A group with at least ``min_touches`` members is a level at the average of its members.
5. Keep the levels strictly below entry, nearest first; the stop is the ``level``-th of them
   minus ``buffer_percent`` % of that level.

Fallbacks, in order, each labelled with why the previous step gave no stop: the lowest low of
the last ``fallback_lookback`` candles minus the buffer (only if that low is below entry);
entry − ``atr_multiplier`` × ATR(``atr_period``) over every candle given (needs period + 1
candles, a distance above 0 and a stop above 0); entry × (1 − ``percent`` / 100).
A reference price (support, lowest low, moving average) counts only when it is strictly on
the stop side of entry; the buffer then only moves the stop further away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from robson.domain.indicators import average_true_range, simple_moving_average
from robson.domain.market import Candle, Side
from robson.domain.money import HUNDRED, fmt, parse_decimal
from robson.errors import InvalidInput

STOP_KINDS = ("technical", "moving_average", "atr", "fixed_percent")


@dataclass(frozen=True, slots=True)
class StopSettings:
    """How a strategy places its stop; defaults are SPEC §2's technical stop."""

    kind: str = "technical"
    # technical
    level: int = 2  # take the Nth support (resistance for a short), nearest first
    lookback: int = 100  # closed candles examined
    swing_width: int = 2  # candles on each side a swing low must be below
    tolerance_percent: Decimal = Decimal("0.5")  # of entry: swing lows this close form one level
    min_touches: int = 2
    buffer_percent: Decimal = Decimal("0.1")
    fallback_lookback: int = 20  # lowest low of the last N candles
    # atr (also the technical stop's second fallback)
    atr_period: int = 14
    atr_multiplier: Decimal = Decimal("1.5")
    # moving_average
    ma_period: int = 9
    # fixed_percent (also the technical stop's last fallback)
    percent: Decimal = Decimal("2")


@dataclass(frozen=True, slots=True)
class StopResult:
    """A stop price and which method produced it, labelled for the user."""

    price: Decimal
    method: str  # "technical", "moving_average", "atr", "fixed_percent", "fallback:lowest_low", ...
    label: str  # one line for humans, with the numbers
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SupportLevel:
    """A price level made of swing points that fell within the tolerance of each other."""

    price: Decimal  # average of the touches
    touches: int


_INT_SETTINGS = ("level", "lookback", "swing_width", "min_touches", "fallback_lookback", "atr_period", "ma_period")
# name: (may be 0, must stay below 100) — a percent stop of 100 % or more would reach 0.
_DECIMAL_SETTINGS = {
    "tolerance_percent": (True, False),
    "buffer_percent": (True, True),
    "atr_multiplier": (False, False),
    "percent": (False, True),
}


def compute_stop(side: Side, entry: Decimal, candles: Sequence[Candle], settings: StopSettings) -> StopResult:
    """Return the stop for a position entered at entry; raise InvalidInput on bad entry, side or settings.

    candles are closed candles of the strategy timeframe, oldest first (the caller drops the
    forming one). The technical stop looks at the last settings.lookback of them; ATR uses all
    of them (a longer history means less warm-up error).
    """
    ctx = _Context.build(side, entry, candles, settings)
    if not ctx.candles and ctx.settings.kind != "fixed_percent":
        return _fall_back(ctx, ["no candles"], {}, steps=_FALLBACK_STEPS[-1:])
    return _KINDS[ctx.settings.kind](ctx)


def find_swing_points(candles: Sequence[Candle], side: Side, width: int) -> list[Candle]:
    """Return the swing lows (swing highs for a sell), oldest first; strictly beyond each neighbour."""
    prices = [_extreme(candle, side) for candle in candles]
    swings = []
    for i in range(width, len(candles) - width):
        neighbours = prices[i - width : i] + prices[i + 1 : i + width + 1]
        if all(_beyond(prices[i], other, side) for other in neighbours):
            swings.append(candles[i])
    return swings


def group_levels(prices: Sequence[Decimal], side: Side, tolerance: Decimal) -> list[SupportLevel]:
    """Group swing prices (see the module docstring), farthest-out group first; every group kept."""
    ordered = sorted(prices, key=lambda price: price * side.sign)
    groups: list[list[Decimal]] = []
    for price in ordered:
        if groups and (price - groups[-1][0]) * side.sign <= tolerance:
            groups[-1].append(price)
        else:
            groups.append([price])
    return [SupportLevel(sum(group, Decimal(0)) / len(group), len(group)) for group in groups]


def levels_beyond_entry(
    levels: Sequence[SupportLevel], side: Side, entry: Decimal, min_touches: int
) -> list[SupportLevel]:
    """Keep levels with enough touches strictly on the stop side of entry, nearest first."""
    kept = [lvl for lvl in levels if lvl.touches >= min_touches and (entry - lvl.price) * side.sign > 0]
    return sorted(kept, key=lambda lvl: (entry - lvl.price) * side.sign)


# --- internals ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    side: Side
    entry: Decimal
    candles: tuple[Candle, ...]
    settings: StopSettings
    places: int  # decimals shown in labels, from the input prices

    @classmethod
    def build(cls, side: Side, entry: Decimal, candles: Sequence[Candle], settings: StopSettings) -> _Context:
        try:
            side = Side(side)
        except ValueError:
            raise InvalidInput(f"side must be BUY or SELL, got '{side}'") from None
        entry = parse_decimal(entry, "entry")
        settings = _checked(settings)
        candles = tuple(candles)
        recent = candles[-settings.lookback :]
        prices = [entry] + [price for candle in recent for price in (candle.low, candle.high, candle.close)]
        places = min(8, max([2] + [max(0, -int(price.as_tuple().exponent)) for price in prices]))
        return cls(side, entry, candles, settings, places)

    @property
    def buy(self) -> bool:
        return self.side is Side.BUY

    @property
    def away_sign(self) -> str:
        """The sign of a buffer in labels: minus below a long's entry, plus above a short's."""
        return "−" if self.buy else "+"

    def show(self, price: Decimal) -> str:
        return fmt(price, self.places)

    def away(self, price: Decimal, percent: Decimal) -> Decimal:
        """Move price percent % further from entry (down for a long, up for a short)."""
        return price * (1 - self.side.sign * percent / HUNDRED)

    def details(self, **extra: Any) -> dict[str, Any]:
        return {"side": self.side.value, "entry": self.entry, "candles": len(self.candles), **extra}


# A strategy's settings object is checked once per process (by identity: True == 1 must not pass as 1).
_CHECKED: dict[int, tuple[StopSettings, StopSettings]] = {}


def _checked(settings: StopSettings) -> StopSettings:
    """Return settings with every number validated and Decimal; raise InvalidInput naming the field."""
    known = _CHECKED.get(id(settings))
    if known is not None and known[0] is settings:
        return known[1]
    checked = _check(settings)
    _CHECKED[id(settings)] = (settings, checked)  # holding settings keeps its id from being reused
    return checked


def _check(settings: StopSettings) -> StopSettings:
    if settings.kind not in STOP_KINDS:
        raise InvalidInput(f"unknown stop kind '{settings.kind}' (known: {', '.join(STOP_KINDS)})")
    for name in _INT_SETTINGS:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"stop setting '{name}' must be a whole number of at least 1, got {value!r}")
    parsed = {}
    for name, (zero_allowed, below_hundred) in _DECIMAL_SETTINGS.items():
        value = parse_decimal(getattr(settings, name), f"stop setting '{name}'", positive=False)
        if value < 0 or (value == 0 and not zero_allowed) or (below_hundred and value >= HUNDRED):
            rule = ("at least 0" if zero_allowed else "above 0") + (" and below 100" if below_hundred else "")
            raise InvalidInput(f"stop setting '{name}' must be {rule}, got {fmt(value)}")
        parsed[name] = value
    return dataclasses.replace(settings, **parsed)


def _extreme(candle: Candle, side: Side) -> Decimal:
    return candle.low if side is Side.BUY else candle.high


def _beyond(price: Decimal, other: Decimal, side: Side) -> bool:
    """Tell whether price is strictly further on the stop side than other (lower for a long)."""
    return (other - price) * side.sign > 0


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


def _technical(ctx: _Context) -> StopResult:
    s, side = ctx.settings, ctx.side
    window = ctx.candles[-s.lookback :]
    level_word = "support" if ctx.buy else "resistance"
    where = "below" if ctx.buy else "above"
    tolerance = ctx.entry * s.tolerance_percent / HUNDRED
    swings = find_swing_points(window, side, s.swing_width)
    all_levels = group_levels([_extreme(c, side) for c in swings], side, tolerance)
    levels = levels_beyond_entry(all_levels, side, ctx.entry, s.min_touches)
    found = {
        "lookback_candles": len(window),
        "tolerance": tolerance,
        "swing_points": [{"open_time": c.open_time, "price": _extreme(c, side)} for c in swings],
        "levels": [{"price": lvl.price, "touches": lvl.touches} for lvl in levels],
        "level": s.level,
    }
    if len(levels) < s.level:
        reason = f"no {level_word} level {where} entry"
        if levels:
            reason = f"only {_plural(len(levels), level_word + ' level')} {where} entry"
        return _fall_back(ctx, [reason], found)
    chosen = levels[s.level - 1]
    return StopResult(
        price=ctx.away(chosen.price, s.buffer_percent),
        method="technical",
        label=(
            f"technical: {_ordinal(s.level)} {level_word} {ctx.show(chosen.price)} "
            f"({_plural(chosen.touches, 'touch', 'touches')}) {ctx.away_sign} {fmt(s.buffer_percent)} % buffer"
        ),
        details=ctx.details(
            **found, reference=chosen.price, touches=chosen.touches, buffer_percent=s.buffer_percent
        ),
    )


def _moving_average(ctx: _Context) -> StopResult:
    s = ctx.settings
    name = f"SMA({s.ma_period})"
    if len(ctx.candles) < s.ma_period:
        reason = f"{name} needs {s.ma_period} candles, got {len(ctx.candles)}"
        return _fall_back(ctx, [reason], {"ma_period": s.ma_period})
    average = simple_moving_average([c.close for c in ctx.candles], s.ma_period)
    found = {"ma_period": s.ma_period, "moving_average": average}
    if (ctx.entry - average) * ctx.side.sign <= 0:
        where = "below" if ctx.buy else "above"
        return _fall_back(ctx, [f"{name} {ctx.show(average)} is not {where} entry"], found)
    return StopResult(
        price=ctx.away(average, s.buffer_percent),
        method="moving_average",
        label=f"moving average: {name} {ctx.show(average)} {ctx.away_sign} {fmt(s.buffer_percent)} % buffer",
        details=ctx.details(**found, reference=average, buffer_percent=s.buffer_percent),
    )


def _atr(ctx: _Context) -> StopResult:
    attempt = _atr_stop(ctx)
    if isinstance(attempt, str):
        return _fall_back(ctx, [attempt], {}, steps=_FALLBACK_STEPS[-1:])
    price, label, found = attempt
    return StopResult(price, "atr", f"atr: {label}", ctx.details(**found))


def _fixed_percent(ctx: _Context) -> StopResult:
    price, label, found = _percent_stop(ctx)
    return StopResult(price, "fixed_percent", f"fixed percent: {label}", ctx.details(**found))


# A fallback step returns (price, label, details) or the reason it cannot give a stop.
_Attempt = tuple[Decimal, str, dict[str, Any]] | str


def _lowest_low_stop(ctx: _Context) -> _Attempt:
    s = ctx.settings
    recent = ctx.candles[-s.fallback_lookback :]
    word = "lowest low" if ctx.buy else "highest high"
    extreme = min(c.low for c in recent) if ctx.buy else max(c.high for c in recent)
    what = f"{word} of {_plural(len(recent), 'candle')} {ctx.show(extreme)}"
    if (ctx.entry - extreme) * ctx.side.sign <= 0:
        return f"{what} is not {'below' if ctx.buy else 'above'} entry"
    found = {"reference": extreme, "fallback_candles": len(recent), "buffer_percent": s.buffer_percent}
    return ctx.away(extreme, s.buffer_percent), f"{what} {ctx.away_sign} {fmt(s.buffer_percent)} %", found


def _atr_stop(ctx: _Context) -> _Attempt:
    s = ctx.settings
    name = f"ATR({s.atr_period})"
    if len(ctx.candles) < s.atr_period + 1:
        return f"{name} needs {s.atr_period + 1} candles, got {len(ctx.candles)}"
    atr = average_true_range(ctx.candles, s.atr_period)
    distance = s.atr_multiplier * atr
    price = ctx.entry - ctx.side.sign * distance
    what = f"{fmt(s.atr_multiplier)} × {name} = {ctx.show(distance)}"
    if distance <= 0:
        return f"{what} gives no stop distance"
    if price <= 0:
        return f"{what} puts the stop at or below 0"
    found = {"reference": ctx.entry, "atr": atr, "atr_period": s.atr_period, "atr_multiplier": s.atr_multiplier}
    return price, f"{what} {'below' if ctx.buy else 'above'} entry", found


def _percent_stop(ctx: _Context) -> tuple[Decimal, str, dict[str, Any]]:
    percent = ctx.settings.percent
    found = {"reference": ctx.entry, "percent": percent}
    return ctx.away(ctx.entry, percent), f"{fmt(percent)} % {'below' if ctx.buy else 'above'} entry", found


_FALLBACK_STEPS: tuple[tuple[str, Callable[[_Context], _Attempt]], ...] = (
    ("fallback:lowest_low", _lowest_low_stop),
    ("fallback:atr", _atr_stop),
    ("fallback:percent", _percent_stop),  # always gives a stop: percent is validated below 100
)


def _fall_back(
    ctx: _Context,
    reasons: list[str],
    found: dict[str, Any],
    steps: Sequence[tuple[str, Callable[[_Context], _Attempt]]] = _FALLBACK_STEPS,
) -> StopResult:
    """Try each fallback step in order; label the first that gives a stop with every reason before it."""
    for method, step in steps:
        attempt = step(ctx)
        if isinstance(attempt, str):
            reasons = [*reasons, attempt]
            continue
        price, label, details = attempt
        return StopResult(
            price=price,
            method=method,
            label=f"fallback: {label} ({'; '.join(reasons)})",
            details=ctx.details(**(found | details), reasons=reasons),
        )
    raise AssertionError("the percent fallback always gives a stop")  # pragma: no cover


_KINDS: dict[str, Callable[[_Context], StopResult]] = {
    "technical": _technical,
    "moving_average": _moving_average,
    "atr": _atr,
    "fixed_percent": _fixed_percent,
}
