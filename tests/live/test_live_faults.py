"""Each exchange failure during a LIVE execute has one documented outcome; nothing is lost or duplicated."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.live.binance_server import INSUFFICIENT_BALANCE, Fault
from tests.live.conftest import Live

ORDER = "/api/v3/order"
OCO = "/api/v3/orderList/oco"
PAST_RECV_WINDOW_MS = 70_000  # beyond recvWindow (5 s) + robson's margin: a lost order can no longer arrive


def intent_status(live: Live, intent_id: str) -> str:
    return live.ok("plan", "show", intent_id)["status"]


def execute(live: Live, intent_id: str):
    return live.run("execute", intent_id, "--live", "--acknowledge-risk", "--json")


def one_line_error(result, *fragments: str) -> str:
    assert result.stderr.startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_a_5xx_after_the_entry_was_accepted_is_settled_by_looking_the_order_up(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.http_5xx_after_accepting(503), "POST", ORDER)

    result = execute(live, planned["id"])

    assert result.exit_code == 0, result.stderr
    assert len(live.orders("MARKET")) == 1 and len(live.orders("STOP_LOSS_LIMIT")) == 1
    assert json.loads(result.stdout)["operation"]["status"] == "ACTIVE"


def test_a_connection_dropped_after_the_entry_was_placed_is_settled_by_looking_it_up(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.drop_connection(after_processing=True), "POST", ORDER)

    result = execute(live, planned["id"])

    assert result.exit_code == 0, result.stderr
    assert len(live.orders("MARKET")) == 1


def test_an_answer_slower_than_the_timeout_is_settled_by_looking_the_order_up(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.hold(max_seconds=3, after_processing=True), "POST", ORDER)  # client timeout is 1 s

    result = execute(live, planned["id"])

    assert result.exit_code == 0, result.stderr
    assert len(live.orders("MARKET")) == 1


def test_a_lost_entry_is_never_resent_until_binance_can_no_longer_accept_it(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", ORDER)

    lost = execute(live, planned["id"])
    too_soon = live.run("reconcile", "--json")
    live.server.clock_offset_ms = PAST_RECV_WINDOW_MS
    settled = live.run("reconcile", "--json")

    assert lost.exit_code == 1
    one_line_error(lost, "answer was lost", "nothing was resent")
    assert too_soon.exit_code == 1
    assert json.loads(too_soon.stdout)["settled"][0]["outcome"] == "waiting"
    assert settled.exit_code == 0, settled.stderr
    assert json.loads(settled.stdout)["settled"][0]["outcome"] == "executed"
    assert len(live.orders("MARKET")) == 1 and len(live.orders("STOP_LOSS_LIMIT")) == 1
    assert intent_status(live, planned["id"]) == "EXECUTED"


def test_a_balance_spent_since_validation_is_refused_before_anything_is_sent(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.set_balance("USDT", "10")

    result = execute(live, planned["id"])

    assert result.exit_code == 3  # execute re-runs the balance guard on Binance's balances
    one_line_error(result, "balance", "nothing was sent")
    assert live.orders() == []
    assert intent_status(live, planned["id"]) == "VALIDATED"  # validate again once the money is back


def test_insufficient_balance_refused_by_binance_fails_the_intent_with_nothing_half_done(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.error(-2010, INSUFFICIENT_BALANCE), "POST", ORDER)

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    one_line_error(result, "insufficient balance")
    assert live.orders() == []
    assert intent_status(live, planned["id"]) == "FAILED"


def test_a_filter_failure_names_the_filter_and_the_value_and_is_not_retried(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.error(-1013, "Filter failure: LOT_SIZE"), "POST", ORDER)

    result = execute(live, planned["id"])

    one_line_error(result, "LOT_SIZE", f"quantity {planned['quantity']}", "step 0.00001")
    assert result.exit_code == 1
    assert [r for r in live.server.requests if r.method == "POST" and r.path == ORDER].__len__() == 1
    assert intent_status(live, planned["id"]) == "FAILED"


def test_a_rate_limit_says_when_to_try_again_and_the_retry_places_one_entry(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.rate_limited(429, retry_after=30), "POST", ORDER)

    limited = execute(live, planned["id"])
    live.server.clock_offset_ms = PAST_RECV_WINDOW_MS
    retried = execute(live, planned["id"])

    assert limited.exit_code == 1
    one_line_error(limited, "rate limit", "try again after", "(in 30 s)")
    assert retried.exit_code == 0, retried.stderr
    assert len(live.orders("MARKET")) == 1


def test_an_ip_ban_is_reported_as_such(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.rate_limited(418, retry_after=120), "POST", ORDER)

    result = execute(live, planned["id"])

    one_line_error(result, "banned this IP", "(in 120 s)")
    assert live.orders() == []


def test_a_clock_outside_the_recv_window_is_resynced_once_and_the_order_goes_through(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.error(-1021, "Timestamp for this request is outside of the recvWindow."), "POST", ORDER)

    result = execute(live, planned["id"])

    assert result.exit_code == 0, result.stderr
    assert len(live.orders("MARKET")) == 1


def test_a_stop_that_cannot_be_placed_closes_the_position_at_market_and_says_so_loudly(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.error(-2010, "Order would trigger immediately."), "POST", OCO)

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    one_line_error(result, "protective stop could not be placed", "closed at market")
    entry, exit_ = live.orders("MARKET")
    assert (entry["side"], exit_["side"]) == ("BUY", "SELL")
    assert live.orders("STOP_LOSS_LIMIT") == []
    [operation] = live.ok("operation", "list")["operations"]
    assert (operation["status"], operation["close_reason"]) == ("CLOSED", "stop_placement_failed")


def test_a_partial_fill_sizes_the_stop_to_what_was_bought(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.limit_next_market_fill("BTCUSDT", "0.02")

    result = execute(live, planned["id"])

    assert result.exit_code == 0, result.stderr
    [entry] = live.orders("MARKET")
    [stop] = live.orders("STOP_LOSS_LIMIT")
    assert (entry["status"], Decimal(entry["executedQty"])) == ("EXPIRED", Decimal("0.02"))
    assert Decimal(stop["origQty"]) == Decimal("0.01998")  # 0.02 less the 0.1 % BTC commission


def test_binance_unreachable_fails_before_anything_is_written(live: Live) -> None:
    planned = live.planned_and_validated()

    result = live.run("execute", planned["id"], "--live", "--acknowledge-risk",
                      ROBSON_BINANCE__BASE_URL="http://127.0.0.1:9")

    assert result.exit_code == 1
    one_line_error(result, "cannot reach Binance")
    assert intent_status(live, planned["id"]) == "VALIDATED"
    assert live.orders() == []


@pytest.mark.parametrize(("stop", "target", "named", "not_named"), [
    ("29000.5", "31500", "stop price 29000.5", "limit price"),
    ("29000", "31500.5", "target price 31500.5", "stop price"),
])
def test_a_price_filter_failure_of_the_stop_order_names_the_price_that_failed(live: Live, stop: str, target: str,
                                                                              named: str, not_named: str) -> None:
    planned = live.ok("plan", "buy", "BTCUSDT", "--stop", stop, "--target", target)
    assert live.ok("validate", planned["id"])["verdict"] in ("PASS", "WARN")
    live.server.set_tick_size("BTCUSDT", "1")  # Binance changed the tick after the plan

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    one_line_error(result, "PRICE_FILTER", named, "(min 1, tick 1)")
    assert not_named not in result.stderr
