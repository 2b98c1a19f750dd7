"""The books: per-strategy performance on a hand-computed set of closed operations."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from robson.domain.market import Side
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.performance import max_drawdown, performance, performance_by_strategy
from robson.errors import InvalidInput

CAPITAL = D("1000")


def opened(op_id: str, strategy: str, side: Side = Side.BUY) -> Operation:
    """One unit entered at 100 with a fee of 1; stop 90 for a long (R = 10), 105 for a short (R = 5)."""
    stop = D("90") if side is Side.BUY else D("105")
    at = datetime(2021, 6, 30, tzinfo=UTC)
    return Operation(id=op_id, intent_id=f"pl-{op_id}", symbol="XUSDT", side=side, status=OperationStatus.ACTIVE,
                     mode="paper", strategy=strategy, quantity=D("1"), entry_price=D("100"), entry_fee=D("1"),
                     initial_stop=stop, stop=stop, target=None, opened_at=at, updated_at=at)


def trade(op_id: str, strategy: str, exit_price: str, closed_at: datetime, side: Side = Side.BUY) -> Operation:
    """The operation closed at exit_price with an exit fee of 1."""
    return opened(op_id, strategy, side).close(exit_price=D(exit_price), exit_fee=D("1"), reason=CloseReason.MANUAL,
                                               at=closed_at)


def when(month: int, day: int, hour: int = 12) -> datetime:
    return datetime(2021, month, day, hour, tzinfo=UTC)


# Realized P&L = (exit − 100) × side − 2 fees;  R = P&L / initial risk.
ALL_IN = [
    trade("a1", "all-in", "121", when(7, 1, 10)),  # +21 − 2 = +19   R +1.9   cumulative 19
    trade("a2", "all-in", "90", when(7, 1, 15)),   # −10 − 2 = −12   R −1.2   cumulative  7
    trade("a3", "all-in", "92", when(7, 2)),       #  −8 − 2 = −10   R −1.0   cumulative −3
    trade("a4", "all-in", "132", when(8, 3)),      # +32 − 2 = +30   R +3.0   cumulative 27
    trade("a5", "all-in", "102", when(8, 4)),      #  +2 − 2 =   0   R  0     cumulative 27
]
BOUNCE_BACK = [  # shorts, R = 5
    trade("b1", "bounce-back", "95", when(7, 3), Side.SELL),   #  +5 − 2 = +3   R +0.6   cumulative  3
    trade("b2", "bounce-back", "106", when(7, 5), Side.SELL),  #  −6 − 2 = −8   R −1.6   cumulative −5
    trade("b3", "bounce-back", "90", when(8, 1), Side.SELL),   # +10 − 2 = +8   R +1.6   cumulative  3
]


def not_closed() -> list[Operation]:
    cancelled = dataclasses.replace(opened("x2", "all-in"), status=OperationStatus.CANCELLED)
    return [opened("x1", "all-in"), cancelled]


def test_all_in_figures_match_the_hand_computation():
    # 5 trades: wins a1, a4; losses a2, a3; a5 breaks even.
    # win rate 2/5 = 40 %; average R (1.9 − 1.2 − 1.0 + 3.0 + 0) / 5 = 2.7 / 5 = 0.54
    # total 19 − 12 − 10 + 30 + 0 = 27; expectancy 27 / 5 = 5.4 per trade
    # gross profit 49, gross loss 22 → profit factor 49 / 22 = 2.2272…
    # drawdown: peak 19 (a1) to trough −3 (a3) = 22 → 2.2 % of 1,000
    result = performance(ALL_IN, strategy="all-in", capital=CAPITAL)

    assert (result.trades, result.wins, result.losses, result.break_even) == (5, 2, 2, 1)
    assert result.win_rate == D("40")
    assert result.average_r == D("0.54") == result.expectancy_r
    assert (result.total_pnl, result.expectancy) == (D("27"), D("5.4"))
    assert (result.gross_profit, result.gross_loss) == (D("49"), D("22"))
    assert result.profit_factor == D("49") / D("22")
    assert (result.max_drawdown, result.max_drawdown_percent) == (D("22"), D("2.2"))
    assert (result.best.id, result.worst.id) == ("a4", "a2")
    assert result.total_fees == D("10")  # 5 trades × 2


def test_all_in_month_breakdown_matches_the_hand_computation():
    # July: a1 +19, a2 −12, a3 −10 → 3 trades, 1 win, 2 losses, −3, R −0.3
    # August: a4 +30, a5 0 → 2 trades, 1 win, 0 losses, +30, R 3.0
    result = performance(ALL_IN, capital=CAPITAL)

    assert [(p.period, p.trades, p.wins, p.losses, p.pnl, p.r) for p in result.periods] == [
        ("2021-07", 3, 1, 2, D("-3"), D("-0.3")),
        ("2021-08", 2, 1, 0, D("30"), D("3.0")),
    ]


def test_day_breakdown_groups_trades_by_utc_closing_day():
    result = performance(ALL_IN, period="day")

    assert [(p.period, p.trades, p.pnl) for p in result.periods] == [
        ("2021-07-01", 2, D("7")), ("2021-07-02", 1, D("-10")), ("2021-08-03", 1, D("30")), ("2021-08-04", 1, D("0")),
    ]


def test_bounce_back_shorts_match_the_hand_computation():
    # win rate 2/3; average R (0.6 − 1.6 + 1.6) / 3 = 0.2; total 3 − 8 + 8 = 3; expectancy 1
    # profit factor 11 / 8 = 1.375; drawdown peak 3 to trough −5 = 8 → 0.8 %
    result = performance(BOUNCE_BACK, strategy="bounce-back", capital=CAPITAL)

    assert result.win_rate == D("2") / D("3") * 100
    assert (result.average_r, result.total_pnl, result.expectancy) == (D("0.2"), D("3"), D("1"))
    assert result.profit_factor == D("1.375")
    assert (result.max_drawdown, result.max_drawdown_percent) == (D("8"), D("0.8"))
    assert (result.best.id, result.worst.id) == ("b3", "b2")


def test_report_lists_each_strategy_by_name_and_ignores_operations_not_closed():
    operations = BOUNCE_BACK + ALL_IN + not_closed()

    results = performance_by_strategy(operations, capital=CAPITAL)

    assert [(r.strategy, r.trades, r.total_pnl) for r in results] == [("all-in", 5, D("27")), ("bounce-back", 3, D("3"))]


def test_all_strategies_together_interleave_by_closing_time():
    # Closing order: a1 +19 (19), a2 −12 (7), a3 −10 (−3), b1 +3 (0), b2 −8 (−8), b3 +8 (0), a4 +30 (30), a5 0 (30)
    # drawdown: peak 19 to trough −8 = 27 → 2.7 %; total 30 over 8 trades → 3.75
    # wins 4 of 8 = 50 %; average R (2.7 + 0.6) / 8 = 0.4125; profit factor (49 + 11) / (22 + 8) = 2
    result = performance(ALL_IN + BOUNCE_BACK, capital=CAPITAL)

    assert (result.strategy, result.trades, result.win_rate) == ("all", 8, D("50"))
    assert (result.max_drawdown, result.max_drawdown_percent) == (D("27"), D("2.7"))
    assert (result.total_pnl, result.expectancy, result.average_r) == (D("30"), D("3.75"), D("0.4125"))
    assert result.profit_factor == D("2")


def test_profit_factor_without_losses_is_none_and_flagged_infinite():
    result = performance([ALL_IN[0], ALL_IN[3]])

    assert (result.profit_factor, result.profit_factor_infinite) == (None, True)
    assert result.max_drawdown_percent is None  # no capital given


def test_no_closed_trades_give_empty_figures():
    result = performance(not_closed(), capital=CAPITAL)

    assert (result.trades, result.win_rate, result.average_r, result.expectancy) == (0, None, None, None)
    assert (result.profit_factor, result.profit_factor_infinite) == (None, False)
    assert (result.max_drawdown, result.max_drawdown_percent, result.best, result.periods) == (D("0"), D("0"), None, ())


def test_a_first_losing_trade_is_a_drawdown_from_the_start():
    assert max_drawdown([D("-5"), D("2"), D("-4")]) == D("7")  # 0 → −5 → −3 → −7


def test_an_unknown_period_is_refused():
    with pytest.raises(InvalidInput, match="period must be one of day, month"):
        performance(ALL_IN, period="week")
