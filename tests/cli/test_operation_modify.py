"""`robson operation modify` and `operation show` through the CLI on the real sample market.

The position: BUY 0.01366 BTCUSDT planned at 2021-06-01 12:00 UTC (price 36596.62, the 11:55 close), filled
at 36614.93 (the 12:00 open plus slippage), stop 36000, target 37500 (see tests/cli/test_monitor.py for how
those numbers come about). The price at 12:00 is still 36596.62: nothing of the 12:00 candle has closed.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from tests.cli.conftest import (
    assert_user_error,
    count_rows,
    floats_in,
    paper_balances,
    parsed,
)


def parsed_error(result) -> dict:
    return json.loads(result.stdout)["error"]

AT = "2021-06-01T12:00"


@pytest.fixture
def position(robson) -> tuple[str, str]:
    """Return (intent id, operation id) of the executed position."""
    intent = parsed(robson("--as-of", AT, "plan", "buy", "BTCUSDT", "--stop", "36000", "--target", "37500", "--json"))
    parsed(robson("--as-of", AT, "validate", intent["id"], "--json"))
    operation = parsed(robson("--as-of", AT, "execute", intent["id"], "--json"))["operation"]
    return intent["id"], operation["id"]


def modify(robson, operation_id: str, *args: str, as_of: str = AT):
    return robson("--as-of", as_of, "operation", "modify", operation_id, *args, "--json")


def stop_order(robson, intent_id: str, operation_id: str) -> dict:
    orders = parsed(robson("operation", "show", operation_id, "--json"))["orders"]
    return next(o for o in orders if o["client_order_id"] == f"rb-{intent_id}-S")


def test_tightening_the_stop_amends_the_paper_stop_in_place_and_audits_the_move(robson, position):
    intent_id, operation_id = position

    result = modify(robson, operation_id, "--stop", "36200")

    doc = parsed(result)
    assert result.stderr == ""
    assert floats_in(doc) == []
    assert (doc["changed"], doc["old_stop"], doc["operation"]["stop"], doc["price"]) == (True, "36000", "36200", "36596.62")
    # Risk from entry: (36614.93 − 36200) × 0.01366 = 5.6679438 = 0.5668 % of 1000.
    assert (doc["risk"], doc["risk_percent"]) == ("5.6679438", "0.5668")
    order = stop_order(robson, intent_id, operation_id)
    # Same client id, re-priced: the limit sits 0.5 % below, 36200 × 0.995 = 36019.
    assert (order["status"], order["stop_price"], order["price"], order["target_price"]) == ("NEW", "36200", "36019", "37500")
    assert count_rows_of_kind(robson, operation_id, "stop_moved") == [
        {"old_stop": "36000", "new_stop": "36200", "reason": "manual", "loosened": False, "price": "36596.62",
         "client_order_id": f"rb-{intent_id}-S"}]


def count_rows_of_kind(robson, operation_id: str, kind: str) -> list[dict]:
    audit = parsed(robson("operation", "show", operation_id, "--json"))["audit"]
    return [e["data"] for e in audit if e["kind"] == kind]


def test_the_monitor_then_stops_out_at_the_tightened_stop(robson, position, db_path):
    _, operation_id = position
    parsed(modify(robson, operation_id, "--stop", "36200"))

    doc = parsed(robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json"))

    # By hand from the bundled file: the 12:10 candle (low 36161.0) is the first to reach 36200, long before
    # 36000 (13:00). Fill 36200 × 0.9995 = 36181.90 at its close, 12:15.
    (check,) = doc["operations"]
    assert (check["exit"]["reason"], check["exit"]["price"], check["exit"]["at"]) == (
        "stop", "36181.9", "2021-06-01T12:15:00+00:00")
    assert paper_balances(db_path)["BTC"] == (D("0"), D("0"))


def test_loosening_is_refused_without_allow_loosen(robson, position, db_path):
    _, operation_id = position
    events_before = count_rows(db_path, "audit_events")

    result = modify(robson, operation_id, "--stop", "35900")

    # (36000 − 35900) × 0.01366 = 1.366
    assert_user_error(result, 3, "moving the stop from 36000 to 35900 loosens it: risk grows by 1.37 USDT",
                      "--allow-loosen")
    assert parsed_error(result)["code"] == 3  # under --json the error is also the one document on stdout
    assert count_rows(db_path, "audit_events") == events_before


def test_loosening_is_allowed_on_purpose_within_the_risk_guard(robson, position):
    intent_id, operation_id = position

    doc = parsed(modify(robson, operation_id, "--stop", "35900", "--allow-loosen"))

    # (36614.93 − 35900) × 0.01366 = 9.7659438 = 0.977 % ≤ the 1 % max of All In.
    assert (doc["operation"]["stop"], doc["risk"]) == ("35900", "9.7659438")
    assert stop_order(robson, intent_id, operation_id)["stop_price"] == "35900"
    assert count_rows_of_kind(robson, operation_id, "stop_moved")[0]["loosened"] is True


def test_a_loosened_stop_past_the_strategys_max_risk_is_refused(robson, position):
    _, operation_id = position

    result = modify(robson, operation_id, "--stop", "35700", "--allow-loosen")

    # (36614.93 − 35700) × 0.01366 = 12.50 = 1.25 % > 1 %; the widest allowed is
    # 36614.93 − 1000 × 1 % / 0.01366 = 35882.8655… → tick up → 35882.87.
    assert_user_error(result, 3, "risk per trade: stop 35700 would risk 12.50 USDT = 1.25% of capital 1000 > max 1.00%",
                      "keep the stop at or above 35882.87")


def test_a_stop_at_or_above_the_price_is_refused(robson, position):
    _, operation_id = position

    result = modify(robson, operation_id, "--stop", "36600")

    assert_user_error(result, 2, "stop 36600 is at or above the current price 36596.62: it would trigger at once")


def test_moving_the_target_amends_the_oco(robson, position):
    intent_id, operation_id = position

    doc = parsed(modify(robson, operation_id, "--target", "38000"))

    assert (doc["old_target"], doc["operation"]["target"], doc["operation"]["stop"]) == ("37500", "38000", "36000")
    order = stop_order(robson, intent_id, operation_id)
    assert (order["type"], order["stop_price"], order["target_price"]) == ("OCO", "36000", "38000")
    [moved] = count_rows_of_kind(robson, operation_id, "target_moved")
    assert (moved["old_target"], moved["new_target"], moved["reason"]) == ("37500", "38000", "manual")
    assert count_rows_of_kind(robson, operation_id, "stop_moved") == []  # a target move is not a stop move


def test_a_target_behind_the_price_is_refused(robson, position):
    _, operation_id = position

    assert_user_error(modify(robson, operation_id, "--target", "36000"), 2, "it would fill at once")


def test_modify_needs_a_stop_or_a_target(robson, position):
    _, operation_id = position

    assert_user_error(robson("operation", "modify", operation_id), 2, "nothing to modify")
    assert_user_error(robson("operation", "modify", operation_id, "--stop", "abc"), 2, "stop must be a number")


def test_the_stop_crossed_since_the_last_check_closes_the_operation_instead(robson, position, db_path):
    _, operation_id = position

    # At 13:30 the 13:00 candle has already crossed 36000: the catch-up closes it before any change.
    result = modify(robson, operation_id, "--stop", "35500", "--allow-loosen", as_of="2021-06-01T13:30")

    assert_user_error(result, 2, f"operation {operation_id} closed at its stop @ 35982 on 2021-06-01 13:05 UTC "
                                 "before this change")
    shown = parsed(robson("operation", "show", operation_id, "--json"))
    assert (shown["status"], shown["stop"]) == ("CLOSED", "36000")
    assert paper_balances(db_path)["BTC"] == (D("0"), D("0"))


def test_a_closed_operation_cannot_be_modified(robson, position):
    _, operation_id = position
    parsed(robson("--as-of", AT, "operation", "close", operation_id, "--json"))

    result = modify(robson, operation_id, "--stop", "36200")

    assert_user_error(result, 2, f"operation {operation_id} is CLOSED: only ACTIVE operations can be modified")


def test_closing_by_hand_after_a_modify_cancels_the_amended_stop(robson, position, db_path):
    intent_id, operation_id = position
    parsed(modify(robson, operation_id, "--stop", "36200"))

    closed = parsed(robson("--as-of", AT, "operation", "close", operation_id, "--json"))

    assert closed["status"] == "CLOSED"
    assert stop_order(robson, intent_id, operation_id)["status"] == "CANCELED"
    assert paper_balances(db_path)["BTC"] == (D("0"), D("0"))


# --- operation show -----------------------------------------------------------------------


def test_show_gives_the_full_audit_trail_with_times_and_prices(robson, position):
    intent_id, operation_id = position
    parsed(modify(robson, operation_id, "--stop", "36200"))
    parsed(robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json"))

    result = robson("operation", "show", operation_id[:6], "--json")

    doc = parsed(result)
    assert floats_in(doc) == []
    assert (doc["id"], doc["intent_id"], doc["status"], doc["close_reason"]) == (operation_id, intent_id, "CLOSED", "stop")
    assert [(e["at"][11:16], e["kind"]) for e in doc["audit"]] == [
        ("12:00", "planned"), ("12:00", "validated"), ("12:00", "execution_started"), ("12:00", "order_sent"),
        ("12:00", "order_filled"), ("12:00", "order_sent"), ("12:00", "stop_placed"), ("12:00", "executed"),
        ("12:00", "stop_moved"), ("12:15", "order_filled"), ("12:15", "closed"),
    ]
    messages = [e["message"] for e in doc["audit"]]
    assert "entry filled 0.01366 @ 36614.93 fee 0.50 USDT" in messages
    assert "stop moved 36000 → 36200 (by hand; price 36596.62)" in messages
    assert doc["audit"][-1]["data"]["price"] == "36181.9"
    assert [o["status"] for o in doc["orders"]] == ["FILLED", "FILLED"]


def test_show_of_an_active_operation_includes_the_unrealized_pnl(robson, position):
    _, operation_id = position

    doc = parsed(robson("--as-of", "2021-06-01T12:30", "operation", "show", operation_id, "--json"))

    # Price at 12:30: the close of the 12:25 candle, the last closed by then, 36225.81.
    assert (doc["status"], doc["price"]) == ("ACTIVE", "36225.81")
    expected = (D("36225.81") - D("36614.93")) * D("0.01366") - D("0.5001599438") - D("36225.81") * D("0.01366") * D("0.001")
    assert D(doc["unrealized_pnl"]) == expected.quantize(D("0.00000001"))


def test_show_in_a_table_names_each_step(robson, position):
    _, operation_id = position

    result = robson("operation", "show", operation_id)

    assert result.exit_code == 0
    for fragment in (f"Operation {operation_id} — ACTIVE", "Audit trail", "stop_placed", "entry filled 0.01366 @ 36614.93"):
        assert fragment in result.stdout


def test_operation_status_still_shows_unrealized_pnl(robson, position):
    _, operation_id = position

    (view,) = parsed(robson("--as-of", "2021-06-01T12:30", "operation", "status", "--json"))["operations"]

    assert (view["id"], view["price"]) == (operation_id, "36225.81")
    assert D(view["unrealized_pnl"]) < 0
