"""`operation close` and `operation modify` on LIVE operations, and their lock with the live monitor."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from tests.databases import store_url
from tests.live.binance_server import Fault
from tests.live.conftest import PRICE, Live, seed_candles
from tests.live.test_live_monitor import (
    COMMISSION,
    HOUR_MS,
    OCO,
    PAST_RECV_WINDOW_MS,
    executed,
    monitor,
    open_protective,
    pnl,
    sells,
    show,
    stop_id,
)

HOLD_LOCK = """
import sys
from robson.adapters.store import SqlStore
with SqlStore(sys.argv[1]).lock(sys.argv[2], what="a test holding the lock"):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextmanager
def lock_held_by_another_process(live: Live, name: str) -> Iterator[None]:
    """Hold a store lock from a child process for the block (a second robson command, as far as robson knows)."""
    child = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, store_url(live.db), name], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield
    finally:
        child.communicate(timeout=30)


# --- operation close ----------------------------------------------------------------------------


def test_closing_after_the_monitor_replaced_the_stop_cancels_the_new_generation_and_sells(live: Live) -> None:
    op = executed(live)
    live.server.cancel_by_hand(stop_id(op))
    monitor(live)  # places -S1
    live.server.set_price("BTCUSDT", "30500")

    closed = live.ok("operation", "close", op["id"])

    assert (closed["status"], closed["close_reason"], Decimal(closed["exit_price"])) == ("CLOSED", "manual",
                                                                                        Decimal("30500"))
    assert live.server.open_orders() == []
    assert [o["status"] for o in live.orders("STOP_LOSS_LIMIT")] == ["CANCELED", "CANCELED"]
    [sell] = sells(live)
    assert Decimal(sell["qty"]) == Decimal(op["quantity"])
    assert Decimal(closed["realized_pnl"]) == pnl(op, Decimal("30500"), Decimal(sell["commission"]))


def test_closing_after_the_stop_filled_unnoticed_closes_as_stop_at_its_fill_and_sells_nothing(live: Live) -> None:
    op = executed(live)
    live.server.set_price("BTCUSDT", "28990")  # the stop fills; no monitor tick has seen it

    result = live.run("operation", "close", op["id"])

    assert result.exit_code == 0, result.stderr
    assert "by its stop order on Binance, which filled before this close" in " ".join(result.stdout.split())
    closed = show(live, op["id"])
    [sell] = sells(live)
    assert (closed["close_reason"], Decimal(closed["exit_price"])) == ("stop", Decimal("28990"))
    assert Decimal(closed["exit_fee"]) == Decimal(sell["commission"])
    assert len(live.orders("MARKET")) == 1  # the entry only: nothing was sold twice


def test_closing_sells_only_what_a_partly_filled_stop_left_and_averages_the_fills(live: Live) -> None:
    op = executed(live)
    quantity = Decimal(op["quantity"])
    part = Decimal("0.01")
    live.server.fill_partly(stop_id(op), part, "28990")  # the market is back at 30000 and the rest rests

    closed = live.ok("operation", "close", op["id"])

    first, rest = sells(live)
    assert (Decimal(first["qty"]), Decimal(rest["qty"])) == (part, quantity - part)
    average = (part * Decimal("28990") + (quantity - part) * Decimal("30000")) / quantity
    fees = Decimal(first["commission"]) + Decimal(rest["commission"])
    assert (Decimal(closed["exit_price"]), Decimal(closed["exit_fee"])) == (average, fees)
    assert Decimal(closed["realized_pnl"]) == pnl(op, average, fees)
    assert live.server.open_orders() == []


# --- the monitor and the commands take turns ----------------------------------------------------------


def test_the_monitor_skips_an_operation_another_command_is_changing(live: Live) -> None:
    op = executed(live)
    live.server.cancel_by_hand(stop_id(op))

    with lock_held_by_another_process(live, f"operation:{op['id']}"):
        busy = live.run("monitor", "--once", "--json")
    free = live.run("monitor", "--once", "--json")

    assert busy.exit_code == 0, busy.stderr
    report = json.loads(busy.stdout)
    assert report["skipped"] == [{"operation_id": op["id"],
                                  "reason": "being changed by another command; checked next tick"}]
    assert report["operations"] == []
    assert free.exit_code == 0, free.stderr
    [stop] = open_protective(live)
    assert stop["clientOrderId"] == stop_id(op, 1)


