"""Limit and stop entries LIVE, end to end: robson's commands against the loopback Binance server.

A limit buy is an OTOCO: its protective OCO waits PENDING_NEW on Binance and goes live by itself when
the entry has fully filled, so the monitor only has to find it. A part fill is protected by robson: the
rest of the list is cancelled and what is held gets a stop of its own (-S1). A stop entry is protected
once it has filled. Expiry and `plan cancel` cancel the order on Binance; the guards run again while it
waits, and a fill they refuse after the fact is exited at market.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tests.live.conftest import Live
from tests.live.test_live_monitor import open_protective, show
from tests.reliability.helpers import invariant_breaches

ENTRY = Decimal("29800")


def working(live: Live, *plan_args: str) -> dict[str, Any]:
    """Plan a waiting entry (stop 29000, target 31500), validate and execute it LIVE; return the intent."""
    planned = live.planned_and_validated(*plan_args)
    done = live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    assert done["working"] is True and done["operation"] is None
    assert done["intent"]["status"] == "WORKING"
    return done["intent"]


def tick(live: Live) -> dict[str, Any]:
    return live.ok("monitor", "--once")


def server_order(live: Live, client_id: str) -> dict[str, Any]:
    [order] = [o for o in live.server.orders() if o["clientOrderId"] == client_id]
    return order


def held_and_protected(live: Live) -> tuple[Decimal, Decimal]:
    """What the account holds in BTC, and what the open protective stops would sell."""
    btc = live.server.balances()["BTC"]
    return btc.free + btc.locked, sum((Decimal(o["origQty"]) - Decimal(o["executedQty"])
                                       for o in open_protective(live)), Decimal(0))


def test_a_limit_entry_waits_on_binance_as_an_otoco_and_its_oco_protects_the_fill(live: Live) -> None:
    intent = working(live, "--entry", str(ENTRY), "--order", "limit")
    entry_id, stop_id = f"rb-{intent['id']}-E", f"rb-{intent['id']}-S"

    assert (server_order(live, entry_id)["type"], server_order(live, entry_id)["status"]) == ("LIMIT", "NEW")
    assert server_order(live, stop_id)["status"] == "PENDING_NEW"
    assert [o for o in open_protective(live) if o["status"] != "PENDING_NEW"] == []  # nothing live to protect yet
    assert [e["outcome"] for e in tick(live)["entries"]] == ["waiting"]

    live.server.set_price("BTCUSDT", "29700")  # the book trades through 29800: the limit fills, the OCO goes live
    report = tick(live)

    [entry] = report["entries"]
    assert (entry["outcome"], entry["status"]) == ("filled", "EXECUTED")
    op = show(live, entry["operation_id"])
    assert (op["status"], Decimal(op["entry_price"]), Decimal(op["stop"]), Decimal(op["target"])) == (
        "ACTIVE", ENTRY, Decimal("29000"), Decimal("31500"))
    held, protected = held_and_protected(live)
    # The OTOCO's legs cover what the fill left after Binance's commission in BTC, down to the lot step.
    assert protected == Decimal(op["quantity"]) and Decimal(0) <= held - protected < Decimal("0.00001")
    [stop] = open_protective(live)
    assert stop["clientOrderId"] == stop_id  # the OTOCO's own leg: nothing was placed beside it
    assert len(live.server.orders()) == 3  # entry, stop leg, target leg
    assert invariant_breaches(live.db) == []


def test_a_part_fill_is_protected_at_once_and_the_rest_of_the_entry_cancelled(live: Live) -> None:
    intent = working(live, "--entry", str(ENTRY), "--order", "limit")
    entry_id = f"rb-{intent['id']}-E"
    live.server.fill_partly(entry_id, "0.1")  # of 0.33 or so: the OTOCO's legs stay PENDING_NEW

    report = tick(live)

    [entry] = report["entries"]
    assert (entry["outcome"], entry["status"]) == ("filled", "EXECUTED")
    assert server_order(live, entry_id)["status"] == "CANCELED"
    assert server_order(live, f"rb-{intent['id']}-S")["status"] == "CANCELED"
    op = show(live, entry["operation_id"])
    assert Decimal(op["quantity"]) == Decimal("0.0999")  # 0.1 less the 0.1 % commission Binance took in BTC
    [stop] = open_protective(live)
    assert stop["clientOrderId"] == f"rb-{intent['id']}-S1"
    assert held_and_protected(live) == (Decimal("0.0999"), Decimal("0.0999"))
    assert live.server.balances()["USDT"].locked == 0  # nothing left waiting to buy
    assert invariant_breaches(live.db) == []


def test_a_stop_entry_triggers_on_the_breakout_and_robson_protects_it(live: Live) -> None:
    intent = working(live, "--entry", "30500", "--order", "stop", "--target", "32000")
    entry_id = f"rb-{intent['id']}-E"
    assert server_order(live, entry_id)["type"] == "STOP_LOSS_LIMIT"

    live.server.set_price("BTCUSDT", "30600")
    report = tick(live)

    [entry] = report["entries"]
    assert entry["outcome"] == "filled"
    op = show(live, entry["operation_id"])
    held, protected = held_and_protected(live)
    # Binance took its 0.1 % commission in BTC: what is held, down to the lot step, is what the stop sells.
    assert protected == Decimal(op["quantity"]) and Decimal(0) <= held - protected < Decimal("0.00001")
    [stop] = open_protective(live)
    assert stop["clientOrderId"] == f"rb-{intent['id']}-S"
    assert invariant_breaches(live.db) == []


def test_an_expired_entry_is_cancelled_on_binance_and_its_cash_released(live: Live) -> None:
    intent = working(live, "--entry", str(ENTRY), "--order", "limit", "--expires", "1h")
    live.server.clock_offset_ms += 61 * 60_000  # Binance's clock, and so robson's, an hour later

    report = tick(live)

    [entry] = report["entries"]
    assert (entry["outcome"], entry["status"]) == ("expired", "EXPIRED")
    assert live.server.open_orders() == []
    assert live.server.balances()["USDT"].locked == 0
    assert show_intent(live, intent["id"])["status"] == "EXPIRED"


def test_plan_cancel_cancels_the_waiting_entry_on_binance(live: Live) -> None:
    intent = working(live, "--entry", str(ENTRY), "--order", "limit")

    cancelled = live.ok("plan", "cancel", intent["id"])

    assert (cancelled["status"], cancelled["outcome"]) == ("CANCELLED", "cancelled")
    assert live.server.open_orders() == []
    assert live.server.balances()["USDT"].locked == 0
    assert tick(live)["entries"] == []


def test_a_part_filled_entry_cancelled_by_hand_keeps_and_protects_its_part(live: Live) -> None:
    intent = working(live, "--entry", str(ENTRY), "--order", "limit")
    live.server.fill_partly(f"rb-{intent['id']}-E", "0.1")

    result = live.ok("plan", "cancel", intent["id"])

    assert (result["status"], result["outcome"]) == ("EXECUTED", "filled")
    assert "had filled" in result["message"]
    assert held_and_protected(live) == (Decimal("0.0999"), Decimal("0.0999"))


def stopped_out_meanwhile(live: Live) -> None:
    """Open a market trade on BTCUSDT and let Binance fill its stop: a stop-out, so the cooldown guard fails."""
    other = live.planned_and_validated("0.01")
    live.ok("execute", other["id"], "--live", "--acknowledge-risk")
    live.server.set_price("BTCUSDT", "28900")  # through its stop at 29000: Binance fills the stop leg
    report = tick(live)
    assert [c["exit"]["reason"] for c in report["operations"] if c["exit"]] == ["stop"]


def test_a_waiting_entry_the_guards_now_refuse_is_cancelled_before_it_fills(live: Live) -> None:
    intent = working(live, "--entry", "30500", "--order", "stop")
    stopped_out_meanwhile(live)

    report = tick(live)

    [entry] = report["entries"]
    assert (entry["outcome"], entry["status"]) == ("refused", "FAILED")
    assert "cooldown" in entry["message"]
    assert server_order(live, f"rb-{intent['id']}-E")["status"] == "CANCELED"


def test_a_fill_the_guards_refuse_after_the_fact_is_exited_at_market_and_reported(live: Live) -> None:
    working(live, "--entry", "30500", "--order", "stop")
    stopped_out_meanwhile(live)  # that tick looked at the entry before the stop-out was booked: still waiting
    live.server.set_price("BTCUSDT", "30600")  # before the next tick, Binance triggers and fills the entry

    report = tick(live)

    [entry] = report["entries"]
    assert entry["outcome"] == "filled"
    assert "refused at fill time by the guards: cooldown" in entry["message"] and "exited at market" in entry["message"]
    op = show(live, entry["operation_id"])
    assert op["status"] == "CLOSED"
    assert open_protective(live) == []
    assert "the fill is exited at market: refused at fill time by the guards: cooldown" in [
        e["message"] for e in op["audit"] if e["kind"] == "execution_failed"][0]


def show_intent(live: Live, intent_id: str) -> dict[str, Any]:
    return live.ok("plan", "show", intent_id)


def test_the_monitor_json_names_each_waiting_entry(live: Live) -> None:
    intent = working(live, "--entry", str(ENTRY), "--order", "limit")

    result = live.run("monitor", "--once", "--json")

    doc = json.loads(result.stdout)
    assert [(e["intent_id"], e["order"], e["outcome"]) for e in doc["entries"]] == [(intent["id"], "limit", "waiting")]
