"""A backtest's numbers: what its closed trades earned, how deep it fell, how steady it was.

Pure Decimal arithmetic over the closed operations of a replay (robson.domain.performance
gives the per-trade figures shared with `robson report`). Definitions:

- Equity is the starting capital plus the realized P&L of the trades closed so far, in
  closing order (freqtrade's "closed trades" balance); the equity curve has one point per close.
- Max drawdown is the deepest fall of equity below its running peak: its amount, its percent
  of that peak, the peak's time (start), the trough's time (end), how long the fall took and
  when (if ever) equity regained the peak.
- Returns are daily (UTC): each day's realized P&L over the equity at the start of the day,
  for every day of the replay, trading or not. Sharpe = mean / sample standard deviation ×
  √365; Sortino = mean / downside deviation (√ of the mean squared negative return) × √365;
  both None when there is no spread to divide by. CAGR compounds the total return over the
  replay's length in years of 365.25 days; Calmar = CAGR / max drawdown percent.
- Time in market is the share of the replay during which at least one position was open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from robson.domain.money import HUNDRED, ONE, ZERO, percent
from robson.domain.operation import Operation, r_multiple
from robson.domain.performance import Performance, closed_trades, performance

DAYS_PER_YEAR = Decimal("365")
YEAR = Decimal("365.25")


@dataclass(frozen=True, slots=True)
class Drawdown:
    amount: Decimal  # ≥ 0, in quote
    percent: Decimal  # of the peak equity
    start: datetime | None  # when equity stood at the peak it fell from
    end: datetime | None  # the trough
    recovered: datetime | None  # when equity first regained the peak; None if it never did

    @property
    def duration(self) -> timedelta | None:
        """From the peak to the trough."""
        return self.end - self.start if self.start is not None and self.end is not None else None


@dataclass(frozen=True, slots=True)
class Breakdown:
    key: str  # an exit reason, a symbol or a month (YYYY-MM)
    trades: int
    wins: int
    losses: int
    pnl: Decimal
    average_r: Decimal | None
    fees: Decimal

    @property
    def win_rate(self) -> Decimal | None:
        return percent(Decimal(self.wins), Decimal(self.trades)) if self.trades else None


@dataclass(frozen=True, slots=True)
class EquityPoint:
    at: datetime
    equity: Decimal
    drawdown: Decimal  # below the running peak, ≥ 0


@dataclass(frozen=True, slots=True)
class SavedBacktest:
    """A backtest kept in the store (`--save`): its headline and the whole document it printed."""

    id: str  # bt-xxxxxxxx
    created_at: datetime
    strategy: str
    symbols: tuple[str, ...]
    trades: int
    total_pnl: Decimal
    document: dict  # settings, summary, breakdowns, equity and trades, money as text


@dataclass(frozen=True, slots=True)
class BacktestStats:
    performance: Performance
    capital: Decimal
    start: datetime
    end: datetime
    final_equity: Decimal
    total_return_percent: Decimal
    cagr_percent: Decimal | None  # None for a replay shorter than a day
    drawdown: Drawdown
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None
    time_in_market_percent: Decimal
    average_duration: timedelta | None
    longest_duration: timedelta | None
    longest_losing_streak: int
    by_reason: tuple[Breakdown, ...]
    by_symbol: tuple[Breakdown, ...]
    by_month: tuple[Breakdown, ...]
    equity: tuple[EquityPoint, ...]


def equity_curve(trades: Sequence[Operation], capital: Decimal) -> list[EquityPoint]:
    """Equity after each close, in closing order, with the drawdown below the running peak."""
    points, equity, peak = [], capital, capital
    for op in trades:
        equity += op.realized_pnl
        peak = max(peak, equity)
        points.append(EquityPoint(op.closed_at, equity, peak - equity))
    return points


def deepest_drawdown(points: Sequence[EquityPoint], capital: Decimal, start: datetime) -> Drawdown:
    """The deepest fall of equity below its running peak (the peak starting at capital, at start)."""
    peak, peak_at = capital, start
    best = Drawdown(ZERO, ZERO, None, None, None)
    for point in points:
        if point.equity > peak:
            peak, peak_at = point.equity, point.at
        fall = peak - point.equity
        if fall > best.amount:
            best = Drawdown(fall, percent(fall, peak), peak_at, point.at, None)
    if best.start is None:
        return best
    level = best.amount + next(p.equity for p in points if p.at == best.end)
    recovered = next((p.at for p in points if p.at > best.end and p.equity >= level), None)
    return Drawdown(best.amount, best.percent, best.start, best.end, recovered)


def daily_returns(trades: Sequence[Operation], capital: Decimal, start: datetime, end: datetime) -> list[Decimal]:
    """Each UTC day's realized P&L over the equity at the start of that day, every day from start to end."""
    by_day: dict[datetime, Decimal] = {}
    for op in trades:
        day = op.closed_at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        by_day[day] = by_day.get(day, ZERO) + op.realized_pnl
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    returns, equity = [], capital
    while day < end:
        pnl = by_day.get(day, ZERO)
        returns.append(pnl / equity if equity > 0 else ZERO)
        equity += pnl
        day += timedelta(days=1)
    return returns


