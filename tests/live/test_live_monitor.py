"""The LIVE monitor on the loopback Binance: the exchange's stop is the truth, fills close, vanished stops return."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tests.live.binance_server import KLINE_INTERVALS_MS, Fault
from tests.live.conftest import PRICE, Live, seed_candles

COMMISSION = Decimal("0.001")
OCO = "/api/v3/orderList/oco"
PAST_RECV_WINDOW_MS = 70_000  # beyond recvWindow (5 s) + robson's margin: a lost order can no longer arrive
HOUR_MS = 3_600_000


def executed(live: Live, *plan_args: str) -> dict[str, Any]:
    """Plan, validate and execute LIVE; return the ACTIVE operation."""
    planned = live.planned_and_validated(*plan_args)
    return live.ok("execute", planned["id"], "--live", "--acknowledge-risk")["operation"]


def monitor(live: Live) -> dict[str, Any]:
    return live.ok("monitor", "--once")


def errors(result: Any) -> list[str]:
    """The per-operation errors of a `monitor --once --json` run."""
    return [e["message"] for e in json.loads(result.stdout)["errors"]]


def show(live: Live, operation_id: str) -> dict[str, Any]:
    return live.ok("operation", "show", operation_id)


def open_protective(live: Live) -> list[dict[str, Any]]:
    """The open stop legs on the server (an OCO's stop leg, or a plain stop-limit)."""
    return [o for o in live.server.open_orders() if o["type"] == "STOP_LOSS_LIMIT"]


def sells(live: Live) -> list[dict[str, Any]]:
    """The server's SELL trades, oldest first."""
    return [t for t in live.server.trades() if not t["isBuyer"]]


def sell_fill(live: Live) -> dict[str, Any]:
    [trade] = sells(live)
    return trade


def stop_id(op: dict[str, Any], generation: int = 0) -> str:
    """The client id of the operation's protective stop of that generation (-S, -S1, …)."""
    return f"rb-{op['intent_id']}-S{generation or ''}"


def target_id(op: dict[str, Any], generation: int = 0) -> str:
    """The client id of the OCO's target leg of that generation (-T, -T1, …)."""
    return f"rb-{op['intent_id']}-T{generation or ''}"


def pnl(op: dict[str, Any], exit_price: Decimal, exit_fee: Decimal) -> Decimal:
    quantity, entry = Decimal(op["quantity"]), Decimal(op["entry_price"])
    return (exit_price - entry) * quantity - Decimal(op["entry_fee"]) - exit_fee


def trailing_candles(live: Live, opened_ms: int, high: Decimal) -> None:
    """Move the server an hour on and serve 5m candles since the entry, one of which reaches `high`."""
    live.server.clock_offset_ms += HOUR_MS
    step = KLINE_INTERVALS_MS["5m"]
    last_open = live.server.server_time_ms() // step * step - step
    first_open = opened_ms // step * step + step  # the first candle opened after the entry
    rows = []
    for open_time in range(first_open, last_open + 1, step):
        peak = high if open_time == first_open + 2 * step else PRICE + 50
        rows.append([open_time, PRICE, peak, PRICE - 80, PRICE, Decimal("12.5")])
    live.server.set_klines("BTCUSDT", "5m", rows)


def opened_ms(op: dict[str, Any]) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(op["opened_at"]).timestamp() * 1000)


# --- fills close the operation ----------------------------------------------------------------


def test_a_stop_filled_on_binance_closes_the_operation_at_the_servers_fill_and_commission(live: Live) -> None:
    op = executed(live)
    live.server.set_price("BTCUSDT", "28990")  # through the stop 29000, above its limit 28855: the stop fills

    report = monitor(live)

    [check] = report["operations"]
    trade = sell_fill(live)
    fill, fee = Decimal(trade["price"]), Decimal(trade["commission"])
    assert (fill, trade["commissionAsset"]) == (Decimal("28990"), "USDT")
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop")
    assert (Decimal(check["exit"]["price"]), Decimal(check["exit"]["fee"])) == (fill, fee)
    closed = show(live, op["id"])
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "stop")
    assert Decimal(closed["realized_pnl"]) == pnl(op, fill, fee)
    assert Decimal(closed["exit_fee"]) == fee == Decimal(op["quantity"]) * fill * COMMISSION
    kinds = [e["kind"] for e in closed["audit"]]
    assert kinds[-2:] == ["order_filled", "closed"]
    assert live.server.open_orders() == []


def test_the_target_leg_of_the_oco_filling_closes_the_operation_as_target(live: Live) -> None:
    op = executed(live)
    live.server.set_price("BTCUSDT", "31600")  # the LIMIT_MAKER take-profit at 31500 fills; the stop leg expires

    report = monitor(live)

    [check] = report["operations"]
    trade = sell_fill(live)
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "target")
    assert Decimal(check["exit"]["price"]) == Decimal(trade["price"]) == Decimal("31500")
    assert Decimal(check["exit"]["fee"]) == Decimal(trade["commission"]) > 0
    closed = show(live, op["id"])
    assert Decimal(closed["realized_pnl"]) == pnl(op, Decimal("31500"), Decimal(trade["commission"]))
    assert Decimal(closed["realized_r"]) > Decimal("1.4")


