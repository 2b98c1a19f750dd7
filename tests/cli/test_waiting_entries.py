"""Limit and stop entries on paper, replayed on the real sample market with --as-of.

Hand-checked BTCUSDT 5m candles of 2021-06-22 (open, high, low, close; robson/data/market):
    05:55  32486.74 32634.87 32485.47 32578.27   ← the price at 06:00 is its close, 32578.27
    06:05  32600.34 32639.55 32542.68 32542.68   the first candle wholly after an order placed at 06:01
    06:10  32542.68 32618.62 32520.27 32600.0
    06:15  32600.0  32708.9  32592.11 32707.76
    06:20  32707.75 32805.77 32654.51 32793.19   ← first high ≥ 32800: a stop buy at 32800 triggers here
    06:25 … 06:40 lows 32700.0, 32703.29, 32602.13, 32574.22
    06:45  32578.88 32636.04 32500.0  32519.6    ← first low ≤ 32500: a limit buy at 32500 fills here (a touch)
    08:15  32296.86 32355.19 32158.0  32179.09   ← first low ≤ 32181.15 after it: the limit entry's stop
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.cli.conftest import assert_user_error, dump_database, paper_balances, parsed
from tests.databases import fetch
from tests.reliability.helpers import invariant_breaches

PLANNED, PLACED = "2021-06-22T06:00", "2021-06-22T06:01"


def waiting(robson, *args: str) -> dict:
    """Plan, validate and execute a waiting entry; return the execute document."""
    intent = parsed(robson("--as-of", PLANNED, "plan", "buy", "BTCUSDT", *args, "--json"))
    parsed(robson("--as-of", PLANNED, "validate", intent["id"], "--json"))
    return parsed(robson("--as-of", PLACED, "execute", intent["id"], "--json"))


def orders(db, intent_id: str) -> dict[str, dict]:
    rows = fetch(db, "SELECT * FROM orders WHERE intent_id = :id", {"id": intent_id})
    return {row["client_order_id"].rsplit("-", 1)[1]: row for row in rows}


def monitor(robson, at: str) -> dict:
    return parsed(robson("--as-of", at, "monitor", "--once", "--json"))


# --- a limit entry ---------------------------------------------------------------------------------


def test_a_limit_buy_waits_with_its_protection_attached_and_its_cash_locked(robson, db_path):
    done = waiting(robson, "--entry", "32500", "--order", "limit", "--expires", "4h")
    intent = done["intent"]

    assert done["working"] is True and done["operation"] is None
    assert (intent["status"], intent["entry_order"], intent["expires_at"]) == (
        "WORKING", "limit", "2021-06-22T10:00:00+00:00")
    placed = orders(db_path, intent["id"])
    assert (placed["E"]["type"], placed["E"]["status"], D(placed["E"]["price"])) == ("LIMIT", "NEW", D("32500"))
    # The protective OCO waits beside it (Binance's OTOCO): live only once the entry has filled.
    assert (placed["S"]["type"], placed["S"]["status"], D(placed["S"]["stop_price"]),
            D(placed["S"]["target_price"])) == ("OCO", "PENDING_NEW", D("32181.15"), D("33137.7"))
    quantity = D(intent["quantity"])
    assert quantity == D("0.01538")
    assert paper_balances(db_path)["USDT"] == (D(1000) - quantity * 32500, quantity * 32500)
    assert invariant_breaches(db_path) == []


def test_a_limit_buy_fills_at_its_price_in_the_first_candle_whose_low_touches_it(robson, db_path):
    intent_id = waiting(robson, "--entry", "32500", "--order", "limit", "--expires", "4h")["intent"]["id"]

    early = monitor(robson, "2021-06-22T06:45")  # candles 06:05–06:40 closed, lows all above 32500
    assert [(e["outcome"], e["status"]) for e in early["entries"]] == [("waiting", "WORKING")]

    tick = monitor(robson, "2021-06-22T07:00")

    [entry] = tick["entries"]
    assert (entry["outcome"], entry["status"]) == ("filled", "EXECUTED")
    op = parsed(robson("operation", "status", entry["operation_id"], "--json"))["operations"][0]
    # 06:45 opened at 32578.88, above the limit: filled at the limit, 32500, with the maker fee (0.1 %).
    assert (op["status"], op["quantity"], op["entry_price"], op["opened_at"]) == (
        "ACTIVE", "0.01538", "32500", "2021-06-22T06:45:00+00:00")
    assert D(op["entry_fee"]) == D("32500") * D("0.01538") * D("0.001")  # 0.49985
    assert (op["stop"], op["target"]) == ("32181.15", "33137.7")  # the levels attached when it was placed
    placed = orders(db_path, intent_id)
    assert (placed["E"]["status"], placed["S"]["status"]) == ("FILLED", "NEW")
    btc, usdt = paper_balances(db_path)["BTC"], paper_balances(db_path)["USDT"]
    assert btc == (D(0), D("0.01538"))  # all locked by the stop
    assert usdt == (D(1000) - D("32500") * D("0.01538") - D("0.49985"), D(0))
    assert invariant_breaches(db_path) == []


def test_the_filled_limit_entry_is_then_watched_like_any_position_until_its_stop(robson, db_path):
    waiting(robson, "--entry", "32500", "--order", "limit", "--expires", "4h")
    monitor(robson, "2021-06-22T07:00")

    tick = monitor(robson, "2021-06-22T08:30")

    [closed] = tick["operations"]
    exit_ = closed["exit"]
    assert (closed["status"], exit_["reason"], exit_["at"], exit_["candle_open"]) == (
        "CLOSED", "stop", "2021-06-22T08:20:00+00:00", "2021-06-22T08:15:00+00:00")
    assert invariant_breaches(db_path) == []


def test_a_limit_entry_that_fills_is_checked_again_in_the_same_tick_only_for_its_stop_in_the_fill_candle(
        robson, db_path):
    # A target right above the fill: the 06:45 candle's high 32636.04 reaches 32600 but may have come before
    # the fill at 32500; the target is taken only from the next candle on (06:50 high 32728).
    waiting(robson, "--entry", "32500", "--order", "limit", "--stop", "32400", "--target", "32600")

    tick = monitor(robson, "2021-06-22T07:00")

    [op] = tick["operations"]
    exit_ = op["exit"]
    assert (exit_["reason"], D(exit_["price"]), exit_["candle_open"]) == ("target", D("32600"), "2021-06-22T06:50:00+00:00")
    assert invariant_breaches(db_path) == []


# --- a stop entry ---------------------------------------------------------------------------------


def test_a_stop_buy_triggers_on_the_breakout_and_fills_like_a_market_order(robson, db_path):
    done = waiting(robson, "--entry", "32800", "--order", "stop")
    intent_id = done["intent"]["id"]
    assert orders(db_path, intent_id)["E"]["type"] == "STOP_LOSS_LIMIT" and "S" not in orders(db_path, intent_id)

    tick = monitor(robson, "2021-06-22T06:30")

    [entry] = tick["entries"]
    op = parsed(robson("operation", "status", entry["operation_id"], "--json"))["operations"][0]
    # 06:20: high 32805.77 ≥ 32800, open 32707.75 below it (no gap): 32800 + 0.05 % slippage = 32816.4, taker fee.
    assert (op["entry_price"], op["opened_at"], op["quantity"]) == ("32816.4", "2021-06-22T06:20:00+00:00", "0.01524")
    assert D(op["entry_fee"]) == D("32816.4") * D("0.01524") * D("0.001")
    # Its stop is placed by robson once it has filled, at once, in the same tick.
    placed = orders(db_path, intent_id)
    assert (placed["S"]["status"], D(placed["S"]["stop_price"])) == ("NEW", D(op["stop"]))
    assert invariant_breaches(db_path) == []


# --- expiry and cancel --------------------------------------------------------------------------------


def test_an_entry_not_filled_by_its_expiry_is_cancelled_and_its_cash_released(robson, db_path):
    intent_id = waiting(robson, "--entry", "32000", "--order", "limit", "--expires", "1h")["intent"]["id"]

    waiting_tick = monitor(robson, "2021-06-22T06:55")  # planned at 06:00: it expires at 07:00
    tick = monitor(robson, "2021-06-22T07:05")

    assert waiting_tick["entries"][0]["outcome"] == "waiting"
    [entry] = tick["entries"]
    assert (entry["outcome"], entry["status"]) == ("expired", "EXPIRED")
    placed = orders(db_path, intent_id)
    assert (placed["E"]["status"], placed["S"]["status"]) == ("CANCELED", "CANCELED")
    assert paper_balances(db_path)["USDT"] == (D(1000), D(0))
    shown = parsed(robson("plan", "show", intent_id, "--json"))
    assert "entry_expired" in [e["kind"] for e in shown["audit"]]
    assert invariant_breaches(db_path) == []


def test_a_fill_in_a_candle_that_closes_after_the_expiry_does_not_count(robson, db_path):
    # Expires 06:47: the 06:45 candle (the one that trades 32500) closes at 06:50, after it.
    waiting(robson, "--entry", "32500", "--order", "limit", "--expires", "2021-06-22T06:47")

    tick = monitor(robson, "2021-06-22T07:00")

    assert [(e["outcome"], e["status"]) for e in tick["entries"]] == [("expired", "EXPIRED")]
    assert paper_balances(db_path)["USDT"] == (D(1000), D(0))


def test_plan_cancel_withdraws_a_working_entry_from_the_book(robson, db_path):
    intent_id = waiting(robson, "--entry", "32500", "--order", "limit")["intent"]["id"]

    cancelled = parsed(robson("--as-of", "2021-06-22T06:30", "plan", "cancel", intent_id, "--json"))

    assert (cancelled["status"], cancelled["outcome"]) == ("CANCELLED", "cancelled")
    placed = orders(db_path, intent_id)
    assert (placed["E"]["status"], placed["S"]["status"]) == ("CANCELED", "CANCELED")
    assert paper_balances(db_path)["USDT"] == (D(1000), D(0))
    assert monitor(robson, "2021-06-22T07:00")["entries"] == []  # nothing fills it any more
    assert invariant_breaches(db_path) == []


def test_executing_a_working_intent_again_places_nothing(robson, db_path):
    intent_id = waiting(robson, "--entry", "32500", "--order", "limit")["intent"]["id"]
    before = dump_database(db_path)

    again = parsed(robson("--as-of", "2021-06-22T06:02", "execute", intent_id, "--json"))

    assert again["already_executed"] is True and again["working"] is True
    assert dump_database(db_path) == before


# --- guards at fill time ---------------------------------------------------------------------------


def test_an_entry_the_guards_refuse_by_the_time_it_would_fill_is_cancelled_before_it_fills(robson, db_path, tmp_path):
    # Daily loss limit 0.01 % of 1000 = 0.10 USDT: a 0.003 BTC round trip at market costs more in fees and slippage.
    (tmp_path / ".robson.yaml").write_text("risk:\n  daily_loss_percent: 0.01\n")
    intent_id = waiting(robson, "--entry", "32500", "--order", "limit")["intent"]["id"]
    other = parsed(robson("--as-of", "2021-06-22T06:10", "plan", "buy", "BTCUSDT", "0.003", "--json"))
    parsed(robson("--as-of", "2021-06-22T06:10", "validate", other["id"], "--json"))
    op = parsed(robson("--as-of", "2021-06-22T06:10", "execute", other["id"], "--json"))["operation"]
    closed = parsed(robson("--as-of", "2021-06-22T06:15", "operation", "close", op["id"], "--json"))
    assert D(closed["realized_pnl"]) < D("-0.1")

    tick = monitor(robson, "2021-06-22T07:00")

    [entry] = tick["entries"]
    assert (entry["outcome"], entry["status"]) == ("refused", "FAILED")
    assert "refused at fill time by the guards: daily loss" in entry["message"]
    assert orders(db_path, intent_id)["E"]["status"] == "CANCELED"
    assert paper_balances(db_path).get("BTC", (D(0), D(0))) == (D(0), D(0))
    assert invariant_breaches(db_path) == []


def test_a_waiting_entry_counts_as_a_position_for_the_guards_of_other_plans(robson, db_path, tmp_path):
    (tmp_path / ".robson.yaml").write_text("risk:\n  max_open_positions: 1\n")
    waiting(robson, "--entry", "32500", "--order", "limit")
    other = parsed(robson("--as-of", "2021-06-22T06:10", "plan", "buy", "BTCUSDT", "--json"))

    result = robson("--as-of", "2021-06-22T06:10", "validate", other["id"], "--json")

    assert result.exit_code != 0
    assert "1 open (max 1)" in result.stdout or "open positions" in result.stdout


# --- bad input: exit 2, one line, nothing written ---------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (["--entry", "0", "--order", "limit"], "entry must be"),
    (["--entry", "-32500", "--order", "limit"], "entry must be"),
    (["--order", "limit"], "--order limit needs --entry PRICE"),
    (["--entry", "32500", "--order", "oco"], "order must be one of market, limit, stop"),
    (["--entry", "32500", "--order", "limit", "--expires", "2021-06-22T05:00"], "is not after now"),
    (["--entry", "32500", "--order", "limit", "--expires", "soon"], "expires must be a duration"),
    (["--entry", "32500", "--order", "stop"], "a stop buy entry must be above the market"),
    (["--entry", "32800", "--order", "limit"], "a limit buy entry must be below the market"),
    (["--entry", "32500", "--expires", "4h"], "--expires applies to an entry that waits"),
])
def test_a_bad_waiting_entry_is_refused_with_one_line_and_nothing_written(robson, db_path, args, words):
    parsed(robson("--as-of", PLANNED, "plan", "list", "--json"))  # the database exists
    before = dump_database(db_path)

    result = robson("--as-of", PLANNED, "plan", "buy", "BTCUSDT", *args)

    assert_user_error(result, 2, words)
    assert dump_database(db_path) == before


def test_a_stop_entry_the_market_has_run_through_since_it_was_validated_is_not_executed(robson, db_path):
    intent = parsed(robson("--as-of", PLANNED, "plan", "buy", "BTCUSDT", "--entry", "32600", "--order", "stop",
                           "--json"))
    # At 06:10 the price is 06:05's close, 32542.68: below 32600, the stop waits. At 06:20 it is 32707.76.
    parsed(robson("--as-of", "2021-06-22T06:10", "validate", intent["id"], "--json"))
    before = dump_database(db_path)

    refused = robson("--as-of", "2021-06-22T06:20", "execute", intent["id"])

    assert_user_error(refused, 3, "the market moved through the entry", "a stop buy entry must be above the market")
    assert dump_database(db_path) == before  # still VALIDATED, nothing sent
