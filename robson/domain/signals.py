"""Scan signals and their lifecycle (SPEC §2 "Scan and signals").

DETECTED → CONFIRMED | INVALIDATED | EXPIRED. A setup matching on the last closed candle is
DETECTED; later closed candles confirm or invalidate it by the setup's rule; if none does within
the setup's window it EXPIRES. Transitions are a table; any other pair raises IllegalTransition.
A signal is recorded once per (strategy, pattern, symbol, timeframe, candle open time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from robson.domain.ids import new_id
from robson.domain.market import Candle, Side, ms_to_datetime, timeframe_ms
from robson.domain.money import fmt
from robson.errors import IllegalTransition, MarketDataError

if TYPE_CHECKING:  # the grammar loads when a signal is decided, not whenever the store reads one
    from robson.domain.conditions import Detection, Setup

SIGNAL_PREFIX = "sg"


class SignalStatus(StrEnum):
    DETECTED = "DETECTED"
    CONFIRMED = "CONFIRMED"
    INVALIDATED = "INVALIDATED"
    EXPIRED = "EXPIRED"


class SignalEvent(StrEnum):
    CONFIRM = "confirm"
    INVALIDATE = "invalidate"
    EXPIRE = "expire"


S, E = SignalStatus, SignalEvent

TRANSITIONS: dict[tuple[SignalStatus, SignalEvent], SignalStatus] = {
    (S.DETECTED, E.CONFIRM): S.CONFIRMED,
    (S.DETECTED, E.INVALIDATE): S.INVALIDATED,
    (S.DETECTED, E.EXPIRE): S.EXPIRED,
}

TERMINAL: frozenset[SignalStatus] = frozenset({S.CONFIRMED, S.INVALIDATED, S.EXPIRED})


def next_status(status: SignalStatus, event: SignalEvent) -> SignalStatus:
    """Return the state after event; raise IllegalTransition for a pair not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == status)
        detail = f"; from {status.value} only: {', '.join(allowed)}" if allowed else f"; {status.value} is final"
        raise IllegalTransition(f"signal cannot go {status.value} -> {event.value}{detail}") from None


SignalKey = tuple[str, str, str, str, int]


def signal_key(strategy: str, pattern: str, symbol: str, timeframe: str, candle_open_time: int) -> SignalKey:
    """Return the idempotency key: one signal per strategy, pattern, symbol, timeframe and candle."""
    return (strategy, pattern, symbol.upper(), timeframe, candle_open_time)


@dataclass(frozen=True, slots=True)
class Signal:
    """A setup found on a closed candle, why it was found, and where it stands."""

    id: str
    strategy: str
    pattern: str  # the setup's name
    symbol: str
    timeframe: str
    candle_open_time: int  # epoch ms of the signal candle
    side: Side
    confidence: Decimal
    status: SignalStatus
    detected_at: datetime
    updated_at: datetime
    values: dict[str, Decimal | None] = field(default_factory=dict)  # indicator values at the candle
    reason: str = ""  # why it was detected
    resolution: str | None = None  # why it was confirmed, invalidated or expired
    intent_id: str | None = None  # the intent auto-entry created from it, if any

    @property
    def key(self) -> SignalKey:
        return signal_key(self.strategy, self.pattern, self.symbol, self.timeframe, self.candle_open_time)

    def apply(self, event: SignalEvent, at: datetime, resolution: str | None = None) -> Signal:
        """Return the signal after event; raise IllegalTransition."""
        status = next_status(self.status, event)
        return dataclasses.replace(self, status=status, updated_at=at, resolution=resolution)


