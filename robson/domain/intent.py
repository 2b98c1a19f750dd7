"""The trading intent (a plan) and its state machine (SPEC §2).

PENDING → VALIDATED → EXECUTING → EXECUTED, with FAILED (validation or execution failed)
and CANCELLED (by the user, from PENDING or VALIDATED). An entry that waits for its price
(a limit or stop entry) goes EXECUTING → WORKING once its order rests on the exchange, and
WORKING → EXECUTING when it fills (fully, or partly and the rest is cancelled) while the
protective order is placed; from WORKING it may also be CANCELLED (by the user), EXPIRED
(its time ran out) or FAILED (the exchange or the guards refused it). Transitions are a
table; any other pair raises IllegalTransition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from robson.domain.market import Side
from robson.domain.money import fmt
from robson.errors import IllegalTransition, InvalidInput


class IntentStatus(StrEnum):
    PENDING = "PENDING"
    VALIDATED = "VALIDATED"
    EXECUTING = "EXECUTING"
    EXECUTED = "EXECUTED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    WORKING = "WORKING"  # the entry order rests on the exchange, waiting for its price
    EXPIRED = "EXPIRED"  # a waiting entry whose time ran out before it filled


class IntentEvent(StrEnum):
    VALIDATION_PASSED = "validation_passed"
    VALIDATION_FAILED = "validation_failed"
    EXECUTION_STARTED = "execution_started"
    EXECUTION_SUCCEEDED = "execution_succeeded"
    EXECUTION_FAILED = "execution_failed"
    CANCEL = "cancel"
    ENTRY_WORKING = "entry_working"  # the waiting entry order was placed
    ENTRY_FILLED = "entry_filled"  # it filled (or part filled and the rest was cancelled): protect it
    ENTRY_EXPIRED = "entry_expired"  # its expiry passed with nothing filled; the order was cancelled


S, E = IntentStatus, IntentEvent

TRANSITIONS: dict[tuple[IntentStatus, IntentEvent], IntentStatus] = {
    (S.PENDING, E.VALIDATION_PASSED): S.VALIDATED,
    (S.PENDING, E.VALIDATION_FAILED): S.FAILED,
    # A validated intent may be validated again (its report went stale); a FAIL then ends it.
    (S.VALIDATED, E.VALIDATION_PASSED): S.VALIDATED,
    (S.VALIDATED, E.VALIDATION_FAILED): S.FAILED,
    (S.VALIDATED, E.EXECUTION_STARTED): S.EXECUTING,
    (S.EXECUTING, E.EXECUTION_SUCCEEDED): S.EXECUTED,
    (S.EXECUTING, E.EXECUTION_FAILED): S.FAILED,
    (S.PENDING, E.CANCEL): S.CANCELLED,
    (S.VALIDATED, E.CANCEL): S.CANCELLED,
    (S.EXECUTING, E.ENTRY_WORKING): S.WORKING,
    (S.WORKING, E.ENTRY_FILLED): S.EXECUTING,
    (S.WORKING, E.CANCEL): S.CANCELLED,
    (S.WORKING, E.ENTRY_EXPIRED): S.EXPIRED,
    (S.WORKING, E.EXECUTION_FAILED): S.FAILED,
}

TERMINAL: frozenset[IntentStatus] = frozenset({S.EXECUTED, S.FAILED, S.CANCELLED, S.EXPIRED})


def next_status(status: IntentStatus, event: IntentEvent) -> IntentStatus:
    """Return the state after event; raise IllegalTransition for a pair not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == status)
        detail = f"; from {status.value} only: {', '.join(allowed)}" if allowed else f"; {status.value} is final"
        raise IllegalTransition(f"intent cannot go {status.value} -> {event.value}{detail}",
                                hint=PLAN_AGAIN if status is S.FAILED else None) from None


PLAN_AGAIN = "a FAILED intent is final: fix what its report says, then plan again (robson plan buy|sell SYMBOL)"


class EntryOrder(StrEnum):
    """How the entry is placed: at market now, or resting until the price reaches the plan's entry."""

    MARKET = "market"
    LIMIT = "limit"  # a buy waits for the price to fall to the entry (a sell: to rise), filled at it or better
    STOP = "stop"  # a buy waits for the price to rise to the entry (breakout; a sell: to fall), at it or worse


