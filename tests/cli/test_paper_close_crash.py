"""Closing a paper position is one transaction: a crash or a full disk leaves it whole, and the books stay true.

Before, `operation close` on paper took four steps (cancel the stop, record the send, fill the exit,
book the close): killed after the exit filled, the operation stayed ACTIVE and the next monitor tick
closed it at a target it never reached, booking money that never moved. Now the close is one
transaction, and an exit found FILLED without its close (left by an older robson) is booked at its own
fill. After each scenario the invariants hold: every CLOSED operation's P&L equals the cash its orders
moved, every ACTIVE one has exactly one open protective order.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from tests import databases
from tests.cli.conftest import dump_database, paper_balances, parsed
from tests.reliability.helpers import invariant_breaches

T = "2021-06-09T05:45"


def executed(robson) -> tuple[str, str]:
    intent = parsed(robson("--as-of", T, "plan", "buy", "BTCUSDT", "--strategy", "rescue-forces", "--json"))
    parsed(robson("--as-of", T, "validate", intent["id"], "--json"))
    operation = parsed(robson("--as-of", T, "execute", intent["id"], "--json"))["operation"]
    return intent["id"], operation["id"]


def test_a_close_is_booked_at_the_exit_it_filled_and_the_books_balance(robson, db_path):
    _, op_id = executed(robson)

    closed = parsed(robson("--as-of", "2021-06-09T06:00", "operation", "close", op_id, "--json"))

    assert closed["status"] == "CLOSED" and closed["close_reason"] == "manual"
    assert invariant_breaches(db_path) == []
    assert paper_balances(db_path)["BTC"] == (Decimal(0), Decimal(0))


def test_a_full_disk_in_the_middle_of_a_close_leaves_the_position_protected_and_untouched(robson, db_path,
                                                                                       monkeypatch):
    _, op_id = executed(robson)
    before = dump_database(db_path)
    from robson.adapters.store.session import SqlSession

    real_record = SqlSession.record

    def disk_full(self, event):  # the last write of the close: everything before it must roll back
        if event.kind.value == "closed":
            raise sqlite3.OperationalError("database or disk is full")
        return real_record(self, event)

    monkeypatch.setattr(SqlSession, "record", disk_full)
    result = robson("--as-of", "2021-06-09T06:00", "operation", "close", op_id)

    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert dump_database(db_path) == before  # the stop still NEW, no exit, balances as they were
    assert invariant_breaches(db_path) == []


def test_an_exit_filled_before_its_close_was_written_is_booked_at_its_own_fill(robson, db_path):
    # The state an interrupted close of an older robson left: stop cancelled, exit rb-…-X FILLED and its
    # cash moved, the operation still ACTIVE. Left alone, the monitor used to close it at its target.
    intent_id, op_id = executed(robson)
    stop_id, at = f"rb-{intent_id}-S", "2021-06-09T06:00:00.000000+00:00"
    [stop] = databases.fetch(db_path, "SELECT quantity FROM orders WHERE client_order_id = :id", {"id": stop_id})
    quantity, fill, fee = Decimal(stop["quantity"]), Decimal("33550.00"), Decimal("0.5")
    databases.execute(db_path, "UPDATE orders SET status = 'CANCELED' WHERE client_order_id = :id", {"id": stop_id})
    databases.execute(db_path, "INSERT INTO orders (client_order_id, exchange, symbol, side, type, quantity, status, "
                               "created_at, updated_at, filled_quantity, average_price, fee, fee_asset, intent_id) VALUES "
                               "(:id, 'paper', 'BTCUSDT', 'SELL', 'MARKET', :quantity, 'FILLED', :at, :at, :quantity, "
                               ":fill, :fee, 'USDT', :intent)",
                      {"id": f"rb-{intent_id}-X", "quantity": str(quantity), "at": at, "fill": str(fill),
                       "fee": str(fee), "intent": intent_id})
    [usdt] = databases.fetch(db_path, "SELECT free FROM balances WHERE account = 'paper' AND asset = 'USDT'")
    databases.execute(db_path, "UPDATE balances SET free = :free WHERE account = 'paper' AND asset = 'USDT'",
                      {"free": str(Decimal(usdt["free"]) + fill * quantity - fee)})
    databases.execute(db_path, "UPDATE balances SET free = '0', locked = '0' WHERE account = 'paper' AND asset = 'BTC'")

    doc = parsed(robson("--as-of", "2021-06-09T12:00", "monitor", "--once", "--json"))  # the target was hit meanwhile

    (check,) = doc["operations"]
    assert (check["status"], check["exit"]["reason"], check["exit"]["price"]) == ("CLOSED", "manual", "33550")
    shown = parsed(robson("operation", "show", op_id, "--json"))
    assert (shown["exit_price"], shown["exit_fee"]) == ("33550", "0.5")
    assert invariant_breaches(db_path) == []


def test_the_invariants_see_a_booking_that_does_not_match_the_cash(robson, db_path):
    _, op_id = executed(robson)
    robson("--as-of", "2021-06-09T06:00", "operation", "close", op_id, "--json")
    databases.execute(db_path, "UPDATE operations SET realized_pnl = '13.04' WHERE id = :id", {"id": op_id})

    assert invariant_breaches(db_path) == [f"{op_id} CLOSED with P&L 13.04 but its orders moved {_cash(db_path, op_id)}"]


def _cash(db_path, op_id) -> Decimal:
    from tests.reliability.helpers import read_ledger

    ledger = read_ledger(db_path)
    op = ledger.operations[op_id]
    total = Decimal(0)
    for order in ledger.orders_of(op["intent_id"]).values():
        filled = Decimal(order["filled_quantity"] or 0)
        if filled:
            notional = Decimal(order["average_price"]) * filled
            total += (notional if order["side"] == "SELL" else -notional) - Decimal(order["fee"])
    return total


@pytest.mark.parametrize("when", ["2021-06-09T06:00", "2021-06-09T11:00"])
def test_the_monitor_and_a_close_leave_true_books_whichever_comes_first(robson, db_path, when):
    _, op_id = executed(robson)
    parsed(robson("--as-of", when, "monitor", "--once", "--json"))
    robson("--as-of", when, "operation", "close", op_id, "--json")

    assert invariant_breaches(db_path) == []
