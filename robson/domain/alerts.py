"""Price alerts (issue 13): a price to watch on a symbol's closed candles, fired at most once.

ACTIVE → FIRED (a closed candle reached the price) | REMOVED (by the user; kept for history).
Transitions are a table; any other pair raises IllegalTransition. The crossing rule is pure: the
first candle closed after the last check whose high reached the price (above) or whose low reached
it (below) fires the alert. A wick counts, an exact touch counts, and a gap through the price fires
on the candle that gapped. An alert may arm a plan: when it fires, that intent is validated (never
executed); the verdict is kept with the alert.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from robson.domain.ids import ALERT_PREFIX, new_id
from robson.domain.market import Candle, datetime_to_ms, ms_to_datetime
from robson.domain.money import fmt
from robson.errors import IllegalTransition, InvalidInput


class AlertStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FIRED = "FIRED"
    REMOVED = "REMOVED"


class AlertEvent(StrEnum):
    FIRE = "fire"
    REMOVE = "remove"


S, E = AlertStatus, AlertEvent

TRANSITIONS: dict[tuple[AlertStatus, AlertEvent], AlertStatus] = {
    (S.ACTIVE, E.FIRE): S.FIRED,
    (S.ACTIVE, E.REMOVE): S.REMOVED,
}


def next_status(status: AlertStatus, event: AlertEvent) -> AlertStatus:
    """Return the state after event; raise IllegalTransition for a pair not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(f"alert cannot go {status.value} -> {event.value}; {status.value} is final") from None


class Direction(StrEnum):
    ABOVE = "above"  # fires when the price rises to the level or beyond
    BELOW = "below"  # fires when the price falls to the level or beyond

    @property
    def extreme(self) -> str:
        """Which end of a candle can reach the level: its 'high' (above) or its 'low' (below)."""
        return "high" if self is Direction.ABOVE else "low"

    def reached_by(self, level: Decimal, candle: Candle) -> Decimal | None:
        """Return the candle's high (above) or low (below) if it reached level, else None."""
        extreme = candle.high if self is Direction.ABOVE else candle.low
        return extreme if self.satisfied_by(level, extreme) else None

    def satisfied_by(self, level: Decimal, price: Decimal) -> bool:
        """Tell whether price is at level or beyond it in this direction."""
        return price >= level if self is Direction.ABOVE else price <= level


def parse_direction(text: str) -> Direction:
    """Return the direction 'above' or 'below' (any case); raise InvalidInput."""
    try:
        return Direction(text.strip().lower())
    except ValueError:
        raise InvalidInput(f"direction must be 'above' or 'below', got '{text[:40]}'") from None


@dataclass(frozen=True, slots=True)
class Crossing:
    """The candle that reached an alert's price."""

    candle_open_time: int  # epoch ms
    candle_close_time: int  # epoch ms
    price: Decimal  # the candle's high (above) or low (below), at the level or beyond it
    gapped: bool  # the candle opened at the level or beyond: the price jumped past it between candles


@dataclass(frozen=True, slots=True)
class Alert:
    """A price level on a symbol, where it stands, and what happened when it fired."""

    id: str
    symbol: str
    direction: Direction
    price: Decimal
    status: AlertStatus
    created_at: datetime
    updated_at: datetime
    note: str | None = None
    plan_id: str | None = None  # the intent validated when it fires
    checked_ms: int | None = None  # close time of the last candle checked
    fired_at: datetime | None = None
    fired_candle_ms: int | None = None  # open time of the candle that reached the price
    fired_price: Decimal | None = None  # that candle's high (above) or low (below)
    verdict: dict[str, Any] | None = None  # the armed plan's validation when it fired

    @property
    def since_ms(self) -> int:
        """Candles closing after this time (epoch ms) are new to the alert: after its last check, or its creation."""
        return self.checked_ms if self.checked_ms is not None else datetime_to_ms(self.created_at)

    @property
    def condition(self) -> str:
        """The alert in words, e.g. 'BTCUSDT above 35000'."""
        return f"{self.symbol} {self.direction.value} {fmt(self.price)}"

    def reached_text(self, timeframe: str, gapped: bool) -> str:
        """Say how a FIRED alert was reached, e.g. 'the 2021-06-09 10:05 UTC 5m candle's high 35012.5'."""
        if self.fired_candle_ms is None:
            return "not reached"
        candle = ms_to_datetime(self.fired_candle_ms)
        return (f"the {candle:%Y-%m-%d %H:%M} UTC {timeframe} candle's {self.direction.extreme} {fmt(self.fired_price)}"
                + (" (it opened past the price)" if gapped else ""))

    def fire(self, crossing: Crossing, at: datetime) -> Alert:
        """Return the alert FIRED by crossing at time at; raise IllegalTransition unless ACTIVE."""
        return dataclasses.replace(
            self, status=next_status(self.status, AlertEvent.FIRE), updated_at=at, fired_at=at,
            fired_candle_ms=crossing.candle_open_time, fired_price=crossing.price,
            checked_ms=crossing.candle_close_time)

    def remove(self, at: datetime) -> Alert:
        """Return the alert REMOVED at time at; raise IllegalTransition unless ACTIVE."""
        return dataclasses.replace(self, status=next_status(self.status, AlertEvent.REMOVE), updated_at=at)


def new_alert(symbol: str, direction: Direction, price: Decimal, *, at: datetime, note: str | None = None,
              plan_id: str | None = None) -> Alert:
    """Return an ACTIVE alert with a fresh 'al-' id, watching the candles that close after at."""
    return Alert(id=new_id(ALERT_PREFIX), symbol=symbol.upper(), direction=direction, price=price,
                 status=AlertStatus.ACTIVE, created_at=at, updated_at=at, note=note, plan_id=plan_id)


@dataclass(frozen=True, slots=True)
class AlertScan:
    """What the candles closed since an alert's last check say: the crossing, and how far they were checked."""

    crossing: Crossing | None
    checked_ms: int | None  # close time of the last new candle examined; None when none had closed since


def scan_candles(alert: Alert, candles: Sequence[Candle], length_ms: int) -> AlertScan:
    """Find the first candle closed after the alert's last check that reached its price (oldest first).

    A candle reaches the price when its high (above) or low (below) is at it or beyond: a wick that
    touched the level and closed back counts, and so does a candle that gapped past it. The scan
    stops at the first crossing; without one, it reports the close of the last new candle.
    """
    checked: int | None = None
    for candle in candles:
        close = candle.open_time + length_ms
        if close <= alert.since_ms:
            continue
        reached = alert.direction.reached_by(alert.price, candle)
        if reached is not None:
            gapped = alert.direction.satisfied_by(alert.price, candle.open)
            return AlertScan(Crossing(candle.open_time, close, reached, gapped), close)
        checked = close
    return AlertScan(None, checked)
