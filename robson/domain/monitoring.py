"""Stop monitor rules (SPEC §2): trailing "hand span" stops, candle walks, time exits, stop edits.

Pure functions over an Operation and closed candles (oldest first); the monitor use case
fetches the candles, applies the result and records it.

Trailing stop for a long (a short is the mirror), with span = |entry − initial stop| and
n = whole spans of favourable move reached by the best price (a candle's high):

- n = 1: break-even plus fees, the lowest price at which closing nets ≥ 0 after the entry
  fee already paid and the taker fee on the exit, rounded to the tick toward profit. It is
  skipped while it is not strictly below the best price (a span smaller than the fees), as
  such a stop would trigger at once.
- n ≥ 2: entry + (n − 1) × span, rounded to the tick away from the price (never tighter).
- A stop never moves backwards: a candidate behind the current stop is no move.

Candle walk, candle by candle in time order, for each candle the operation has not seen
(opened at or after the operation opened, closed after its last check, closed by now):

1. Stop, with the stop as it stood before this candle: a candle opening beyond the stop
   gapped through it and fills at its open; one whose low (high for a short) touches it
   fills at the stop. Stop before target: when both are touched in one candle, the stop wins.
2. Target: fills at the target, or at the open when the candle opened beyond it.
3. Time exit: the candle that reaches the deadline exits at its close.
4. Trailing: the candle's high (low for a short) may move the stop, which protects from the
   NEXT candle on. Within a candle the order of high and low is unknown, so a move is never
   assumed to have happened before that candle's low.

Stop and time exits are market-like fills: slippage moves them against the trader, then
they are rounded to the tick against the trader, as the paper exchange does. A target is a
resting limit (the OCO's take-profit leg): it never fills worse than its price, so no
slippage. Exit times are the candle's close (its open for a gap fill, the moment it is
known), the earliest time the monitor could know of a touch inside a closed candle.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from robson.domain.market import Candle, Side, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.money import ONE, ZERO, fmt, fmt_amount, is_multiple, round_to_tick
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.errors import IllegalTransition, InvalidInput, Refused

TRAILING = "trailing"


# --- trailing stop ------------------------------------------------------------------------


def break_even_price(side: Side, entry_price: Decimal, quantity: Decimal, entry_fee: Decimal, fee_rate: Decimal,
                     tick_size: Decimal = ZERO) -> Decimal:
    """Return the exit price netting zero after both fees, on the tick toward profit; raise InvalidInput."""
    if quantity <= 0:
        raise InvalidInput(f"quantity must be greater than 0, got {fmt(quantity)}")
    if not ZERO <= fee_rate < ONE:
        raise InvalidInput(f"fee rate must be between 0 and 1, got {fmt(fee_rate)}")
    # Long: (P − E)·q − F − P·q·f = 0  →  P = (E·q + F) / (q·(1 − f)); a short mirrors the signs.
    sign = side.sign
    price = (entry_price * quantity + sign * entry_fee) / (quantity * (ONE - sign * fee_rate))
    return round_to_tick(price, tick_size, up=side is Side.BUY)


def spans_reached(side: Side, entry_price: Decimal, initial_stop: Decimal, best_price: Decimal) -> int:
    """Return the whole spans (|entry − initial stop|) of favourable move reached by best_price (0 if none)."""
    span = abs(entry_price - initial_stop)
    if span == 0:
        return 0
    move = (best_price - entry_price) * side.sign
    return max(0, int((move / span).to_integral_value(rounding=ROUND_FLOOR)))


def trailing_stop(operation: Operation, best_price: Decimal, *, fee_rate: Decimal, tick_size: Decimal = ZERO,
                  current_stop: Decimal | None = None) -> Decimal | None:
    """Return the hand-span stop for best_price if it moves the stop toward profit, else None."""
    side = operation.side
    stop = operation.stop if current_stop is None else current_stop
    spans = spans_reached(side, operation.entry_price, operation.initial_stop, best_price)
    if spans == 0:
        return None
    if spans == 1:
        candidate = break_even_price(side, operation.entry_price, operation.quantity, operation.entry_fee,
                                     fee_rate, tick_size)
        if (best_price - candidate) * side.sign <= 0:
            return None
    else:
        span = abs(operation.entry_price - operation.initial_stop)
        raw = operation.entry_price + side.sign * (spans - 1) * span
        candidate = round_to_tick(raw, tick_size, up=side is Side.SELL)
    return candidate if (candidate - stop) * side.sign > 0 else None


# --- time exit ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeExitRule:
    """Close after this many full candles of the strategy timeframe, or at this age; the earlier wins."""

    candles: int | None = None
    max_age: timedelta | None = None


DURATION = re.compile(r"^\s*([0-9]+)\s*([mhdw])\s*$")
DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, field_name: str = "max_age") -> timedelta:
    """Parse '90m', '12h', '3d' or '2w' into a timedelta; raise InvalidInput naming the field."""
    match = DURATION.match(str(text))
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"{field_name} must be a positive duration like 90m, 12h, 3d or 2w, got {text!r}")
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})


def time_exit_deadline(opened_at: datetime, timeframe: str, rule: TimeExitRule | None) -> datetime | None:
    """Return when the time exit falls due (None without a rule); raise InvalidInput on a bad rule."""
    if rule is None or (rule.candles is None and rule.max_age is None):
        return None
    deadlines = []
    if rule.candles is not None:
        if rule.candles < 1:
            raise InvalidInput(f"time exit candles must be at least 1, got {rule.candles}")
        length = timeframe_ms(timeframe)
        # Candles are aligned to multiples of their length; the first full one opens at or after entry.
        first_open = -(-datetime_to_ms(opened_at) // length) * length
        deadlines.append(ms_to_datetime(first_open + rule.candles * length))
    if rule.max_age is not None:
        if rule.max_age <= timedelta(0):
            raise InvalidInput(f"time exit max age must be positive, got {rule.max_age}")
        deadlines.append(opened_at + rule.max_age)
    return min(deadlines)


def time_exit_candle(opened_at: datetime, candles: Sequence[Candle], timeframe: str,
                     rule: TimeExitRule | None) -> Candle | None:
    """Return the first candle opened since entry whose close reaches the deadline (exit at its close)."""
    deadline = time_exit_deadline(opened_at, timeframe, rule)
    if deadline is None:
        return None
    length, opened_ms, due_ms = timeframe_ms(timeframe), datetime_to_ms(opened_at), datetime_to_ms(deadline)
    for candle in sorted(candles, key=lambda c: c.open_time):
        if candle.open_time >= opened_ms and candle.open_time + length >= due_ms:
            return candle
    return None


# --- candle walk --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """What the walk needs besides the operation: timeframe, costs, tick and the strategy's exits."""

    timeframe: str
    fee_rate: Decimal
    slippage_rate: Decimal = ZERO
    tick_size: Decimal = ZERO
    trailing: bool = False
    time_exit: TimeExitRule | None = None


