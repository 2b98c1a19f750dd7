"""`robson report` through the CLI on a hand-computed set of closed operations."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from robson.adapters.store import SqlStore
from robson.domain.intent import IntentStatus
from robson.domain.market import Side
from robson.domain.operation import CloseReason, Operation, OperationStatus
from tests import databases
from tests.cli.conftest import assert_user_error, floats_in, parsed
from tests.integration.factories import make_intent

OPENED = datetime(2021, 6, 30, tzinfo=UTC)


def when(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2021, month, day, hour, tzinfo=UTC)


def operation(op_id: str, strategy: str, side: Side = Side.BUY) -> Operation:
    """One unit entered at 100 with a fee of 1; stop 90 for a long (1 R = 10), 105 for a short (1 R = 5)."""
    stop = D("90") if side is Side.BUY else D("105")
    return Operation(id=op_id, intent_id=f"pl-{op_id[3:]}", symbol="BTCUSDT", side=side, status=OperationStatus.ACTIVE,
                     mode="paper", strategy=strategy, quantity=D("1"), entry_price=D("100"), entry_fee=D("1"),
                     initial_stop=stop, stop=stop, target=None, opened_at=OPENED, updated_at=OPENED)


# Realized P&L = (exit − 100) × side − 2 fees of 1;  R = P&L / 1 R.
TRADES = [  # (id, strategy, side, exit, closed at)
    ("op-a1", "all-in", Side.BUY, "121", when(7, 1, 10)),        # +19   R +1.9
    ("op-a2", "all-in", Side.BUY, "90", when(7, 1, 15)),         # −12   R −1.2
    ("op-a3", "all-in", Side.BUY, "92", when(7, 2)),             # −10   R −1.0
    ("op-b1", "bounce-back", Side.SELL, "95", when(7, 3)),       #  +3   R +0.6
    ("op-b2", "bounce-back", Side.SELL, "106", when(7, 5)),      #  −8   R −1.6
    ("op-b3", "bounce-back", Side.SELL, "90", when(8, 1)),       #  +8   R +1.6
    ("op-a4", "all-in", Side.BUY, "132", when(8, 3)),            # +30   R +3.0
    ("op-a5", "all-in", Side.BUY, "102", when(8, 4)),            #   0   R  0
]


@pytest.fixture
def books(db_path):
    """Store the closed trades above plus one still ACTIVE operation (which the report ignores)."""
    store = SqlStore(databases.store_url(db_path))
    with store.transaction() as tx:
        for op_id, strategy, side, exit_price, closed_at in TRADES:
            tx.add_intent(make_intent(f"pl-{op_id[3:]}", status=IntentStatus.EXECUTED, strategy=strategy, side=side))
            tx.add_operation(operation(op_id, strategy, side).close(
                exit_price=D(exit_price), exit_fee=D("1"), reason=CloseReason.MANUAL, at=closed_at))
        tx.add_intent(make_intent("pl-open", status=IntentStatus.EXECUTED, strategy="all-in"))
        tx.add_operation(operation("op-open", "all-in"))
    store.close()


def report(robson, *args: str) -> dict:
    result = robson("report", *args, "--json")
    doc = parsed(result)
    assert result.stderr == ""
    assert floats_in(doc) == []
    return doc


def test_report_figures_match_the_hand_computation(robson, books):
    doc = report(robson)

    by_name = {p["strategy"]: p for p in doc["strategies"]}
    assert list(by_name) == ["all-in", "bounce-back"]
    all_in = by_name["all-in"]
    # 5 trades: wins a1, a4; losses a2, a3; a5 breaks even. Win rate 40 %; average R 2.7 / 5 = 0.54;
    # total 27, expectancy 5.4; profit factor 49 / 22 = 2.2273; drawdown peak 19 → trough −3 = 22 = 2.2 % of 1000.
    assert (all_in["trades"], all_in["wins"], all_in["losses"], all_in["break_even"]) == (5, 2, 2, 1)
    assert (all_in["win_rate_percent"], all_in["average_r"], all_in["expectancy"]) == ("40", "0.54", "5.4")
    assert (all_in["profit_factor"], all_in["total_pnl"], all_in["total_fees"]) == ("2.2273", "27", "10")
    assert (all_in["max_drawdown"], all_in["max_drawdown_percent"]) == ("22", "2.2")
    assert (all_in["best"]["id"], all_in["best"]["realized_pnl"], all_in["worst"]["id"]) == ("op-a4", "30", "op-a2")
    bounce = by_name["bounce-back"]
    # Shorts: 2 of 3 win; average R (0.6 − 1.6 + 1.6) / 3 = 0.2; profit factor 11 / 8 = 1.375; drawdown 3 → −5 = 8.
    assert (bounce["win_rate_percent"], bounce["average_r"], bounce["profit_factor"]) == ("66.6667", "0.2", "1.375")
    assert (bounce["total_pnl"], bounce["max_drawdown"], bounce["max_drawdown_percent"]) == ("3", "8", "0.8")


def test_all_strategies_together_and_the_month_breakdown(robson, books):
    doc = report(robson)

    overall = doc["overall"]
    # Closing order: +19, −12, −10, +3, −8, +8, +30, 0 → cumulative 19, 7, −3, 0, −8, 0, 30, 30: drawdown 27.
    assert (overall["strategy"], overall["trades"], overall["win_rate_percent"]) == ("all", 8, "50")
    assert (overall["average_r"], overall["expectancy"], overall["profit_factor"]) == ("0.4125", "3.75", "2")
    assert (overall["total_pnl"], overall["max_drawdown"], overall["max_drawdown_percent"]) == ("30", "27", "2.7")
    # July: +19 −12 −10 +3 −8 = −8 (R −1.3); August: +8 +30 +0 = 38 (R 4.6).
    assert [(p["period"], p["trades"], p["wins"], p["losses"], p["pnl"], p["r"]) for p in overall["periods"]] == [
        ("2021-07", 5, 2, 3, "-8", "-1.3"), ("2021-08", 3, 2, 0, "38", "4.6")]
    assert (doc["period"], doc["capital"], doc["since"], doc["strategy"]) == ("month", "1000", None, None)


def test_one_strategy_by_day(robson, books):
    doc = report(robson, "--strategy", "all-in", "--period", "day")

    assert doc["overall"]["strategy"] == "all-in"
    assert [p["strategy"] for p in doc["strategies"]] == ["all-in"]
    assert [(p["period"], p["trades"], p["pnl"]) for p in doc["overall"]["periods"]] == [
        ("2021-07-01", 2, "7"), ("2021-07-02", 1, "-10"), ("2021-08-03", 1, "30"), ("2021-08-04", 1, "0")]


def test_since_keeps_only_operations_closed_from_that_date(robson, books):
    doc = report(robson, "--since", "2021-08-01")

    overall = doc["overall"]
    # b3 +8, a4 +30, a5 0: no loss, so the profit factor is infinite (null, flagged).
    assert (overall["trades"], overall["wins"], overall["break_even"], overall["total_pnl"]) == (3, 2, 1, "38")
    assert (overall["profit_factor"], overall["profit_factor_infinite"]) == (None, True)
    assert doc["since"] == "2021-08-01T00:00:00+00:00"


def test_the_human_report_is_a_table_per_strategy_and_per_period(robson, books):
    result = robson("report", "--since", "2021-08-01")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].rstrip() == "Performance closed since 2021-08-01 00:00 UTC"
    assert any("all-in" in line and "50.0%" in line and "∞" in line and "op-a4 30.00" in line for line in lines)
    assert any("2021-08" in line and "38.00" in line for line in lines)


def test_a_known_strategy_without_trades_reports_nothing(robson, books):
    doc = report(robson, "--strategy", "smooth-sailing")
    assert (doc["overall"]["trades"], doc["strategies"]) == (0, [])

    result = robson("report", "--strategy", "smooth-sailing")
    assert result.stdout.strip() == "No closed operations of smooth-sailing."


def test_bad_report_options_exit_2(robson, books):
    assert_user_error(robson("report", "--strategy", "yolo"), 2, "yolo", "known: all-in")
    assert_user_error(robson("report", "--since", "last tuesday"), 2, "--since must be an ISO time")
    assert_user_error(robson("report", "--period", "week"), 2, "period must be one of day, month")


def test_an_operation_closed_by_the_monitor_is_in_the_report(robson):
    intent = parsed(robson("--as-of", "2021-06-01T12:00", "plan", "buy", "BTCUSDT", "--stop", "36000", "--json"))
    parsed(robson("--as-of", "2021-06-01T12:00", "validate", intent["id"], "--json"))
    parsed(robson("--as-of", "2021-06-01T12:00", "execute", intent["id"], "--json"))
    parsed(robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json"))

    doc = report(robson)

    # The stop-out of tests/cli/test_monitor.py: −9.6374978638 USDT, 1 R = (36614.93 − 36000) × 0.01366 = 8.3999438.
    overall = doc["overall"]
    assert (overall["trades"], overall["losses"], overall["total_pnl"]) == (1, 1, "-9.6374978638")
    assert D(overall["average_r"]) == (D("-9.6374978638") / D("8.3999438")).quantize(D("0.0001"))  # −1.1473
    assert overall["periods"][0]["period"] == "2021-06"