def test_close_waits_for_a_monitor_check_and_gives_up_with_exit_4_sending_nothing(live: Live,
                                                                                 monkeypatch) -> None:
    op = executed(live)
    monkeypatch.setattr("robson.application.watching.OPERATION_LOCK_WAIT_SECONDS", 0.2)
    orders_before = live.server.orders()

    with lock_held_by_another_process(live, f"operation:{op['id']}"):
        result = live.run("operation", "close", op["id"])

    assert result.exit_code == 4, result.stderr
    assert f"another command on operation {op['id']} is already running" in " ".join(result.stderr.split())
    assert live.server.orders() == orders_before
    assert show(live, op["id"])["status"] == "ACTIVE"


def test_close_does_not_wait_for_the_monitor_loops_own_lock(live: Live) -> None:
    op = executed(live)

    with lock_held_by_another_process(live, "monitor"):
        closed = live.ok("operation", "close", op["id"])

    assert closed["status"] == "CLOSED"


# --- operation modify -----------------------------------------------------------------------------------


def test_tightening_a_live_stop_replaces_it_on_binance_with_one_open_stop_and_audits_it(live: Live) -> None:
    op = executed(live)

    modified = live.ok("operation", "modify", op["id"], "--stop", "29500")

    assert (modified["changed"], Decimal(modified["operation"]["stop"])) == (True, Decimal("29500"))
    assert modified["order"]["client_order_id"] == stop_id(op, 1)
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"]), Decimal(stop["origQty"])) == (
        stop_id(op, 1), Decimal("29500"), Decimal(op["quantity"]))
    [target] = [o for o in live.server.open_orders() if o["type"] == "LIMIT_MAKER"]
    assert Decimal(target["price"]) == Decimal("31500")
    audit = show(live, op["id"])["audit"]
    [moved] = [e for e in audit if e["kind"] == "stop_moved"]
    assert {k: moved["data"][k] for k in ("old_stop", "new_stop", "reason", "client_order_id",
                                           "new_client_order_id")} == {
        "old_stop": "29000", "new_stop": "29500", "reason": "manual", "client_order_id": stop_id(op),
        "new_client_order_id": stop_id(op, 1)}
    assert any(e["kind"] == "stop_placed" and e["data"].get("client_order_id") == stop_id(op, 1) for e in audit)


def test_moving_a_live_target_replaces_the_oco(live: Live) -> None:
    op = executed(live)

    live.ok("operation", "modify", op["id"], "--target", "32000")

    [target] = [o for o in live.server.open_orders() if o["type"] == "LIMIT_MAKER"]
    assert (target["clientOrderId"], Decimal(target["price"])) == (f"rb-{op['intent_id']}-T1", Decimal("32000"))
    assert len(open_protective(live)) == 1


def test_loosening_a_live_stop_is_refused_without_allow_loosen_and_nothing_is_sent(live: Live) -> None:
    op = executed(live)
    orders_before = live.server.orders()

    refused = live.run("operation", "modify", op["id"], "--stop", "28800")
    allowed = live.ok("operation", "modify", op["id"], "--stop", "28800", "--allow-loosen")

    assert refused.exit_code == 3, refused.stderr
    assert "Traceback" not in refused.stderr
    assert orders_before[-1]["status"] == "NEW"
    assert Decimal(allowed["operation"]["stop"]) == Decimal("28800")
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (stop_id(op, 1), Decimal("28800"))


def test_a_replace_lost_during_modify_is_finished_by_the_monitor_without_a_duplicate(live: Live) -> None:
    op = executed(live)
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", OCO)

    lost = live.run("operation", "modify", op["id"], "--stop", "29500")
    too_soon = live.run("monitor", "--once", "--json")
    live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    settled = live.run("monitor", "--once", "--json")

    assert lost.exit_code == 1, lost.stderr
    said = " ".join(lost.stderr.split())
    assert "are saved, but replacing" in said and "next `robson monitor` tick" in said and "Traceback" not in said
    assert too_soon.exit_code == 1
    assert settled.exit_code == 0, settled.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (stop_id(op, 1), Decimal("29500"))
    assert len([o for o in live.server.orders() if o["clientOrderId"] == stop_id(op, 1)]) == 1
    assert Decimal(show(live, op["id"])["stop"]) == Decimal("29500")


