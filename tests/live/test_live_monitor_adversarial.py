"""Adversarial LIVE monitor tests: the market and Binance racing robson's cancel-and-replace, lookups and closes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.live.binance_server import Fault
from tests.live.conftest import PRICE, Live, seed_candles
from tests.live.test_live_monitor import (
    HOUR_MS,
    OCO,
    PAST_RECV_WINDOW_MS,
    executed,
    monitor,
    open_protective,
    opened_ms,
    pnl,
    sells,
    show,
    stop_id,
    target_id,
    trailing_candles,
)

ORDER_LIST = "/api/v3/orderList"
INTERNAL_ERROR = "Internal error; unable to process your request. Please try again."


def market_orders(live: Live) -> list[dict[str, Any]]:
    return live.orders("MARKET")


def trailed(live: Live) -> dict[str, Any]:
    """An operation of a trailing strategy whose candles (high 32100) move the stop 29000 → 31000 at price 31200."""
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")
    return op


def sold_everything(live: Live, op: dict[str, Any]) -> None:
    """The server holds no BTC beyond dust and no open order: the whole position was sold exactly once."""
    assert live.server.open_orders() == []
    assert sum(Decimal(t["qty"]) for t in sells(live)) == Decimal(op["quantity"])


# --- the market wins a race with robson's cancel ----------------------------------------------------


def test_the_target_leg_filling_while_the_stop_is_being_trailed_closes_as_target_and_places_nothing(
        live: Live) -> None:
    op = trailed(live)
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", "31600")), "DELETE", ORDER_LIST)

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "target")
    assert Decimal(check["exit"]["price"]) == Decimal("31500")
    [sell] = sells(live)
    closed = show(live, op["id"])
    assert Decimal(closed["realized_pnl"]) == pnl(op, Decimal("31500"), Decimal(sell["commission"]))
    sold_everything(live, op)
    assert not [o for o in live.server.orders() if o["clientOrderId"] == stop_id(op, 1)]


def test_a_due_time_exit_whose_stop_fills_just_before_the_cancel_closes_at_the_stop_and_sells_nothing_more(
        live: Live) -> None:
    seed_candles(live.server, "BTCUSDT", "30m", PRICE)
    op = executed(live, "--strategy", "bounce-back")  # time exit after 48 candles of 30m
    live.server.clock_offset_ms += 25 * HOUR_MS
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", "28990")), "DELETE", ORDER_LIST)

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop")
    assert Decimal(check["exit"]["price"]) == Decimal("28990")
    assert len(market_orders(live)) == 1  # the entry only
    sold_everything(live, op)


def test_a_hand_close_whose_stop_fills_just_before_the_cancel_closes_at_the_stop_and_sells_nothing_more(
        live: Live) -> None:
    op = executed(live)
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", "28990")), "DELETE", ORDER_LIST)

    result = live.run("operation", "close", op["id"])

    assert result.exit_code == 0, result.stderr
    closed = show(live, op["id"])
    assert (closed["close_reason"], Decimal(closed["exit_price"])) == ("stop", Decimal("28990"))
    assert len(market_orders(live)) == 1
    sold_everything(live, op)


def test_a_hand_close_whose_target_fills_just_before_the_cancel_closes_as_target(live: Live) -> None:
    op = executed(live)
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", "31600")), "DELETE", ORDER_LIST)

    result = live.run("operation", "close", op["id"])

    assert result.exit_code == 0, result.stderr
    closed = show(live, op["id"])
    assert (closed["close_reason"], Decimal(closed["exit_price"])) == ("target", Decimal("31500"))
    assert len(market_orders(live)) == 1
    sold_everything(live, op)


# --- Binance's answers lost or refused ---------------------------------------------------------------


def test_a_cancel_answered_5xx_after_binance_cancelled_still_places_exactly_one_new_stop(live: Live) -> None:
    op = trailed(live)
    live.server.inject(Fault.http_5xx_after_accepting(), "DELETE", ORDER_LIST)

    first = live.run("monitor", "--once", "--json")
    again = live.run("monitor", "--once", "--json")

    assert (first.exit_code, again.exit_code) == (0, 0), first.stderr + again.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (stop_id(op, 1), Decimal("31000"))
    assert len([o for o in live.orders("STOP_LOSS_LIMIT")]) == 2


def test_a_cancel_whose_connection_drops_before_binance_saw_it_is_finished_by_the_next_tick(live: Live) -> None:
    op = trailed(live)
    live.server.inject(Fault.drop_connection(after_processing=False), "DELETE", ORDER_LIST)

    first = live.run("monitor", "--once", "--json")
    again = live.run("monitor", "--once", "--json")

    assert again.exit_code == 0, again.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (stop_id(op, 1), Decimal("31000"))
    assert first.exit_code in (0, 1)
    assert len(live.orders("STOP_LOSS_LIMIT")) == 2


def test_a_new_stop_refused_because_the_price_fell_through_it_meanwhile_exits_at_market_once(live: Live) -> None:
    op = trailed(live)
    # Between robson's price check and its place, the market falls through the new stop 31000.
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", "30900")), "POST", OCO)

    report = monitor(live)
    again = monitor(live)

    [check] = report["operations"]
    # The books say why the position was sold: the trailed stop's level was crossed, not a placement failure.
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "trailing")
    [exit_order] = market_orders(live)[1:]
    assert exit_order["clientOrderId"] == f"rb-{op['intent_id']}-X"
    [sell] = sells(live)
    assert Decimal(sell["price"]) == Decimal("30900")
    closed = show(live, op["id"])
    assert Decimal(closed["realized_pnl"]) == pnl(op, Decimal("30900"), Decimal(sell["commission"]))
    sold_everything(live, op)
    assert again["operations"] == [] and again["errors"] == []


# --- partial fills --------------------------------------------------------------------------------------


def test_a_target_leg_filled_in_part_gets_the_rest_a_new_stop_at_once(live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    # The take-profit fills in part and the market turns back: Binance expires the OCO's stop leg at the first fill,
    # so the rest of the position rests under a take-profit only, with no stop below it.
    live.server.fill_partly(target_id(op), part, "31500")
    live.server.set_price("BTCUSDT", "30000")

    result = live.run("monitor", "--once", "--json")

    assert result.exit_code == 0, result.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["origQty"]), Decimal(stop["stopPrice"])) == (
        stop_id(op, 1), quantity - part, Decimal("29000"))
    [target] = [o for o in live.server.open_orders() if o["type"] == "LIMIT_MAKER"]
    assert (target["clientOrderId"], Decimal(target["origQty"])) == (target_id(op, 1), quantity - part)
    assert show(live, op["id"])["status"] == "ACTIVE"
    assert len(market_orders(live)) == 1  # nothing sold at market


def test_a_target_leg_filled_in_part_then_the_rest_stopped_out_books_both_fills(live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.fill_partly(target_id(op), part, "31500")
    live.server.set_price("BTCUSDT", "30000")
    monitor(live)  # -S1 for the rest
    live.server.set_price("BTCUSDT", "28990")

    report = monitor(live)

    [check] = report["operations"]
    first, rest = sells(live)
    assert (Decimal(first["price"]), Decimal(rest["price"]), Decimal(rest["qty"])) == (
        Decimal("31500"), Decimal("28990"), quantity - part)
    average = (part * Decimal("31500") + (quantity - part) * Decimal("28990")) / quantity
    fees = Decimal(first["commission"]) + Decimal(rest["commission"])
    assert (check["exit"]["reason"], Decimal(check["exit"]["price"]), Decimal(check["exit"]["fee"])) == (
        "stop", average, fees)
    closed = show(live, op["id"])
    assert Decimal(closed["realized_pnl"]) == pnl(op, average, fees)
    sold_everything(live, op)


def test_a_target_leg_filled_in_part_then_cancelled_by_hand_protects_only_the_rest(live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.fill_partly(target_id(op), part, "31500")
    live.server.set_price("BTCUSDT", "30000")
    live.server.cancel_by_hand(target_id(op))

    result = live.run("monitor", "--once", "--json")

    assert result.exit_code == 0, result.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["origQty"])) == (stop_id(op, 1), quantity - part)


def test_closing_by_hand_after_a_target_leg_filled_in_part_sells_only_the_rest(live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.fill_partly(target_id(op), part, "31500")
    live.server.set_price("BTCUSDT", "30000")

    closed = live.ok("operation", "close", op["id"])

    first, rest = sells(live)
    assert Decimal(rest["qty"]) == quantity - part
    average = (part * Decimal("31500") + (quantity - part) * Decimal("30000")) / quantity
    fees = Decimal(first["commission"]) + Decimal(rest["commission"])
    assert (Decimal(closed["exit_price"]), Decimal(closed["exit_fee"])) == (average, fees)
    assert Decimal(closed["realized_pnl"]) == pnl(op, average, fees)
    sold_everything(live, op)


# --- generations past nine -------------------------------------------------------------------------------


def test_stop_generations_past_nine_keep_one_open_stop_and_count_on(live: Live) -> None:
    op = executed(live)

    for generation in range(11):
        live.server.cancel_by_hand(stop_id(op, generation))
        monitor(live)

    [stop] = open_protective(live)
    assert stop["clientOrderId"] == stop_id(op, 11)
    report = monitor(live)
    assert report["errors"] == [] and [s["clientOrderId"] for s in open_protective(live)] == [stop_id(op, 11)]


# --- a whole tick without Binance -----------------------------------------------------------------------


def test_an_outage_for_the_whole_tick_changes_nothing_exits_1_and_the_next_tick_recovers(live: Live) -> None:
    op = trailed(live)
    before = show(live, op["id"])
    live.server.inject(Fault.error(-1001, INTERNAL_ERROR, status=503), times=10_000)

    down = live.run("monitor", "--once", "--json")
    live.server.clear_faults()
    during = show(live, op["id"])
    up = live.run("monitor", "--once", "--json")

    assert down.exit_code == 1, down.stderr
    assert "Traceback" not in down.stderr
    assert json.loads(down.stdout)["errors"]
    assert during == before
    assert up.exit_code == 0, up.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (stop_id(op, 1), Decimal("31000"))


# --- a lost exit, and an exit the book could not fill -------------------------------------------------------


def test_a_time_exit_whose_market_order_was_lost_before_binance_saw_it_is_sent_once_after_the_recv_window(
        live: Live) -> None:
    seed_candles(live.server, "BTCUSDT", "30m", PRICE)
    op = executed(live, "--strategy", "bounce-back")
    live.server.clock_offset_ms += 25 * HOUR_MS
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", "/api/v3/order")

    lost = live.run("monitor", "--once", "--json")
    too_soon = live.run("monitor", "--once", "--json")
    live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    settled = live.run("monitor", "--once", "--json")

    assert (lost.exit_code, too_soon.exit_code, settled.exit_code) == (1, 1, 0), settled.stderr
    [exit_order] = market_orders(live)[1:]
    assert exit_order["clientOrderId"] == f"rb-{op['intent_id']}-X"
    closed = show(live, op["id"])
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "time_exit")
    sold_everything(live, op)


def exit_id(op: dict[str, Any], generation: int = 0) -> str:
    return f"rb-{op['intent_id']}-X{generation or ''}"


def test_an_exit_at_market_filled_only_in_part_sells_the_rest_under_the_next_exit_generation_at_once(
        live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.limit_next_market_fill("BTCUSDT", part)  # a thin book: -X fills 0.01, the rest of it EXPIRES
    prices = iter(["30100", "30050"])
    live.server.inject(Fault.first(lambda: live.server.set_price("BTCUSDT", next(prices))), "POST", "/api/v3/order",
                       times=2)

    closed = live.ok("operation", "close", op["id"])

    assert [(o["clientOrderId"], o["status"]) for o in market_orders(live)[1:]] == [
        (exit_id(op), "EXPIRED"), (exit_id(op, 1), "FILLED")]
    first, rest = sells(live)
    assert (Decimal(first["qty"]), Decimal(rest["qty"])) == (part, quantity - part)
    average = (part * Decimal("30100") + (quantity - part) * Decimal("30050")) / quantity
    fees = Decimal(first["commission"]) + Decimal(rest["commission"])
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "manual")
    assert (Decimal(closed["exit_price"]), Decimal(closed["exit_fee"])) == (average, fees)
    assert Decimal(closed["realized_pnl"]) == pnl(op, average, fees)
    [partial] = [e for e in show(live, op["id"])["audit"]
                 if e["kind"] == "order_filled" and e["data"].get("client_order_id") == exit_id(op)]
    assert (Decimal(partial["data"]["filled_quantity"]), Decimal(partial["data"]["quantity"])) == (part, quantity)
    sold_everything(live, op)


def test_an_exit_the_book_cannot_finish_keeps_the_operation_active_with_the_rest_protected_until_the_next_tick(
        live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.limit_next_market_fill("BTCUSDT", part, times=3)  # three sends, each filled 0.01 only
    rest = quantity - 3 * part

    by_hand = live.run("operation", "close", op["id"])

    assert by_hand.exit_code == 1
    said = " ".join(by_hand.stderr.split())
    assert f"exit at market filled 0.03 of {op['quantity']}" in said
    assert f"is protected by {stop_id(op, 1)}" in said and "the next tick retries" in said
    assert show(live, op["id"])["status"] == "ACTIVE"
    assert [o["clientOrderId"] for o in market_orders(live)[1:]] == [exit_id(op, g) for g in range(3)]
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["origQty"]), Decimal(stop["stopPrice"])) == (
        stop_id(op, 1), rest, Decimal("29000"))

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "manual")
    assert market_orders(live)[-1]["clientOrderId"] == exit_id(op, 3)
    fees = sum(Decimal(t["commission"]) for t in sells(live))
    closed = show(live, op["id"])
    assert (Decimal(closed["exit_price"]), Decimal(closed["exit_fee"])) == (PRICE, fees)
    sold_everything(live, op)


def test_a_time_exit_the_book_cannot_finish_is_an_error_of_the_operation_and_its_rest_keeps_a_stop(
        live: Live) -> None:
    seed_candles(live.server, "BTCUSDT", "30m", PRICE)
    op = executed(live, "--strategy", "bounce-back")
    live.server.clock_offset_ms += 25 * HOUR_MS
    live.server.limit_next_market_fill("BTCUSDT", "0", times=3)  # nobody buys at all

    result = live.run("monitor", "--once", "--json")

    assert result.exit_code == 1
    [error] = json.loads(result.stdout)["errors"]
    assert error["operation_id"] == op["id"]
    assert f"exit at market filled 0 of {op['quantity']}" in error["message"]
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["origQty"])) == (stop_id(op, 1), Decimal(op["quantity"]))
    assert show(live, op["id"])["status"] == "ACTIVE"


def test_a_stop_limit_stranded_by_a_gap_past_its_limit_is_exited_at_market(live: Live) -> None:
    op = executed(live)
    live.server.set_price("BTCUSDT", "28000")  # through the stop 29000 and past its limit 28855: nothing fills

    report = monitor(live)

    [check] = report["operations"]
    assert (check["status"], check["exit"]["reason"]) == ("CLOSED", "stop")
    assert Decimal(check["exit"]["price"]) == Decimal("28000")
    [exit_order] = market_orders(live)[1:]
    assert exit_order["clientOrderId"] == exit_id(op)
    closed = show(live, op["id"])
    assert "stop-limit stranded: price 28000 is past its limit 28855; exited at market" in closed["audit"][-1]["message"]
    sold_everything(live, op)


def test_the_stranded_check_asks_binance_the_price_once_per_symbol_per_tick(live: Live) -> None:
    executed(live)
    executed(live)
    before = len(live.server.requests)

    report = monitor(live)

    assert [c["status"] for c in report["operations"]] == ["ACTIVE", "ACTIVE"]
    tickers = [r for r in live.server.requests[before:] if r.path == "/api/v3/ticker/price"]
    assert len(tickers) == 1


def test_a_triggered_stop_limit_between_its_stop_and_limit_is_left_to_fill_until_the_price_passes_the_limit(
        live: Live) -> None:
    op = executed(live)
    quantity, part = Decimal(op["quantity"]), Decimal("0.01")
    live.server.fill_partly(stop_id(op), part, "28900")  # triggered, part filled at 28900, the rest rests at 28855
    live.server.set_ticker_price("BTCUSDT", "28900")
    orders_before = live.server.orders()

    watched = monitor(live)
    orders_watched = live.server.orders()
    live.server.set_ticker_price("BTCUSDT", "28800")
    stranded = monitor(live)

    assert watched["operations"][0]["status"] == "ACTIVE"
    assert orders_watched == orders_before  # nothing cancelled, nothing sold: the limit can still fill
    [check] = stranded["operations"]
    average = (part * Decimal("28900") + (quantity - part) * Decimal("28800")) / quantity
    assert (check["status"], check["exit"]["reason"], Decimal(check["exit"]["price"])) == (
        "CLOSED", "stop", average)
    assert [o["clientOrderId"] for o in market_orders(live)[1:]] == [exit_id(op)]
    sold_everything(live, op)


# --- the server's clock far from this machine's ---------------------------------------------------------


# Far beyond the 5 s recvWindow on Binance's clock, ahead of or behind this machine's.
@pytest.mark.parametrize("skew_ms", [-90_000, 90_000], ids=["server-90-s-behind", "server-90-s-ahead"])
def test_a_lost_replace_waits_out_the_recv_window_on_binances_clock_whatever_the_skew(live: Live,
                                                                                     skew_ms: int) -> None:
    op = executed(live)
    # Skewed after the entry: validate's freshness compares the server's candles with this machine's clock, which
    # fails for 90 s after each 15-minute boundary when the server is behind; the monitor only reads Binance's clock.
    live.server.clock_offset_ms = skew_ms
    live.server.cancel_by_hand(stop_id(op))
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", OCO)

    lost = live.run("monitor", "--once", "--json")
    too_soon = live.run("monitor", "--once", "--json")
    live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    settled = live.run("monitor", "--once", "--json")

    assert (lost.exit_code, too_soon.exit_code) == (1, 1)
    assert "could still be executed" in json.loads(too_soon.stdout)["errors"][0]["message"]
    assert settled.exit_code == 0, settled.stderr
    [stop] = open_protective(live)
    assert stop["clientOrderId"] == stop_id(op, 1)
    assert len([o for o in live.server.orders() if o["clientOrderId"] == stop_id(op, 1)]) == 1