@dataclass(frozen=True, slots=True)
class StopMove:
    at: datetime  # close of the candle whose extreme moved it
    old_stop: Decimal
    new_stop: Decimal
    reason: str  # "trailing"
    candle_open_time: int
    best_price: Decimal


@dataclass(frozen=True, slots=True)
class Exit:
    at: datetime
    price: Decimal  # the fill, after slippage and tick rounding
    trigger_price: Decimal  # stop, target, gapped open or close before slippage
    fee: Decimal  # taker fee on the fill, in quote
    reason: CloseReason
    candle_open_time: int
    gapped: bool = False


@dataclass(frozen=True, slots=True)
class WalkResult:
    moves: tuple[StopMove, ...]
    exit: Exit | None
    stop: Decimal  # the stop after the walk
    last_checked_at: datetime | None  # close of the last candle examined (unchanged if none)


@dataclass(frozen=True, slots=True)
class Touch:
    """Where a candle reached a resting level: at the level, or at the candle's open when it opened beyond it."""

    price: Decimal
    gapped: bool


def stop_touch(side: Side, candle: Candle, stop: Decimal) -> Touch | None:
    """Return where the candle reached the stop of a position on side (its low for a long), or None."""
    sign = side.sign
    worst = candle.low if sign > 0 else candle.high
    if (stop - worst) * sign < 0:
        return None
    return Touch(candle.open, True) if (stop - candle.open) * sign > 0 else Touch(stop, False)