def new_signal(detection: Detection, *, strategy: str, symbol: str, timeframe: str, at: datetime) -> Signal:
    """Return a DETECTED signal with a fresh 'sg-' id from a setup's detection."""
    return Signal(
        id=new_id(SIGNAL_PREFIX),
        strategy=strategy,
        pattern=detection.setup,
        symbol=symbol.upper(),
        timeframe=timeframe,
        candle_open_time=detection.candle_open_time,
        side=detection.side,
        confidence=detection.confidence,
        status=SignalStatus.DETECTED,
        detected_at=at,
        updated_at=at,
        values=dict(detection.values),
        reason=detection.reason,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """What the candles after a DETECTED signal say: an event, or None while still waiting."""

    event: SignalEvent | None
    reason: str
    candle_open_time: int | None = None  # the candle that decided, if one did
    values: dict[str, Decimal | None] = field(default_factory=dict)


def decide(
    signal: Signal, setup: Setup, candles: Sequence[Candle], series: Mapping[str, Sequence[Any]]
) -> Decision:
    """Decide a DETECTED signal from the closed candles after its own (confirm, invalidate, expire or wait).

    candles are closed candles oldest first, including the signal candle, aligned with series
    (needed by condition_holds). Each of the first setup.window candles after the signal candle
    is judged in turn, the first verdict wins:

    - next_close_above_high: a close above the signal candle's high confirms, a close below its
      low invalidates (mirrored for sells); a close in between decides nothing;
    - condition_holds: the first later candle decides: confirmed if the setup's confirm condition
      (its own ``holds`` condition, else ``when``) still holds there (crossings judged as states,
      patterns as formed), invalidated otherwise.

    With window candles closed and no verdict, the signal expires; with fewer, it waits. If the
    signal candle has left the data, the signal expires when window timeframes have passed.
    Raise IllegalTransition for a signal that is not DETECTED, MarketDataError when the signal
    candle is missing yet the window has not passed.
    """
    if signal.status is not SignalStatus.DETECTED:
        raise IllegalTransition(f"signal {signal.id} is {signal.status.value}: only a DETECTED signal is decided")
    window = setup.window
    position = next((i for i, c in enumerate(candles) if c.open_time == signal.candle_open_time), None)
    if position is None:
        return _decide_without_signal_candle(signal, window, candles)
    signal_candle = candles[position]
    for later in range(position + 1, min(len(candles), position + 1 + window)):
        decision = _judge(signal, setup, signal_candle, candles, later, series)
        if decision is not None:
            return decision
    closed_after = len(candles) - 1 - position
    if closed_after >= window:
        return Decision(SignalEvent.EXPIRE, f"not confirmed within {_candles(window)}")
    return Decision(None, f"waiting: {closed_after} of {window} candles closed")


def _judge(
    signal: Signal,
    setup: Setup,
    signal_candle: Candle,
    candles: Sequence[Candle],
    position: int,
    series: Mapping[str, Sequence[Any]],
) -> Decision | None:
    from robson.domain.conditions import ConfirmRule, evaluate

    candle = candles[position]
    at = candle.open_time
    if setup.confirm is ConfirmRule.CONDITION_HOLDS:
        condition = setup.confirm_condition
        result = evaluate(condition, series, candles, position, holding=True)
        verdict = "still holds" if result.matched else "no longer holds"
        event = SignalEvent.CONFIRM if result.matched else SignalEvent.INVALIDATE
        return Decision(event, f"{condition.describe()} {verdict} on the next close", at, result.values)
    close, high, low = candle.close, signal_candle.high, signal_candle.low
    above, below = f"close {fmt(close)} above the signal high {fmt(high)}", f"close {fmt(close)} below the signal low {fmt(low)}"
    if close > high:
        event = SignalEvent.CONFIRM if signal.side is Side.BUY else SignalEvent.INVALIDATE
        return Decision(event, above, at, {"close": close, "signal_high": high})
    if close < low:
        event = SignalEvent.CONFIRM if signal.side is Side.SELL else SignalEvent.INVALIDATE
        return Decision(event, below, at, {"close": close, "signal_low": low})
    return None


def _decide_without_signal_candle(signal: Signal, window: int, candles: Sequence[Candle]) -> Decision:
    length = timeframe_ms(signal.timeframe)
    elapsed = (candles[-1].open_time - signal.candle_open_time) // length if candles else 0
    if elapsed >= window:
        return Decision(SignalEvent.EXPIRE, f"not confirmed within {_candles(window)} (signal candle no longer in the data)")
    when = ms_to_datetime(signal.candle_open_time).strftime("%Y-%m-%d %H:%M")
    raise MarketDataError(f"the signal candle ({when} UTC) of {signal.id} is not among the candles given")


def _candles(count: int) -> str:
    return f"{count} closed candle{'s' if count != 1 else ''}"
