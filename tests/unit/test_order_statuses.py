"""An order attached to an entry (PENDING_NEW) is open, so it is cancelled rather than replaced, but it protects nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from robson.application.unresolved import Unresolved
from robson.domain.intent import IntentSource, IntentStatus, TradingIntent
from robson.domain.market import Side
from robson.domain.orders import OPEN_STATUSES, PROTECTING_STATUSES, Order, OrderStatus, OrderType

AT = datetime(2021, 6, 1, 12, tzinfo=UTC)
INTENT = TradingIntent(id="pl-7f3a9c2e", symbol="BTCUSDT", side=Side.BUY, status=IntentStatus.EXECUTING,
                       strategy="all-in", source=IntentSource.MANUAL, timeframe="15m", capital=Decimal("10000"),
                       risk_percent=Decimal("1"), entry=Decimal("29000"), stop=Decimal("28000"),
                       stop_method="fixed", quantity=Decimal("0.01"), target=Decimal("31500"), created_at=AT,
                       updated_at=AT)


def order(client_id: str, status: OrderStatus, order_type: OrderType = OrderType.OCO, filled: str = "0") -> Order:
    return Order(client_order_id=client_id, exchange="binance", symbol="BTCUSDT", side=Side.SELL, type=order_type,
                 quantity=Decimal("0.01"), status=status, created_at=AT, updated_at=AT, stop_price=Decimal("28000"),
                 filled_quantity=Decimal(filled))


def test_a_pending_protective_order_is_open_but_protects_nothing() -> None:
    assert OrderStatus.PENDING_NEW in OPEN_STATUSES
    assert OrderStatus.PENDING_NEW not in PROTECTING_STATUSES
    assert PROTECTING_STATUSES < OPEN_STATUSES


@pytest.mark.parametrize(("stop_status", "protected"), [
    (OrderStatus.PENDING_NEW, False),  # the entry filled in part: Binance holds the OCO back until it fills in full
    (OrderStatus.NEW, True),
    (OrderStatus.PARTIALLY_FILLED, True),
    (OrderStatus.CANCELED, False),
])
def test_a_partly_filled_entry_counts_as_protected_only_by_a_stop_on_the_book(stop_status: OrderStatus,
                                                                             protected: bool) -> None:
    entry = order("rb-pl-7f3a9c2e-E", OrderStatus.PARTIALLY_FILLED, OrderType.LIMIT, filled="0.004")

    unresolved = Unresolved(INTENT, entry, order("rb-pl-7f3a9c2e-S", stop_status), Decimal("29000"))

    assert unresolved.protected is protected