def target_touch(side: Side, candle: Candle, target: Decimal) -> Touch | None:
    """Return where the candle reached a target of a position on side (its high for a long), or None."""
    sign = side.sign
    best = candle.high if sign > 0 else candle.low
    if (best - target) * sign < 0:
        return None
    return Touch(candle.open, True) if (candle.open - target) * sign > 0 else Touch(target, False)


def exit_price(side: Side, trigger: Decimal, settings: MonitorSettings, *, slip: bool) -> Decimal:
    """Return the fill of an exit from a position on side: a market-like exit slips and goes on the tick against it."""
    if not slip:
        return trigger
    exit_side = side.opposite
    return round_to_tick(trigger * (ONE + exit_side.sign * settings.slippage_rate), settings.tick_size,
                         up=exit_side is Side.BUY)


def touch_ms(candle: Candle, touch: Touch, close_ms: int) -> int:
    """When a touch is known: the candle's open for a gap, else its close."""
    return candle.open_time if touch.gapped else close_ms


def check_watched(operation: Operation) -> None:
    """Raise IllegalTransition unless the operation is ACTIVE (only those are walked)."""
    if operation.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(f"operation {operation.id} is {operation.status.value}: only ACTIVE ones are monitored")


def unseen_candles(operation: Operation, candles: Sequence[Candle], timeframe: str,
                   now: datetime | None = None) -> list[Candle]:
    """Return the candles a walk examines, oldest first: opened since entry, closed after the last check and by now."""
    length = timeframe_ms(timeframe)
    opened_ms = datetime_to_ms(operation.opened_at)
    seen_ms = datetime_to_ms(operation.last_checked_at) if operation.last_checked_at else None
    now_ms = datetime_to_ms(now) if now is not None else None
    # The entry candle's extremes may predate the entry; candles already seen or still open are skipped.
    return [candle for candle in sorted(candles, key=lambda c: c.open_time)
            if candle.open_time >= opened_ms and (seen_ms is None or candle.open_time + length > seen_ms)
            and (now_ms is None or candle.open_time + length <= now_ms)]


def time_exit_due_ms(operation: Operation, settings: MonitorSettings) -> int | None:
    """Return when the time exit falls due, in epoch ms (None without one)."""
    deadline = time_exit_deadline(operation.opened_at, settings.timeframe, settings.time_exit)
    return datetime_to_ms(deadline) if deadline is not None else None


def _exit(operation: Operation, candle: Candle, at_ms: int, trigger: Decimal, reason: CloseReason,
          settings: MonitorSettings, *, slip: bool = True, gapped: bool = False) -> Exit:
    price = exit_price(operation.side, trigger, settings, slip=slip)
    fee = price * operation.quantity * settings.fee_rate
    return Exit(ms_to_datetime(at_ms), price, trigger, fee, reason, candle.open_time, gapped)


def _check_candle(operation: Operation, candle: Candle, stop: Decimal, length: int, due_ms: int | None,
                  settings: MonitorSettings) -> Exit | None:
    sign = operation.side.sign
    close_ms = candle.open_time + length
    touch = stop_touch(operation.side, candle, stop)
    if touch is not None:
        trailed = settings.trailing and (stop - operation.initial_stop) * sign > 0
        reason = CloseReason.TRAILING if trailed else CloseReason.STOP
        return _exit(operation, candle, touch_ms(candle, touch, close_ms), touch.price, reason, settings,
                     gapped=touch.gapped)
    touch = target_touch(operation.side, candle, operation.target) if operation.target is not None else None
    if touch is not None:
        return _exit(operation, candle, touch_ms(candle, touch, close_ms), touch.price, CloseReason.TARGET, settings,
                     slip=False, gapped=touch.gapped)
    if due_ms is not None and close_ms >= due_ms:
        return _exit(operation, candle, close_ms, candle.close, CloseReason.TIME_EXIT, settings)
    return None


def trail(operation: Operation, candle: Candle, stop: Decimal, settings: MonitorSettings, close_ms: int) -> StopMove | None:
    """Return the hand-span move the candle's best price makes from stop (protecting from the next candle), or None."""
    best = candle.high if operation.side is Side.BUY else candle.low
    new = trailing_stop(operation, best, fee_rate=settings.fee_rate, tick_size=settings.tick_size, current_stop=stop)
    return None if new is None else StopMove(ms_to_datetime(close_ms), stop, new, TRAILING, candle.open_time, best)


