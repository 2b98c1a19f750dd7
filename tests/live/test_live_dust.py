"""A holding too small for any order is dust: recorded once, said clearly, never retried (issue 10 item 6).

Binance refuses every order below LOT_SIZE's minimum quantity or the minimum order value
(MIN_NOTIONAL 10 USDT in the 2021 filters): such a holding can be neither protected by a stop nor
sold, so robson stops trying instead of failing on every monitor tick.
"""

from __future__ import annotations

import json
from decimal import Decimal

from tests.live.conftest import Live

DUST_FILL = "0.0003"  # 9 USDT at 30000, under the 10 USDT minimum order value


def test_an_entry_filled_below_the_minimum_order_value_is_left_as_dust_and_never_retried(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.limit_next_market_fill("BTCUSDT", DUST_FILL)

    executed = live.run("execute", planned["id"], "--live", "--acknowledge-risk")
    requests_after_execute = len(live.server.requests)
    ticks = [live.run("monitor", "--once", "--json") for _ in range(2)]
    status = live.run("operation", "status", "--json")

    assert executed.exit_code == 1
    assert executed.stderr.startswith("Error: ") and "Traceback" not in executed.stderr
    for fragment in (f"filled only {DUST_FILL}", "below the minimum order value of 10 USDT", "is DUST",
                     "not watched"):
        assert fragment in executed.stderr, executed.stderr
    [entry] = live.orders()  # neither a stop nor an exit was ever sent: Binance would refuse both
    assert entry["type"] == "MARKET" and Decimal(entry["executedQty"]) == Decimal(DUST_FILL)
    [operation] = live.ok("operation", "list")["operations"]
    assert (operation["status"], operation["realized_pnl"], operation["quantity"]) == ("DUST", None, "0.00029")
    assert live.ok("plan", "show", planned["id"])["status"] == "EXECUTED"
    assert live.ok("operation", "list", "--status", "DUST")["operations"] == [operation]
    trail = [e["kind"] for e in live.ok("operation", "show", operation["id"])["audit"]]
    assert "left_as_dust" in trail
    for tick in ticks:  # not watched: nothing to check, nothing sent, exit 0
        assert tick.exit_code == 0, tick.stderr
        assert json.loads(tick.stdout)["checked"] == 0
    assert [r for r in live.server.requests[requests_after_execute:] if r.method != "GET"] == []
    assert status.exit_code == 0 and json.loads(status.stdout) == {"operations": [], "executing": []}
    assert live.ok("report")["overall"]["trades"] == 0  # no P&L booked for a holding nobody sold


def test_a_rest_below_the_minimum_after_a_partial_stop_fill_closes_at_the_fills_instead_of_retrying(
        live: Live) -> None:
    planned = live.planned_and_validated()
    executed = live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    held = Decimal(executed["operation"]["quantity"])
    stop_id = f"rb-{planned['id']}-S"
    live.server.fill_partly(stop_id, held - Decimal("0.0002"))  # 0.0002 BTC (about 6 USDT) is left
    live.server.cancel_by_hand(stop_id)

    first = live.run("monitor", "--once", "--json")
    second = live.run("monitor", "--once", "--json")

    assert first.exit_code == 0, first.stderr
    [check] = json.loads(first.stdout)["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop")
    [operation] = live.ok("operation", "list")["operations"]
    assert (operation["status"], operation["close_reason"]) == ("CLOSED", "stop")
    assert "the rest is dust" in first.stderr
    assert second.exit_code == 0 and json.loads(second.stdout)["checked"] == 0
    assert [o["clientOrderId"] for o in live.orders()] == [f"rb-{planned['id']}-E", stop_id, f"rb-{planned['id']}-T"]


def test_a_position_the_exchange_minimum_outgrew_is_left_as_dust_by_the_monitor_once(live: Live) -> None:
    planned = live.planned_and_validated()
    live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    live.server.use_notional_filter("2000")  # Binance raised the minimum order value above the whole position
    live.server.cancel_by_hand(f"rb-{planned['id']}-S")

    first = live.run("monitor", "--once", "--json")
    second = live.run("monitor", "--once", "--json")

    assert first.exit_code == 0, first.stderr
    assert "below the minimum order value of 2000 USDT" in first.stderr and "left as dust" in first.stderr
    [operation] = live.ok("operation", "list")["operations"]
    assert (operation["status"], operation["realized_pnl"]) == ("DUST", None)
    assert second.exit_code == 0 and json.loads(second.stdout)["checked"] == 0
    assert [o["type"] for o in live.orders()] == ["MARKET", "STOP_LOSS_LIMIT", "LIMIT_MAKER"]  # nothing re-sent