def sharpe_ratio(returns: Sequence[Decimal]) -> Decimal | None:
    if len(returns) < 2:
        return None
    mean = sum(returns, ZERO) / len(returns)
    variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (len(returns) - 1)
    if variance <= 0:
        return None
    return mean / variance.sqrt() * DAYS_PER_YEAR.sqrt()


def sortino_ratio(returns: Sequence[Decimal]) -> Decimal | None:
    if not returns:
        return None
    mean = sum(returns, ZERO) / len(returns)
    downside = sum((r * r for r in returns if r < 0), ZERO) / len(returns)
    if downside <= 0:
        return None
    return mean / downside.sqrt() * DAYS_PER_YEAR.sqrt()


def compound_annual_growth(capital: Decimal, final: Decimal, length: timedelta) -> Decimal | None:
    """CAGR in percent, None for less than a day or a wiped-out account."""
    days = Decimal(length.total_seconds()) / Decimal(86400)
    if days < 1 or capital <= 0 or final <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 28
        return ((final / capital) ** (YEAR / days) - ONE) * HUNDRED


def time_in_market(trades: Iterable[Operation], start: datetime, end: datetime) -> Decimal:
    """Percent of [start, end] during which at least one position was open."""
    spans = sorted((max(op.opened_at, start), min(op.closed_at, end)) for op in trades)
    covered, reach = timedelta(0), start
    for opened, closed in spans:
        opened = max(opened, reach)
        if closed > opened:
            covered += closed - opened
            reach = closed
    total = end - start
    return percent(Decimal(covered.total_seconds()), Decimal(total.total_seconds())) if total > timedelta(0) else ZERO


def losing_streak(trades: Sequence[Operation]) -> int:
    longest = current = 0
    for op in trades:
        current = current + 1 if op.realized_pnl < 0 else 0
        longest = max(longest, current)
    return longest


def breakdown(trades: Sequence[Operation], key: Callable[[Operation], str]) -> tuple[Breakdown, ...]:
    groups: dict[str, list[Operation]] = {}
    for op in trades:
        groups.setdefault(key(op), []).append(op)
    result = []
    for name, ops in sorted(groups.items()):
        rs = [r for op in ops if (r := r_multiple(op)) is not None]
        result.append(Breakdown(
            key=name, trades=len(ops), wins=sum(1 for op in ops if op.realized_pnl > 0),
            losses=sum(1 for op in ops if op.realized_pnl < 0), pnl=sum((op.realized_pnl for op in ops), ZERO),
            average_r=sum(rs, ZERO) / len(rs) if rs else None,
            fees=sum((op.entry_fee + op.exit_fee for op in ops), ZERO),
        ))
    return tuple(result)


def backtest_stats(operations: Iterable[Operation], *, capital: Decimal, start: datetime, end: datetime) -> BacktestStats:
    """Summarize a replay's closed operations over [start, end] from a starting capital."""
    trades = closed_trades(operations)
    perf = performance(trades, capital=capital, period="month")
    points = equity_curve(trades, capital)
    final = points[-1].equity if points else capital
    drawdown = deepest_drawdown(points, capital, start)
    returns = daily_returns(trades, capital, start, end)
    cagr = compound_annual_growth(capital, final, end - start)
    durations = [op.closed_at - op.opened_at for op in trades]
    return BacktestStats(
        performance=perf, capital=capital, start=start, end=end, final_equity=final,
        total_return_percent=percent(final - capital, capital), cagr_percent=cagr, drawdown=drawdown,
        sharpe=sharpe_ratio(returns), sortino=sortino_ratio(returns),
        calmar=cagr / drawdown.percent if cagr is not None and drawdown.percent > 0 else None,
        time_in_market_percent=time_in_market(trades, start, end),
        average_duration=sum(durations, timedelta(0)) / len(durations) if durations else None,
        longest_duration=max(durations, default=None),
        longest_losing_streak=losing_streak(trades),
        by_reason=breakdown(trades, lambda op: op.close_reason.value if op.close_reason else "-"),
        by_symbol=breakdown(trades, lambda op: op.symbol),
        by_month=breakdown(trades, lambda op: op.closed_at.astimezone(UTC).strftime("%Y-%m")),
        equity=tuple(points),
    )
