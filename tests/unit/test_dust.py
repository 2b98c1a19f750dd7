"""Dust: a holding below any order the exchange takes (LOT_SIZE min, MIN_NOTIONAL) is left, not retried."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from robson.domain.market import Side, SymbolInfo
from robson.domain.operation import Operation, OperationStatus
from robson.errors import IllegalTransition

BTCUSDT = SymbolInfo("BTCUSDT", "BTC", "USDT", tick_size=Decimal("0.01"), step_size=Decimal("0.00001"),
                     min_qty=Decimal("0.00001"), min_notional=Decimal("10"))
AT = datetime(2021, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("quantity", "price", "dust"), [
    ("0", "30000", True),                 # nothing left
    ("0.000009", "30000", True),          # under LOT_SIZE's minimum quantity
    ("0.00033", "30000", True),           # 9.90 USDT < 10
    ("0.00034", "30000", False),          # 10.20 USDT
    ("0.00034", None, False),             # no price: only the quantity rules judge
])
def test_a_quantity_is_dust_below_lot_size_min_or_min_notional(quantity: str, price: str | None, dust: bool) -> None:
    assert BTCUSDT.below_minimum(Decimal(quantity), Decimal(price) if price else None) is dust


def test_the_dust_reason_names_the_filter_and_its_numbers() -> None:
    assert BTCUSDT.dust_reason(Decimal("0.00029"), Decimal("30000")) == (
        "0.00029 BTC is worth 8.70 USDT, below the minimum order value of 10 USDT")
    assert BTCUSDT.dust_reason(Decimal("0.000001"), Decimal("30000")) == (
        "0.000001 BTC is below the LOT_SIZE minimum of 0.00001")


def test_only_an_active_operation_is_left_as_dust_and_it_books_no_pnl() -> None:
    op = Operation(id="op-1", intent_id="pl-1", symbol="BTCUSDT", side=Side.BUY, status=OperationStatus.ACTIVE,
                   mode="live", strategy="all-in", quantity=Decimal("0.00029"), entry_price=Decimal("30000"),
                   entry_fee=Decimal("0.009"), initial_stop=Decimal("29000"), stop=Decimal("29000"), target=None,
                   opened_at=AT, updated_at=AT)

    dust = op.leave_as_dust(at=AT)

    assert (dust.status, dust.realized_pnl, dust.closed_at, dust.close_reason) == (OperationStatus.DUST, None, AT, None)
    with pytest.raises(IllegalTransition):
        dust.leave_as_dust(at=AT)
