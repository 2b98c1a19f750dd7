"""A LIVE execute whose stop is refused exits at market like the monitor: a partial fill never closes the operation."""

from __future__ import annotations

import json

import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.live.binance_server import Fault
from tests.live.conftest import PRICE, Live
from tests.live.test_live_monitor import PAST_RECV_WINDOW_MS, monitor, open_protective, pnl, sells, show
from tests.reliability.test_crash_during_execute import KILL_HOOK

ORDER = "/api/v3/order"
OCO = "/api/v3/orderList/oco"
PART = Decimal("0.01")
WOULD_TRIGGER = "Order would trigger immediately."


def stop_refused(live: Live, times: int = 1) -> dict[str, Any]:
    """Plan and validate a buy whose protective OCO Binance refuses `times` times."""
    planned = live.planned_and_validated()
    live.server.inject(Fault.error(-2010, WOULD_TRIGGER), "POST", OCO, times=times)
    return planned


def execute(live: Live, intent_id: str) -> Any:
    return live.run("execute", intent_id, "--live", "--acknowledge-risk")


def the_operation(live: Live) -> dict[str, Any]:
    [operation] = live.ok("operation", "list")["operations"]
    return show(live, operation["id"])


def exits(live: Live) -> list[tuple[str, str]]:
    """The exit MARKET orders on the server (after the entry): client id suffix and status."""
    return [(o["clientOrderId"].rsplit("-", 1)[1], o["status"]) for o in live.orders("MARKET")[1:]]


def said(result: Any) -> str:
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def test_an_exit_filled_in_part_sells_the_rest_under_the_next_generation_and_closes_at_the_average(
        live: Live) -> None:
    planned = stop_refused(live)
    live.server.limit_next_market_fill("BTCUSDT", PART, after=1)  # the entry fills; -X fills 0.01 and EXPIRES
    prices = iter(["30000", "29950", "29900"])  # entry, -X, -X1
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", next(prices))), "POST", ORDER, times=3)

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    assert "protective stop could not be placed" in said(result) and "closed at market" in said(result)
    assert exits(live) == [("X", "EXPIRED"), ("X1", "FILLED")]
    op = the_operation(live)
    quantity = Decimal(op["quantity"])
    first, rest = sells(live)
    assert (Decimal(first["qty"]), Decimal(rest["qty"])) == (PART, quantity - PART)
    average = (PART * Decimal("29950") + (quantity - PART) * Decimal("29900")) / quantity
    fees = Decimal(first["commission"]) + Decimal(rest["commission"])
    assert (op["status"], op["close_reason"]) == ("CLOSED", "stop_placement_failed")
    assert (Decimal(op["exit_price"]), Decimal(op["exit_fee"])) == (average, fees)
    assert Decimal(op["realized_pnl"]) == pnl(op, average, fees)
    assert live.server.open_orders() == []
    assert live.ok("plan", "show", planned["id"])["status"] == "EXECUTED"


def test_an_exit_the_book_cannot_finish_leaves_the_rest_protected_and_active_until_the_monitor_sells_it(
        live: Live) -> None:
    planned = stop_refused(live)
    live.server.limit_next_market_fill("BTCUSDT", PART, times=3, after=1)  # -X, -X1, -X2 each fill 0.01

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    op = the_operation(live)
    rest = Decimal(op["quantity"]) - 3 * PART
    message = said(result)
    assert f"sold only 0.03 of {op['quantity']} BTC: {rest} BTC is still held" in message
    assert f"protected by rb-{planned['id']}-S1 (stop @ 29000)" in message
    assert f"operation {op['id']} stays ACTIVE" in message and "run `robson monitor --once`" in message
    assert op["status"] == "ACTIVE"
    assert exits(live) == [("X", "EXPIRED"), ("X1", "EXPIRED"), ("X2", "EXPIRED")]
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["origQty"])) == (f"rb-{planned['id']}-S1", rest)

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop_placement_failed")
    assert exits(live)[-1] == ("X3", "FILLED")
    closed = show(live, op["id"])
    fees = sum(Decimal(t["commission"]) for t in sells(live))
    assert (Decimal(closed["exit_price"]), Decimal(closed["exit_fee"])) == (PRICE, fees)
    assert live.server.open_orders() == []
    assert sum(Decimal(t["qty"]) for t in sells(live)) == Decimal(op["quantity"])


def test_a_rest_that_can_be_neither_sold_nor_protected_is_reported_unprotected_and_the_monitor_finishes_it(
        live: Live) -> None:
    planned = stop_refused(live, times=2)  # the stop for the rest is refused too
    live.server.limit_next_market_fill("BTCUSDT", "0", times=3, after=1)  # nobody buys at all

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    op = the_operation(live)
    message = said(result)
    assert f"sold only 0 of {op['quantity']} BTC: {op['quantity']} BTC is still held, UNPROTECTED" in message
    assert "run `robson monitor --once`" in message
    assert op["status"] == "ACTIVE"
    assert open_protective(live) == []

    live.server.clock_offset_ms = PAST_RECV_WINDOW_MS  # the refused stop can no longer be thought in flight
    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop_placement_failed")
    assert sum(Decimal(t["qty"]) for t in sells(live)) == Decimal(op["quantity"])
    assert live.server.open_orders() == []


@pytest.mark.slow
def test_a_kill_after_a_partial_exit_sends_nothing_twice_and_the_monitor_sells_the_rest(live: Live,
                                                                                       tmp_path: Path) -> None:
    planned = stop_refused(live)
    live.server.limit_next_market_fill("BTCUSDT", PART, after=1)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")

    killed = live.run_process("execute", planned["id"], "--live", "--acknowledge-risk", PYTHONPATH=str(hook),
                              KILL_AT="robson.application.monitor_live:_Watch._settle_exit:after")
    again = live.run_process("execute", planned["id"], "--live", "--acknowledge-risk", "--json")
    live.server.clock_offset_ms = PAST_RECV_WINDOW_MS  # the refused stop can no longer be thought in flight
    report = monitor(live)

    assert killed.returncode == -signal.SIGKILL
    # The re-run sends nothing but is no success: the position may be held without a stop until the monitor runs.
    assert again.returncode == 1, again.stderr
    assert json.loads(again.stdout)["already_executed"] is True
    assert "exit at market was interrupted" in again.stderr and "robson monitor --once" in again.stderr
    assert exits(live) == [("X", "EXPIRED"), ("X1", "FILLED")]
    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop_placement_failed")
    op = the_operation(live)
    assert sum(Decimal(t["qty"]) for t in sells(live)) == Decimal(op["quantity"])
    assert live.server.open_orders() == []