def test_a_second_tick_after_the_close_places_and_changes_nothing(live: Live) -> None:
    op = executed(live)
    live.server.set_price("BTCUSDT", "28990")
    monitor(live)
    orders_before = live.server.orders()

    report = monitor(live)

    assert report["operations"] == [] and report["errors"] == []
    assert live.server.orders() == orders_before
    assert show(live, op["id"])["status"] == "CLOSED"


def test_an_untouched_stop_keeps_the_operation_active_and_sends_nothing(live: Live) -> None:
    op = executed(live)
    orders_before = live.server.orders()

    report = monitor(live)

    [check] = report["operations"]
    assert (check["id"], check["status"], check["exit"]) == (op["id"], "ACTIVE", None)
    assert report["skipped"] == [] and report["errors"] == []
    assert live.server.orders() == orders_before


# --- a stop that vanished -----------------------------------------------------------------------


def test_a_stop_cancelled_by_hand_is_placed_again_with_a_new_id_and_audited(live: Live) -> None:
    op = executed(live)
    first = f"rb-{op['intent_id']}-S"
    live.server.cancel_by_hand(first)

    result = live.run("monitor", "--once", "--json")

    assert result.exit_code == 0, result.stderr
    [stop] = open_protective(live)
    [target] = [o for o in live.server.open_orders() if o["type"] == "LIMIT_MAKER"]
    assert stop["clientOrderId"] == f"rb-{op['intent_id']}-S1"
    assert target["clientOrderId"] == f"rb-{op['intent_id']}-T1"
    assert (Decimal(stop["stopPrice"]), Decimal(stop["price"]), Decimal(target["price"])) == (
        Decimal("29000"), Decimal("28855"), Decimal("31500"))
    assert Decimal(stop["origQty"]) == Decimal(op["quantity"])
    audit = show(live, op["id"])["audit"]
    [replaced] = [e for e in audit if e["kind"] == "stop_placed" and e["data"].get("replaces") == first]
    assert f"{first} was CANCELED on Binance" in replaced["message"]
    assert "stop re-placed" in result.stderr
    assert show(live, op["id"])["status"] == "ACTIVE"


def test_an_expired_stop_is_placed_again(live: Live) -> None:
    op = executed(live)
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-S", status="EXPIRED")

    monitor(live)

    [stop] = open_protective(live)
    assert stop["clientOrderId"] == f"rb-{op['intent_id']}-S1"


def test_a_stop_unknown_to_binance_is_placed_again(live: Live) -> None:
    op = executed(live)
    first = f"rb-{op['intent_id']}-S"
    live.server.cancel_by_hand(first)
    live.server.forget_order(first)

    monitor(live)

    [stop] = open_protective(live)
    assert stop["clientOrderId"] == f"rb-{op['intent_id']}-S1"
    assert any("unknown to Binance" in e["message"] for e in show(live, op["id"])["audit"])


def test_a_stop_that_cannot_be_placed_again_because_the_price_is_through_it_exits_at_market(live: Live) -> None:
    op = executed(live)
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-S")
    live.server.set_price("BTCUSDT", "28900")  # below the stop: a new stop would trigger at once (-2010)

    report = monitor(live)

    [check] = report["operations"]
    trade = sell_fill(live)
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop")
    assert Decimal(check["exit"]["price"]) == Decimal(trade["price"]) == Decimal("28900")
    [exit_order] = live.orders("MARKET")[1:]
    assert exit_order["clientOrderId"] == f"rb-{op['intent_id']}-X"
    assert open_protective(live) == []
    closed = show(live, op["id"])
    assert "already through the stop" in closed["audit"][-1]["message"]


def test_a_stop_refused_by_binance_exits_at_market_and_says_why(live: Live) -> None:
    op = executed(live)
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-S")
    live.server.inject(Fault.error(-2010, "Account has insufficient balance for requested action."), "POST", OCO)

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop_placement_failed")
    assert "insufficient balance" in show(live, op["id"])["audit"][-1]["message"]
    assert live.server.open_orders() == []


# --- trailing: cancel and replace -----------------------------------------------------------------