def walk_candles(operation: Operation, candles: Sequence[Candle], settings: MonitorSettings, *,
                 now: datetime | None = None) -> WalkResult:
    """Replay closed candles over an ACTIVE operation: stop moves and the first exit; raise IllegalTransition."""
    check_watched(operation)
    length = timeframe_ms(settings.timeframe)
    due_ms = time_exit_due_ms(operation, settings)
    stop, moves, checked_ms = operation.stop, [], None
    for candle in unseen_candles(operation, candles, settings.timeframe, now):
        checked_ms = close_ms = candle.open_time + length
        exit_ = _check_candle(operation, candle, stop, length, due_ms, settings)
        if exit_ is not None:
            return WalkResult(tuple(moves), exit_, stop, ms_to_datetime(checked_ms))
        move = trail(operation, candle, stop, settings, close_ms) if settings.trailing else None
        if move is not None:
            moves.append(move)
            stop = move.new_stop
    last = ms_to_datetime(checked_ms) if checked_ms is not None else operation.last_checked_at
    return WalkResult(tuple(moves), None, stop, last)


def apply_walk(operation: Operation, result: WalkResult) -> Operation:
    """Return the operation with the walk's stop, last check and exit (CLOSED) applied."""
    updated = dataclasses.replace(operation, stop=result.stop, last_checked_at=result.last_checked_at)
    if result.exit is None:
        return updated
    exit_ = result.exit
    return updated.close(exit_price=exit_.price, exit_fee=exit_.fee, reason=exit_.reason, at=exit_.at)


# --- stop and target edits ----------------------------------------------------------------


def _check_price(value: Decimal, name: str, tick_size: Decimal) -> None:
    if value <= 0:
        raise InvalidInput(f"{name} must be greater than 0, got {fmt(value)}")
    if not is_multiple(value, tick_size):
        below, above = round_to_tick(value, tick_size, up=False), round_to_tick(value, tick_size, up=True)
        raise InvalidInput(f"{name} {fmt(value)} is not on the price tick {fmt(tick_size)}",
                           hint=f"use {fmt(below)} or {fmt(above)}")


def modify_stop(operation: Operation, new_stop: Decimal, *, price: Decimal, allow_loosen: bool = False,
                tick_size: Decimal = ZERO) -> Decimal:
    """Return the checked new stop; raise InvalidInput (bad price, wrong side) or Refused (loosening)."""
    if operation.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(f"operation {operation.id} is {operation.status.value}: only ACTIVE stops can move")
    _check_price(new_stop, "stop", tick_size)
    side, sign = operation.side, operation.side.sign
    if (price - new_stop) * sign <= 0:
        where = "at or above" if side is Side.BUY else "at or below"
        raise InvalidInput(f"stop {fmt(new_stop)} is {where} the current price {fmt(price)}: it would trigger at once",
                           hint="a stop stays on the loss side of the price; close the operation instead")
    if (new_stop - operation.stop) * sign < 0 and not allow_loosen:
        extra_risk = abs(operation.stop - new_stop) * operation.quantity
        raise Refused(f"moving the stop from {fmt(operation.stop)} to {fmt(new_stop)} loosens it: "
                      f"risk grows by {fmt_amount(extra_risk)} {operation.quote_asset}",
                      hint="a stop only moves toward profit; pass --allow-loosen to move it back on purpose")
    return new_stop


def modify_target(operation: Operation, new_target: Decimal, *, price: Decimal, tick_size: Decimal = ZERO) -> Decimal:
    """Return the checked new target; raise InvalidInput unless it lies beyond the price on the profit side."""
    if operation.status is not OperationStatus.ACTIVE:
        raise IllegalTransition(f"operation {operation.id} is {operation.status.value}: only ACTIVE targets can move")
    _check_price(new_target, "target", tick_size)
    if (new_target - price) * operation.side.sign <= 0:
        where = "at or below" if operation.side is Side.BUY else "at or above"
        raise InvalidInput(f"target {fmt(new_target)} is {where} the current price {fmt(price)}: it would fill at once",
                           hint="close the operation to take the profit now")
    return new_target
