"""LIVE execution end to end: robson → python-binance → HTTP → the loopback Binance, and back."""

from __future__ import annotations

from decimal import Decimal

from tests.live.conftest import PRICE, START_USDT, Live

COMMISSION = Decimal("0.001")  # Binance's taker commission, charged in the asset received


def test_plan_validate_execute_live_places_one_entry_and_one_oco_stop_with_the_planned_numbers(live: Live) -> None:
    planned = live.planned_and_validated()
    validation = live.ok("plan", "show", planned["id"])["validation"]

    executed = live.ok("execute", planned["id"], "--live", "--acknowledge-risk")

    quantity = Decimal(planned["quantity"])
    [entry] = live.orders("MARKET")
    assert (entry["side"], Decimal(entry["executedQty"]), entry["status"]) == ("BUY", quantity, "FILLED")
    assert entry["clientOrderId"] == f"rb-{planned['id']}-E"
    held = (quantity * (1 - COMMISSION)).quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    [stop] = live.orders("STOP_LOSS_LIMIT")
    [target] = live.orders("LIMIT_MAKER")
    assert (stop["side"], Decimal(stop["origQty"]), Decimal(stop["stopPrice"]), Decimal(stop["price"])) == (
        "SELL", held, Decimal("29000"), Decimal("28855"))  # limit 0.5 % beyond the stop
    assert (target["side"], Decimal(target["origQty"]), Decimal(target["price"])) == ("SELL", held, Decimal("31500"))
    assert stop["clientOrderId"] == f"rb-{planned['id']}-S"
    assert [r["guard"] for r in validation["results"]][-1] == "order test"
    assert validation["results"][-1]["verdict"] == "PASS"

    operation = executed["operation"]
    assert executed["mode"] == "live" and executed["intent"]["status"] == "EXECUTED"
    assert (operation["status"], operation["mode"]) == ("ACTIVE", "live")
    assert Decimal(operation["entry_price"]) == PRICE
    assert Decimal(operation["quantity"]) == held
    assert Decimal(operation["entry_fee"]) == quantity * COMMISSION * PRICE  # the BTC commission, in USDT
    balances = live.server.balances()
    assert balances["USDT"].free == START_USDT - quantity * PRICE
    assert balances["BTC"].locked == held


def test_running_execute_again_places_nothing_and_shows_the_operation(live: Live) -> None:
    planned = live.planned_and_validated()
    first = live.ok("execute", planned["id"], "--live", "--acknowledge-risk")

    again = live.ok("execute", planned["id"], "--live", "--acknowledge-risk")

    assert again["already_executed"] is True
    assert again["operation"]["id"] == first["operation"]["id"]
    assert len(live.orders("MARKET")) == 1 and len(live.orders("STOP_LOSS_LIMIT")) == 1
