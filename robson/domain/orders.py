"""Orders as robson records them, and the audit trail of every step."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from robson.domain.market import Side, SymbolInfo
from robson.domain.money import ZERO


class OrderType(StrEnum):
    MARKET = "MARKET"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    OCO = "OCO"  # stop-loss-limit leg plus take-profit leg, one of which cancels the other
    LIMIT = "LIMIT"  # an entry that rests at its price until the market comes to it


class OrderStatus(StrEnum):
    PENDING_NEW = "PENDING_NEW"  # attached to an entry (an order list's pending order): live only once it fills
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class OrderRole(StrEnum):
    ENTRY = "E"
    STOP = "S"
    TARGET = "T"  # the take-profit leg of an OCO
    ORDER_LIST = "L"  # the OCO as a whole
    EXIT = "X"
    PART = "P"  # a part of the position closed before the rest (a ladder target, or by hand): -P1, -P2 …


def client_order_id(intent_id: str, role: OrderRole, attempt: int = 0, *, part: int | None = None) -> str:
    """Derive the deterministic client order id of an intent's order (≤ 36 chars, [A-Za-z0-9_-]).

    `rb-<intent>-<role><generation>`: `rb-pl-7f3a9c2e-S`, then `-S1`, `-S2` for re-placed stops.
    A scale-out ladder protects each part with its own OCO: part i's orders carry `P<i>` before the
    role, `rb-pl-7f3a9c2e-P2S` (its stop leg), `-P2T` (take-profit leg), `-P2L` (the order list), and a
    moved part's next OCO `-P2S1` / `-P2T1` / `-P2L1`. A part id never starts like a whole-position
    id (`-P` is no role), so whole-position lookups never see a part's orders, and the other way round.
    """
    suffix = role.value if attempt == 0 else f"{role.value}{attempt}"
    return f"rb-{intent_id}-{suffix}" if part is None else f"rb-{intent_id}-P{part}{suffix}"


def order_generation(intent_id: str, role: OrderRole, order_id: str, *, part: int | None = None) -> int | None:
    """Return the generation of one of the intent's ids for role (`-S` is 0, `-X2` is 2), None for another id.

    With part, the same for that ladder part's ids (`-P2S1` is part 2's stop, generation 1).
    """
    prefix = client_order_id(intent_id, role, part=part)
    if not order_id.startswith(prefix):
        return None
    rest = order_id[len(prefix):]
    if rest == "":
        return 0
    return int(rest) if rest.isdigit() else None


_PART_ID = re.compile(r"P([1-9][0-9]*)([A-Z])([0-9]*)")


def parse_part_order_id(intent_id: str, order_id: str) -> tuple[int, OrderRole, int] | None:
    """Return (part, role, generation) of one of the intent's ladder-part ids, None for any other id."""
    prefix = f"rb-{intent_id}-"
    match = _PART_ID.fullmatch(order_id[len(prefix):]) if order_id.startswith(prefix) else None
    if match is None or match.group(2) not in OrderRole._value2member_map_:
        return None
    return int(match.group(1)), OrderRole(match.group(2)), int(match.group(3) or 0)


@dataclass(frozen=True, slots=True)
class Order:
    client_order_id: str
    exchange: str  # "paper" or "binance"
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    price: Decimal | None = None  # limit price (stop-limit leg)
    stop_price: Decimal | None = None
    target_price: Decimal | None = None  # take-profit leg of an OCO
    filled_quantity: Decimal = ZERO
    average_price: Decimal | None = None
    fee: Decimal = ZERO
    fee_asset: str | None = None
    exchange_order_id: str | None = None
    intent_id: str | None = None
    operation_id: str | None = None


# Alive on the exchange: the order may still trade, so it is cancelled (never replaced beside it) to end it. An
# order attached to an entry waits as PENDING_NEW: alive, so open, but it protects nothing until the entry has fully
# filled; what protects a position is in PROTECTING_STATUSES.
OPEN_STATUSES = frozenset({OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})
PROTECTING_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED})  # a stop on the book, working


@dataclass(frozen=True, slots=True)
class Protection:
    """The protective order attached to an entry: it goes live only when the entry has fully filled."""

    stop_price: Decimal
    limit_price: Decimal  # the stop-limit leg's limit
    target_price: Decimal | None  # with a target: an OCO (take-profit LIMIT_MAKER + stop), else a lone stop
    client_order_id: str  # the stop's id (client_order_id(intent, OrderRole.STOP)); an OCO's other ids derive from it


def fee_in_quote(order: Order, info: SymbolInfo) -> Decimal:
    """Return the order's fee in quote currency (Binance takes it in the asset received)."""
    if order.fee_asset == info.base_asset:
        return order.fee * (order.average_price or ZERO)
    return order.fee


def held_quantity(entry: Order, info: SymbolInfo) -> Decimal:
    """Return what a filled entry leaves to protect: the fill less a fee paid in the base asset, on the LOT_SIZE step."""
    quantity = entry.filled_quantity
    if entry.side is Side.BUY and entry.fee_asset == info.base_asset:
        quantity -= entry.fee
    return info.round_quantity(quantity)


class AuditKind(StrEnum):
    PLANNED = "planned"
    VALIDATED = "validated"
    VALIDATION_FAILED = "validation_failed"
    CANCELLED = "cancelled"
    EXECUTION_STARTED = "execution_started"
    ENTRY_WORKING = "entry_working"  # a limit or stop entry rests on the exchange, waiting for its price
    ENTRY_EXPIRED = "entry_expired"  # its expiry passed: the order was cancelled
    ORDER_SENT = "order_sent"
    ORDER_REFUSED = "order_refused"  # the exchange refused a send for certain: it never reached the book
    ORDER_FILLED = "order_filled"
    STOP_PLACED = "stop_placed"
    STOP_MOVED = "stop_moved"
    TARGET_MOVED = "target_moved"  # by hand; a live one replaces the protective OCO like a stop move
    EXECUTED = "executed"
    EXECUTION_FAILED = "execution_failed"
    CLOSED = "closed"
    LEFT_AS_DUST = "left_as_dust"  # a holding below any order the exchange takes: no longer watched
    DEPOSIT = "deposit"  # the paper wallet's ledger: money in,
    WITHDRAWAL = "withdrawal"  # money out,
    WALLET_RESET = "wallet_reset"  # back to the configured starting balances
    ALERT_ADDED = "alert_added"  # a price alert: set,
    ALERT_FIRED = "alert_fired"  # reached by a closed candle (and its armed plan validated),
    ALERT_REMOVED = "alert_removed"  # or removed by hand


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    kind: AuditKind
    message: str
    intent_id: str | None = None
    operation_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
