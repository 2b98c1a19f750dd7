"""A position that may be held without a stop is never silent (issue 10 items 5, 11, 12).

`execute` says UNPROTECTED with the command to run; until the execution is settled, `operation status`
shows the EXECUTING intent with its exposure and exits 1, and `monitor --once` exits 1. A refusal the
exchange made for certain (a 429) is not a lost answer: the stop is placed again at once.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest

from tests.live.binance_server import Fault
from tests.live.conftest import Live

OCO = "/api/v3/orderList/oco"
ORDER = "/api/v3/order"
PAST_RECV_WINDOW_MS = 70_000  # beyond recvWindow (5 s) + robson's margin: a lost order can no longer arrive
HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


def execute(live: Live, intent_id: str):
    return live.run("execute", intent_id, "--live", "--acknowledge-risk", "--json")


def assert_loud(result, *fragments: str) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    for fragment in ("Error: UNPROTECTED", *fragments):
        assert fragment in result.stderr, result.stderr


def open_stops(live: Live, intent_id: str) -> list[dict]:
    return [o for o in live.server.open_orders()
            if o["type"] == "STOP_LOSS_LIMIT" and o["clientOrderId"].startswith(f"rb-{intent_id}-S")]


def assert_every_active_operation_has_one_open_stop(live: Live) -> None:
    """The store's invariant, checked against Binance itself: each ACTIVE operation has exactly one open stop."""
    for operation in live.ok("operation", "list", "--status", "ACTIVE")["operations"]:
        assert len(open_stops(live, operation["intent_id"])) == 1, operation


@pytest.fixture(params=["html-502", "timeout"])
def lost_stop(request, live: Live):
    """The stop's request never reaches the book and its answer is lost: a proxy's 502 page, or a silent hang."""
    release = threading.Event()
    if request.param == "html-502":
        fault = Fault.raw(502, HTML_502, content_type="text/html", after_processing=False)
    else:  # held past robson's 1 s timeout; let go (and refused as too old) only when the server stops
        fault = Fault.hold(release, max_seconds=60, after_processing=False)
    live.server.inject(fault, "POST", OCO)
    yield
    release.set()


def test_a_lost_stop_answer_is_loud_everywhere_until_the_stop_is_placed(live: Live, lost_stop) -> None:
    planned = live.planned_and_validated()
    intent_id = planned["id"]

    executed = execute(live, intent_id)
    status = live.run("operation", "status", "--json")
    human = live.run("operation", "status")
    watched = live.run("monitor", "--once")

    assert_loud(executed, "no protective stop on Binance", "robson reconcile")
    assert "<html" not in executed.stderr
    assert len(live.orders("MARKET")) == 1  # never exited on a guess: the stop may still arrive
    assert_loud(status, f"{intent_id} EXECUTING", "robson reconcile")
    [executing] = json.loads(status.stdout)["executing"]
    assert (executing["intent_id"], executing["status"], executing["protected"]) == (intent_id, "EXECUTING", False)
    [entry] = live.orders("MARKET")
    assert Decimal(executing["quantity"]) == Decimal(entry["executedQty"])
    assert Decimal(executing["exposure"]) == Decimal(entry["executedQty"]) * Decimal("30000")
    assert "Executing, not settled (1)" in human.stdout and "UNPROTECTED" in human.stdout
    assert_loud(watched, f"{intent_id} EXECUTING")
    assert "1 execution not settled" in watched.stdout

    live.server.clock_offset_ms = PAST_RECV_WINDOW_MS  # the lost stop can no longer arrive
    settled = live.run("monitor", "--once")

    assert settled.exit_code == 0, settled.stderr
    assert "executed: operation" in settled.stderr  # the tick's reconcile placed the stop
    assert len(open_stops(live, intent_id)) == 1
    calm = live.ok("operation", "status")
    assert calm["executing"] == [] and [op["status"] for op in calm["operations"]] == ["ACTIVE"]
    # The entry, found by its client id rather than from an answer, is the intent's (issue 10 item 11).
    shown = {o["client_order_id"] for o in live.ok("plan", "show", intent_id)["orders"]}
    assert shown == {f"rb-{intent_id}-E", f"rb-{intent_id}-S"}
    assert_every_active_operation_has_one_open_stop(live)