def parse_entry_order(text: str) -> EntryOrder:
    """Parse --order; raise InvalidInput listing the choices."""
    try:
        return EntryOrder(text.strip().lower())
    except ValueError:
        raise InvalidInput(f"order must be one of {', '.join(o.value for o in EntryOrder)}, got {text!r}") from None


def parse_expiry(text: str, now: datetime) -> datetime:
    """Parse --expires: a duration from now ('90m', '4h', '2d', '1w') or a UTC time ('2021-06-22T18:00', a date
    means its midnight); raise InvalidInput unless it lies after now."""
    from robson.domain.monitoring import DURATION, parse_duration  # loaded only to read an expiry

    raw = str(text).strip()
    if DURATION.match(raw):
        moment = now + parse_duration(raw, "expires")
    else:
        iso = raw.replace(" ", "T")
        iso = iso[:-1] + "+00:00" if iso.endswith(("Z", "z")) else iso
        try:
            moment = datetime.fromisoformat(iso)
        except ValueError:
            raise InvalidInput(f"expires must be a duration like 90m, 4h, 2d or 1w, or a UTC time like "
                               f"2021-06-22T18:00, got {text!r}") from None
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    if moment <= now:
        raise InvalidInput(f"expires {moment:%Y-%m-%d %H:%M} UTC is not after now ({now:%Y-%m-%d %H:%M} UTC): "
                           "a waiting entry must have time left to fill")
    return moment


def entry_side_problem(side: Side, order: EntryOrder, entry: Decimal, market: Decimal) -> str | None:
    """Say why a waiting entry at entry cannot wait with the market at market, or None.

    A limit buy waits below the market (a sell above); a stop buy waits above it (a sell below).
    An entry on the wrong side would fill at once: that is a market order, not a waiting one.
    """
    if order is EntryOrder.MARKET:
        return None
    wants_below = (order is EntryOrder.LIMIT) == (side is Side.BUY)
    if (entry < market) if wants_below else (entry > market):
        return None
    where = "below" if wants_below else "above"
    kind = f"a {order.value} {side.value.lower()}"
    why = "waits for the price to fall to it" if wants_below else "waits for the price to rise to it"
    return (f"{kind} entry must be {where} the market: it {why}, and {fmt(entry)} is "
            f"{'at' if entry == market else ('above' if entry > market else 'below')} the market {fmt(market)}, "
            "so it would fill at once")


class IntentSource(StrEnum):
    MANUAL = "manual"
    PATTERN = "pattern"


@dataclass(frozen=True, slots=True)
class TradingIntent:
    """What to trade and why, with the sizing that the risk rule produced."""

    id: str
    symbol: str
    side: Side
    status: IntentStatus
    strategy: str
    source: IntentSource
    timeframe: str
    capital: Decimal
    risk_percent: Decimal  # the strategy's risk per trade used for sizing
    entry: Decimal
    stop: Decimal
    stop_method: str  # which method produced the stop, e.g. "technical: 2nd support"
    quantity: Decimal
    target: Decimal | None
    created_at: datetime
    updated_at: datetime
    note: str | None = None
    confidence: Decimal | None = None
    signal_id: str | None = None
    validation: dict[str, Any] | None = None  # the last validation report
    validated_at: datetime | None = None
    execution: dict[str, Any] | None = None  # execution result or failure reason
    operation_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # sizing breakdown for display
    entry_order: EntryOrder = EntryOrder.MARKET
    expires_at: datetime | None = None  # when a waiting entry's order is cancelled if it has not filled

    @property
    def waits(self) -> bool:
        """True for a limit or stop entry: its order rests until the price reaches the entry."""
        return self.entry_order is not EntryOrder.MARKET

    def apply(self, event: IntentEvent, at: datetime, **changes: Any) -> TradingIntent:
        """Return the intent after event, with other field changes; raise IllegalTransition."""
        status = next_status(self.status, event)
        return dataclasses.replace(self, status=status, updated_at=at, **changes)

    @property
    def quote_asset(self) -> str:
        """The asset the plan was priced in, as plan recorded it (USDT for an intent without that detail)."""
        return self.details.get("quote_asset", "USDT")

    @property
    def client_order_prefix(self) -> str:
        """The prefix of every client order id of this intent (≤ 36 chars with a suffix)."""
        return f"rb-{self.id}"
