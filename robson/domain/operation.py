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
from typing import TYPE_CHECKING

from robson.domain.market import Side
from robson.domain.money import ZERO, fmt, percent
from robson.errors import IllegalTransition, InvalidInput

if TYPE_CHECKING:  # ladder.py imports this module
    from robson.domain.ladder import Ladder


AVERAGE_PLACES = Decimal("1E-8")  # an exit averaged over parts is kept to 8 decimals


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
class PartialExit:
    """A part of an operation closed before the rest: by a ladder target, or by hand; a fill with its own fee."""

    number: int  # 1, 2 … in the order the parts were taken
    quantity: Decimal
    price: Decimal
    fee: Decimal  # in quote
    reason: CloseReason  # target, or manual
    at: datetime
    client_order_id: str  # the order that sold (or bought back) it
    target: int | None = None  # the ladder part's number, for a target

    @property
    def value(self) -> Decimal:
        return self.price * self.quantity


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
    parts: tuple[PartialExit, ...] = ()  # taken before the rest, oldest first; quantity stays the size as opened
    ladder: Ladder | None = None  # the scale-out targets still to walk (robson/domain/ladder.py)
    reached: int = 0  # the ladder's parts passed (filled or merged)

    @property
    def held(self) -> Decimal:
        """What is still held: the quantity opened less the parts taken."""
        return self.quantity - sum((p.quantity for p in self.parts), ZERO)

    @property
    def parts_pnl(self) -> Decimal:
        """The P&L the parts taken have realized so far, after their fees and their share of the entry fee."""
        exited = self.quantity - self.held
        gross = sum(((p.price - self.entry_price) * p.quantity for p in self.parts), ZERO) * self.side.sign
        fees = sum((p.fee for p in self.parts), ZERO)
        return gross - fees - (self.entry_fee * exited / self.quantity if self.quantity else ZERO)

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.entry_price

    @property
    def initial_risk(self) -> Decimal:
        """The loss at the initial stop before fees: one R."""
        return self.quantity * abs(self.entry_price - self.initial_stop)

    def close(self, *, exit_price: Decimal, exit_fee: Decimal, reason: CloseReason, at: datetime) -> Operation:
        """Return the operation CLOSED, what it still held sold at exit_price; raise IllegalTransition unless ACTIVE.

        With parts taken before, the P&L adds them up (each at its own price and fee), the exit
        price is the quantity-weighted average of every exit and the exit fee their sum.
        """
        status = next_status(self.status, OperationEvent.CLOSE)
        if self.parts:
            value = sum((p.value for p in self.parts), ZERO) + exit_price * self.held
            exit_fee += sum((p.fee for p in self.parts), ZERO)
            pnl = (value - self.entry_price * self.quantity) * self.side.sign - self.entry_fee - exit_fee
            exit_price = (value / self.quantity).quantize(AVERAGE_PLACES)  # shown; the P&L above is exact
        else:
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


    def take_part(self, *, quantity: Decimal, price: Decimal, fee: Decimal, reason: CloseReason, at: datetime,
                  client_order_id: str, target: int | None = None, reached: int | None = None) -> Operation:
        """Return the operation with a part closed (it stays ACTIVE); raise IllegalTransition unless ACTIVE,
        InvalidInput unless 0 < quantity < held (closing all of it is close)."""
        if self.status is not OperationStatus.ACTIVE:
            raise IllegalTransition(f"operation {self.id} is {self.status.value}: no part of it can be closed")
        if quantity <= 0 or quantity >= self.held:
            raise InvalidInput(f"a part must be more than 0 and less than the {fmt(self.held)} held, "
                               f"got {fmt(quantity)}")
        part = PartialExit(len(self.parts) + 1, quantity, price, fee, reason, at, client_order_id, target)
        return dataclasses.replace(self, parts=(*self.parts, part), updated_at=at,
                                   reached=self.reached if reached is None else reached)

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
    """Value an open operation at price, as if what it holds closed now with a taker exit (parts taken included)."""
    exit_fee = price * operation.held * fee_rate
    pnl = gross_pnl(operation.side, operation.entry_price, price, operation.quantity) - operation.entry_fee - exit_fee
    if operation.parts:
        pnl = operation.parts_pnl + gross_pnl(operation.side, operation.entry_price, price, operation.held) \
            - operation.entry_fee * operation.held / operation.quantity - exit_fee
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