def test_an_entry_whose_answer_is_lost_may_fill_and_is_shown_up_to_its_whole_quantity(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", ORDER)

    executed = execute(live, planned["id"])
    status = live.run("operation", "status", "--json")

    assert_loud(executed, "if it fills", "nothing was resent", "robson reconcile")
    assert_loud(status, "robson reconcile")
    [executing] = json.loads(status.stdout)["executing"]
    assert (executing["entry_filled"], Decimal(executing["quantity"])) == (False, Decimal(planned["quantity"]))


def test_a_rate_limited_stop_is_unprotected_and_placed_again_at_once_without_waiting_for_the_recv_window(
        live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.rate_limited(429, retry_after=30), "POST", OCO)

    limited = execute(live, planned["id"])
    settled = live.run("reconcile", "--json")  # right away: the clock is not moved past any recvWindow

    assert_loud(limited, "rate limit", "(in 30 s)", "robson reconcile")
    assert len(live.orders("MARKET")) == 1  # no exit at market: the stop can be placed in seconds
    assert settled.exit_code == 0, settled.stderr
    assert json.loads(settled.stdout)["settled"][0]["outcome"] == "executed"
    assert len(live.orders("STOP_LOSS_LIMIT")) == 1
    trail = live.ok("plan", "show", planned["id"])["audit"]
    assert [e["kind"] for e in trail].count("order_refused") == 1
    assert_every_active_operation_has_one_open_stop(live)


def test_a_rate_limited_stop_replacement_in_the_monitor_is_placed_on_the_next_tick(live: Live) -> None:
    planned = live.planned_and_validated()
    live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    live.server.cancel_by_hand(f"rb-{planned['id']}-S")
    live.server.inject(Fault.rate_limited(429, retry_after=30), "POST", OCO)

    limited = live.run("monitor", "--once")
    again = live.run("monitor", "--once")  # no recvWindow to wait out: the 429 was a refusal

    assert_loud(limited, "rate limit", f"rb-{planned['id']}-S1")
    assert again.exit_code == 0, again.stderr
    assert [o["clientOrderId"] for o in open_stops(live, planned["id"])] == [f"rb-{planned['id']}-S1"]
    assert len(live.orders("MARKET")) == 1
    assert_every_active_operation_has_one_open_stop(live)


def test_a_lost_stop_replacement_in_the_monitor_is_unprotected_on_every_tick_until_it_is_placed(live: Live) -> None:
    planned = live.planned_and_validated()
    live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    live.server.cancel_by_hand(f"rb-{planned['id']}-S")
    live.server.inject(Fault.drop_connection(after_processing=False), "POST", OCO)

    lost = live.run("monitor", "--once")
    waiting = live.run("monitor", "--once")  # the lost stop could still arrive: nothing is sent
    live.server.clock_offset_ms = PAST_RECV_WINDOW_MS
    placed = live.run("monitor", "--once")

    assert_loud(lost, f"rb-{planned['id']}-S1")
    assert_loud(waiting, "could still be executed")
    assert placed.exit_code == 0, placed.stderr
    assert [o["clientOrderId"] for o in open_stops(live, planned["id"])] == [f"rb-{planned['id']}-S1"]
    assert_every_active_operation_has_one_open_stop(live)


def test_without_keys_an_unsettled_live_execution_is_still_shown_unprotected_at_its_fill(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.raw(502, HTML_502, content_type="text/html", after_processing=False), "POST", OCO)
    assert_loud(execute(live, planned["id"]))
    asked = len(live.server.requests)

    status = live.run("operation", "status", "--json", BINANCE_API_KEY=None, BINANCE_API_SECRET=None)

    assert_loud(status, f"{planned['id']} EXECUTING")
    assert "set BINANCE_API_KEY" in status.stderr  # why reconcile could not settle it
    [executing] = json.loads(status.stdout)["executing"]
    assert (executing["price"], executing["protected"]) == (None, False)
    assert Decimal(executing["exposure"]) == Decimal(executing["quantity"]) * Decimal(executing["entry_price"])
    assert len(live.server.requests) == asked  # without keys, nothing was asked of Binance