def test_a_target_move_whose_replace_is_lost_is_finished_by_the_monitor_without_a_duplicate(live: Live) -> None:
    op = executed(live)
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", OCO)

    lost = live.run("operation", "modify", op["id"], "--target", "32000")
    live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    settled = live.run("monitor", "--once", "--json")

    assert lost.exit_code == 1, lost.stderr
    assert settled.exit_code == 0, settled.stderr
    [target] = [o for o in live.server.open_orders() if o["type"] == "LIMIT_MAKER"]
    assert (target["clientOrderId"], Decimal(target["price"])) == (f"rb-{op['intent_id']}-T1", Decimal("32000"))
    assert len([o for o in live.server.orders() if o["clientOrderId"] == stop_id(op, 1)]) == 1
    assert [e["kind"] for e in show(live, op["id"])["audit"]].count("target_moved") == 1


def test_modify_after_the_stop_filled_closes_the_operation_and_changes_nothing(live: Live) -> None:
    op = executed(live)
    live.server.set_price("BTCUSDT", "28990")

    result = live.run("operation", "modify", op["id"], "--stop", "29500")

    assert result.exit_code == 2, result.stderr
    assert "before this change: nothing to modify" in " ".join(result.stderr.split())
    assert show(live, op["id"])["close_reason"] == "stop"


# --- partial fills across generations ---------------------------------------------------------------


def test_a_partly_filled_stop_replaced_then_filled_closes_at_the_weighted_average_of_both(live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.fill_partly(stop_id(op), part, "28990")
    live.server.cancel_by_hand(stop_id(op))
    live.server.set_price("BTCUSDT", "30000")
    monitor(live)  # -S1 for the rest
    [rest_stop] = open_protective(live)
    assert Decimal(rest_stop["origQty"]) == quantity - part
    live.server.set_price("BTCUSDT", "28950")

    report = monitor(live)

    [check] = report["operations"]
    first, rest = sells(live)
    assert (Decimal(first["price"]), Decimal(rest["price"]), Decimal(rest["qty"])) == (
        Decimal("28990"), Decimal("28950"), quantity - part)
    average = (part * Decimal("28990") + (quantity - part) * Decimal("28950")) / quantity
    fees = Decimal(first["commission"]) + Decimal(rest["commission"])
    assert (check["exit"]["reason"], Decimal(check["exit"]["price"]), Decimal(check["exit"]["fee"])) == (
        "stop", average, fees)
    closed = show(live, op["id"])
    assert Decimal(closed["realized_pnl"]) == pnl(op, average, fees)
    assert fees == (part * Decimal("28990") + (quantity - part) * Decimal("28950")) * COMMISSION
    assert "earlier partial fills" in closed["audit"][-1]["message"]


def test_a_time_exit_after_a_partial_fill_sells_only_what_is_held(live: Live) -> None:
    seed_candles(live.server, "BTCUSDT", "30m", PRICE)
    op = executed(live, "--strategy", "bounce-back")  # time exit after 48 candles of 30m
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.fill_partly(stop_id(op), part, "28990")
    live.server.clock_offset_ms += 25 * HOUR_MS  # the market stays at 30000: the rest of the stop keeps resting

    report = monitor(live)

    [check] = report["operations"]
    first, rest = sells(live)
    assert (check["exit"]["reason"], Decimal(rest["qty"])) == ("time_exit", quantity - part)
    average = (part * Decimal("28990") + (quantity - part) * Decimal("30000")) / quantity
    assert Decimal(check["exit"]["price"]) == average
    assert live.server.open_orders() == []


def test_replacing_the_targets_of_a_live_operation_is_refused_and_changes_nothing(live: Live) -> None:
    from tests.cli.conftest import assert_user_error, dump_database
    from tests.live.test_live_monitor import executed

    op = executed(live)
    before, orders = dump_database(live.db), live.server.orders()

    result = live.run("operation", "modify", op["id"], "--targets", "1R:50%,2R:rest")

    assert_user_error(result, 2, f"operation {op['id']} is live: --targets replaces the targets of paper operations only")
    assert dump_database(live.db) == before and live.server.orders() == orders
