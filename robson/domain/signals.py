"""Scan signals and their lifecycle (SPEC §2 "Scan and signals").

DETECTED → CONFIRMED | INVALIDATED | EXPIRED. A setup matching on the last closed candle is
DETECTED; later closed candles confirm or invalidate it by the setup's rule; if none does within
the setup's window it EXPIRES. Transitions are a table; any other pair raises IllegalTransition.
A signal is recorded once per (strategy, pattern, symbol, timeframe, candle open time).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from robson.domain.ids import new_id
from robson.domain.market import Side
from robson.errors import IllegalTransition

if TYPE_CHECKING:  # the grammar loads when a signal is detected, not whenever the store reads one
    from robson.domain.conditions import Detection

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
    """What the candles after a DETECTED signal say: an event, or None while still waiting.

    The setup's confirmation rule decides (robson.adapters.signal_engine evaluates it): each of
    the first `window` candles after the signal candle is judged in turn, the first verdict wins.
    next_close_above_high: a close above the signal candle's high confirms, one below its low
    invalidates (mirrored for sells), one in between decides nothing; condition_holds: the first
    later candle confirms if the confirm condition still holds there, else invalidates; none:
    the signal candle itself confirms. With `window` candles closed and no verdict, the signal
    expires; with fewer, it waits.
    """

    event: SignalEvent | None
    reason: str
    candle_open_time: int | None = None  # the candle that decided, if one did
    values: dict[str, Decimal | None] = field(default_factory=dict)
