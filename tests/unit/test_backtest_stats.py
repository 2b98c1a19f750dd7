"""A backtest's numbers, checked by hand on a few closed trades."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from robson.domain.backtest_stats import (
    backtest_stats,
    compound_annual_growth,
    daily_returns,
    deepest_drawdown,
    equity_curve,
    losing_streak,
    sharpe_ratio,
    sortino_ratio,
    time_in_market,
)
from robson.domain.market import Side
from robson.domain.operation import CloseReason, Operation, OperationStatus

START = datetime(2021, 6, 1, tzinfo=UTC)


def trade(day: int, pnl: str, *, hours: int = 2, symbol: str = "BTCUSDT", reason=CloseReason.STOP) -> Operation:
    opened = START + timedelta(days=day)
    return Operation(id=f"op-{day}", intent_id="pl", symbol=symbol, side=Side.BUY, status=OperationStatus.CLOSED,
                     mode="backtest", strategy="s", quantity=D("1"), entry_price=D("100"), entry_fee=D("0.1"),
                     initial_stop=D("90"), stop=D("90"), target=None, opened_at=opened,
                     updated_at=opened + timedelta(hours=hours), exit_price=D("100"), exit_fee=D("0.1"),
                     realized_pnl=D(pnl), close_reason=reason, closed_at=opened + timedelta(hours=hours))


TRADES = [trade(0, "10"), trade(1, "-30"), trade(2, "-5"), trade(3, "40", reason=CloseReason.TARGET),
          trade(4, "-1", symbol="ETHUSDT")]


def test_equity_and_the_deepest_drawdown_from_its_running_peak():
    points = equity_curve(TRADES, D("1000"))
    drawdown = deepest_drawdown(points, D("1000"), START)

    assert [p.equity for p in points] == [D("1010"), D("980"), D("975"), D("1015"), D("1014")]
    # Peak 1010 (day 0) → trough 975 (day 2): 35 = 3.4653… % of the peak; regained on day 3.
    assert (drawdown.amount, drawdown.start, drawdown.end) == (D("35"), TRADES[0].closed_at, TRADES[2].closed_at)
    assert drawdown.percent == D("35") / D("1010") * 100
    assert drawdown.recovered == TRADES[3].closed_at
    assert drawdown.duration == timedelta(days=2)


def test_daily_returns_count_every_day_trading_or_not():
    returns = daily_returns(TRADES, D("1000"), START, START + timedelta(days=7))

    assert returns[:3] == [D("10") / D("1000"), D("-30") / D("1010"), D("-5") / D("980")]
    assert returns[5:] == [D(0), D(0)]


def test_sharpe_and_sortino_annualise_the_daily_mean_by_root_365():
    returns = [D("0.01"), D("-0.01"), D("0.02"), D("0")]
    mean = D("0.005")
    sample_sd = (sum((r - mean) ** 2 for r in returns) / 3).sqrt()
    downside = (D("0.0001") / 4).sqrt()

    assert sharpe_ratio(returns) == mean / sample_sd * D(365).sqrt()
    assert sortino_ratio(returns) == mean / downside * D(365).sqrt()
    assert sharpe_ratio([D("0.01")] * 5) is None and sortino_ratio([D("0.01")] * 5) is None


def test_cagr_compounds_the_return_over_years_and_needs_a_day():
    assert compound_annual_growth(D("1000"), D("1100"), timedelta(days=365.25)).quantize(D("0.0001")) == D("10.0000")
    assert compound_annual_growth(D("1000"), D("1100"), timedelta(hours=5)) is None


def test_time_in_market_merges_overlapping_positions():
    overlapping = [trade(0, "1", hours=10), trade(0, "1", hours=5)]

    assert time_in_market(overlapping, START, START + timedelta(hours=20)) == D("50")


def test_the_longest_losing_streak_counts_consecutive_losses():
    assert losing_streak(TRADES) == 2


def test_the_whole_summary_and_its_breakdowns():
    stats = backtest_stats(TRADES, capital=D("1000"), start=START, end=START + timedelta(days=5))

    assert (stats.performance.trades, stats.final_equity, stats.total_return_percent) == (5, D("1014"), D("1.4"))
    assert [(b.key, b.trades, b.pnl) for b in stats.by_reason] == [("stop", 4, D("-26")), ("target", 1, D("40"))]
    assert [(b.key, b.trades) for b in stats.by_symbol] == [("BTCUSDT", 4), ("ETHUSDT", 1)]
    assert [(b.key, b.trades, b.wins, b.losses) for b in stats.by_month] == [("2021-06", 5, 2, 3)]
    assert stats.longest_duration == stats.average_duration == timedelta(hours=2)
    assert stats.calmar == stats.cagr_percent / stats.drawdown.percent
