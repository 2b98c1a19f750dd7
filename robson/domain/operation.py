"""The operation (an open position) and its P&L arithmetic (SPEC §2).

ACTIVE → CLOSED (stop, target, trailing, time exit, manual) or CANCELLED, or DUST: a position
below the exchange's minimum order (LOT_SIZE min, MIN_NOTIONAL) that no order can protect or
sell; it stays in the wallet, books no P&L and is no longer watched. Created only when orders
were really placed, 1:1 with its intent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from robson.domain.market import Side
from robson.domain.money import ZERO, percent
from robson.errors import IllegalTransition


class OperationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    DUST = "DUST"  # too small for any order: left in the wallet, not watched, no P&L booked


class CloseReason(StrEnum):
    STOP = "stop"
    TARGET = "target"
    TRAILING = "trailing"
    TIME_EXIT = "time_exit"
    MANUAL = "manual"
    STOP_PLACEMENT_FAILED = "stop_placement_failed"
    END_OF_DATA = "end_of_data"  # a backtest's position still open when the data ends, valued at the last close


class OperationEvent(StrEnum):
    CLOSE = "close"
    CANCEL = "cancel"
    LEAVE_AS_DUST = "leave as dust"


TRANSITIONS: dict[tuple[OperationStatus, OperationEvent], OperationStatus] = {
    (OperationStatus.ACTIVE, OperationEvent.CLOSE): OperationStatus.CLOSED,
    (OperationStatus.ACTIVE, OperationEvent.CANCEL): OperationStatus.CANCELLED,
    (OperationStatus.ACTIVE, OperationEvent.LEAVE_AS_DUST): OperationStatus.DUST,
}


def next_status(status: OperationStatus, event: OperationEvent) -> OperationStatus:
    """Return the state after event; raise IllegalTransition for a pair not in the table."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        raise IllegalTransition(f"operation cannot go {status.value} -> {event.value}") from None


@dataclass(frozen=True, slots=True)
class Operation:
    """A position opened by executing an intent."""

    id: str
    intent_id: str
    symbol: str
    side: Side
    status: OperationStatus
    mode: str  # "paper" or "live"
    strategy: str
    quantity: Decimal
    entry_price: Decimal  # average fill
    entry_fee: Decimal  # in quote currency
    initial_stop: Decimal
    stop: Decimal
    target: Decimal | None
    opened_at: datetime
    updated_at: datetime
    quote_asset: str = "USDT"
    exit_price: Decimal | None = None
    exit_fee: Decimal = ZERO
    realized_pnl: Decimal | None = None
    close_reason: CloseReason | None = None
    closed_at: datetime | None = None
    last_checked_at: datetime | None = None

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.entry_price

    @property
    def initial_risk(self) -> Decimal:
        """The loss at the initial stop before fees: one R."""
        return self.quantity * abs(self.entry_price - self.initial_stop)

    def close(self, *, exit_price: Decimal, exit_fee: Decimal, reason: CloseReason, at: datetime) -> Operation:
        """Return the operation CLOSED at exit_price; raise IllegalTransition unless ACTIVE."""
        status = next_status(self.status, OperationEvent.CLOSE)
        pnl = gross_pnl(self.side, self.entry_price, exit_price, self.quantity) - self.entry_fee - exit_fee
        return dataclasses.replace(
            self,
            status=status,
            exit_price=exit_price,
            exit_fee=exit_fee,
            realized_pnl=pnl,
            close_reason=reason,
            closed_at=at,
            updated_at=at,
        )


    def leave_as_dust(self, *, at: datetime) -> Operation:
        """Return the operation DUST: held, but below any order the exchange takes; raise IllegalTransition unless ACTIVE."""
        status = next_status(self.status, OperationEvent.LEAVE_AS_DUST)
        return dataclasses.replace(self, status=status, closed_at=at, updated_at=at)


def gross_pnl(side: Side, entry: Decimal, exit_price: Decimal, quantity: Decimal) -> Decimal:
    return (exit_price - entry) * quantity * side.sign


@dataclass(frozen=True, slots=True)
class PositionMark:
    """An operation valued at a price: what status shows."""

    price: Decimal
    unrealized_pnl: Decimal  # after the entry fee paid and the estimated exit fee
    unrealized_percent: Decimal  # of the entry notional
    r_multiple: Decimal | None
    distance_to_stop: Decimal  # price − stop toward the loss side, in quote
    distance_to_stop_percent: Decimal


def mark(operation: Operation, price: Decimal, fee_rate: Decimal) -> PositionMark:
    """Value an open operation at price, as if closed now with a taker exit."""
    exit_fee = price * operation.quantity * fee_rate
    pnl = gross_pnl(operation.side, operation.entry_price, price, operation.quantity) - operation.entry_fee - exit_fee
    risk = operation.initial_risk
    distance = (price - operation.stop) * operation.side.sign
    return PositionMark(
        price=price,
        unrealized_pnl=pnl,
        unrealized_percent=percent(pnl, operation.notional),
        r_multiple=(pnl / risk) if risk else None,
        distance_to_stop=distance,
        distance_to_stop_percent=percent(distance, price),
    )


def r_multiple(operation: Operation) -> Decimal | None:
    """Realized P&L in multiples of the initial risk (None while open)."""
    if operation.realized_pnl is None or not operation.initial_risk:
        return None
    return operation.realized_pnl / operation.initial_risk