def test_trailing_moves_the_stop_by_cancel_and_replace_leaving_exactly_one_open_stop(live: Live) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))  # two spans of 1000 above the entry → stop 31000
    live.server.set_price("BTCUSDT", "31200")

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], Decimal(check["stop"])) == ("ACTIVE", Decimal("31000"))
    assert [Decimal(m["new_stop"]) for m in check["moves"]] == [Decimal("31000")]
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (f"rb-{op['intent_id']}-S1", Decimal("31000"))
    first = [o for o in live.server.orders() if o["clientOrderId"] == f"rb-{op['intent_id']}-S"]
    assert [o["status"] for o in first] == ["CANCELED"]
    [moved] = [e for e in show(live, op["id"])["audit"] if e["kind"] == "stop_moved"]
    assert moved["data"] | {"best_price": None, "candle_open_time": None} == {
        "old_stop": "29000", "new_stop": "31000", "reason": "trailing", "best_price": None, "candle_open_time": None,
        "client_order_id": f"rb-{op['intent_id']}-S", "new_client_order_id": f"rb-{op['intent_id']}-S1"}


def test_a_trailed_stop_filled_closes_as_trailing_at_the_fill(live: Live) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")
    monitor(live)
    live.server.set_price("BTCUSDT", "30990")

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "trailing")
    assert Decimal(check["exit"]["price"]) == Decimal("30990")


def test_the_next_tick_does_not_move_the_stop_again(live: Live) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")
    monitor(live)
    orders_before = live.server.orders()

    report = monitor(live)

    assert report["operations"][0]["moves"] == []
    assert live.server.orders() == orders_before


# --- faults during the replace -------------------------------------------------------------------


def test_a_replace_whose_answer_times_out_is_looked_up_and_never_doubled(live: Live) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")
    live.server.inject(Fault.hold(max_seconds=3, after_processing=True), "POST", OCO)  # client timeout is 1 s

    first = live.run("monitor", "--once", "--json")
    again = live.run("monitor", "--once", "--json")

    assert first.exit_code == 0, first.stderr
    assert again.exit_code == 0, again.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (f"rb-{op['intent_id']}-S1", Decimal("31000"))
    assert len([r for r in live.server.requests if r.method == "POST" and r.path == OCO]) == 1


def test_a_replace_lost_before_binance_saw_it_waits_out_the_recv_window_then_places_one_stop(live: Live) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", OCO)

    lost = live.run("monitor", "--once", "--json")
    too_soon = live.run("monitor", "--once", "--json")
    live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    settled = live.run("monitor", "--once", "--json")

    assert (lost.exit_code, too_soon.exit_code) == (1, 1)
    assert "answer was lost" in errors(lost)[0] and "Traceback" not in lost.stderr
    assert "could still be executed, so nothing was resent" in errors(too_soon)[0]
    assert settled.exit_code == 0, settled.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (f"rb-{op['intent_id']}-S1", Decimal("31000"))
    assert len([o for o in live.server.orders() if o["clientOrderId"].endswith("-S1")]) == 1


def test_a_stop_that_filled_while_it_was_being_cancelled_closes_instead_of_being_replaced(live: Live) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")
    # The market reaches the old stop just before robson's cancel: Binance answers -2011, the order list is done.
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", "28990")), "DELETE", "/api/v3/orderList")

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop")
    assert Decimal(check["exit"]["price"]) == Decimal("28990")
    assert live.server.open_orders() == []
    cancels = [r.status for r in live.server.requests if r.method == "DELETE"]
    assert cancels == [400]  # Binance refused the cancel (-2011): the fill was looked up instead
    assert not [o for o in live.server.orders() if o["clientOrderId"].endswith("-S1")]


# --- time exit -------------------------------------------------------------------------------------


def test_a_due_time_exit_cancels_the_stop_and_exits_at_market(live: Live) -> None:
    seed_candles(live.server, "BTCUSDT", "30m", PRICE)
    op = executed(live, "--strategy", "bounce-back")  # time exit after 48 candles of 30m
    live.server.clock_offset_ms += 25 * HOUR_MS
    live.server.set_price("BTCUSDT", "30100")

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "time_exit")
    assert Decimal(check["exit"]["price"]) == Decimal("30100")
    assert live.server.open_orders() == []
    [exit_order] = live.orders("MARKET")[1:]
    assert exit_order["clientOrderId"] == f"rb-{op['intent_id']}-X"
    assert [o["status"] for o in live.server.orders() if o["type"] == "STOP_LOSS_LIMIT"] == ["CANCELED"]


# --- keys and paper-only databases ------------------------------------------------------------------


def test_without_keys_live_operations_are_errors_and_the_monitor_exits_1(live: Live) -> None:
    op = executed(live)

    as_json = live.run("monitor", "--once", "--json", BINANCE_API_KEY="", BINANCE_API_SECRET="")
    human = live.run("monitor", "--once", BINANCE_API_KEY="", BINANCE_API_SECRET="")

    assert (as_json.exit_code, human.exit_code) == (1, 1)
    [error] = json.loads(as_json.stdout)["errors"]
    assert error["operation_id"] == op["id"] and "BINANCE_API_KEY" in error["message"]
    said = " ".join(human.stderr.split())
    assert f"{op['id']}: live operation: its stop on Binance was not checked: set BINANCE_API_KEY" in said
    assert "Traceback" not in as_json.stderr + human.stderr
    assert show(live, op["id"])["status"] == "ACTIVE"
