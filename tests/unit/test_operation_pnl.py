"""Operation P&L: realized after both fees, unrealized marks, R multiples."""

from datetime import UTC, datetime
from decimal import Decimal as D

from robson.domain.market import Side
from robson.domain.operation import CloseReason, Operation, OperationStatus, mark, r_multiple

T0 = datetime(2021, 7, 1, tzinfo=UTC)


def operation(side=Side.BUY, entry=D("100"), stop=D("95"), qty=D("2"), fee=D("0.2")):
    return Operation(id="op-1", intent_id="pl-1", symbol="XUSDT", side=side, status=OperationStatus.ACTIVE,
                     mode="paper", strategy="all-in", quantity=qty, entry_price=entry, entry_fee=fee,
                     initial_stop=stop, stop=stop, target=None, opened_at=T0, updated_at=T0)


def test_realized_pnl_subtracts_both_fees():
    closed = operation().close(exit_price=D("110"), exit_fee=D("0.22"), reason=CloseReason.MANUAL, at=T0)
    assert closed.realized_pnl == D("20") - D("0.2") - D("0.22")
    assert closed.status is OperationStatus.CLOSED
    assert r_multiple(closed) == (D("19.58") / D("10"))


def test_short_profits_when_price_falls():
    op = operation(side=Side.SELL, entry=D("100"), stop=D("105"))
    closed = op.close(exit_price=D("90"), exit_fee=D("0"), reason=CloseReason.TARGET, at=T0)
    assert closed.realized_pnl == D("20") - D("0.2")


def test_mark_reports_unrealized_pnl_r_and_distance_to_stop():
    m = mark(operation(), D("105"), D("0.001"))
    exit_fee = D("105") * D("2") * D("0.001")
    assert m.unrealized_pnl == D("10") - D("0.2") - exit_fee
    assert m.r_multiple == m.unrealized_pnl / D("10")
    assert m.distance_to_stop == D("10")
    assert m.distance_to_stop_percent == D("10") / D("105") * 100
