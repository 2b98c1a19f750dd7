"""The books: performance of closed operations per strategy, overall and per day or month.

Only CLOSED operations with a realized P&L count; anything else is ignored. A win nets
more than 0 after both fees, a loss less than 0, a break-even exactly 0 (a trade, but
neither a win nor a loss). R is realized P&L over the initial risk (operation.r_multiple).
Expectancy in R is the average R: win rate × average winning R − loss rate × average
losing R is the same number. Max drawdown is the deepest fall of cumulative realized P&L
from its running peak (starting at 0), trades taken in closing-time order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal

from robson.domain.money import ZERO, percent
from robson.domain.operation import Operation, OperationStatus, r_multiple
from robson.errors import InvalidInput

PERIOD_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m"}
ALL_STRATEGIES = "all"


@dataclass(frozen=True, slots=True)
class PeriodResult:
    period: str  # "2021-07-01" for a day, "2021-07" for a month (UTC, by closing time)
    trades: int
    wins: int
    losses: int
    pnl: Decimal
    r: Decimal  # sum of the R multiples closed in the period


@dataclass(frozen=True, slots=True)
class Performance:
    """One strategy's (or every strategy's) realized results."""

    strategy: str
    trades: int
    wins: int
    losses: int
    break_even: int
    win_rate: Decimal | None  # percent of trades; None without trades
    average_r: Decimal | None  # None when no trade has a known R
    expectancy: Decimal | None  # average P&L per trade, in quote
    gross_profit: Decimal
    gross_loss: Decimal  # the sum of losing trades as a positive amount
    profit_factor: Decimal | None  # gross profit / gross loss; None without losses (see profit_factor_infinite)
    total_pnl: Decimal
    total_fees: Decimal
    max_drawdown: Decimal  # in quote, ≥ 0
    max_drawdown_percent: Decimal | None  # of the given capital; None without one
    best: Operation | None  # highest realized P&L (the earliest on a tie)
    worst: Operation | None  # lowest realized P&L (the earliest on a tie)
    periods: tuple[PeriodResult, ...]

    @property
    def expectancy_r(self) -> Decimal | None:
        return self.average_r

    @property
    def profit_factor_infinite(self) -> bool:
        """Tell whether there were profits and no losses, a profit factor of ∞."""
        return self.gross_loss == 0 and self.gross_profit > 0


def closed_trades(operations: Iterable[Operation]) -> list[Operation]:
    """Return the CLOSED operations with a realized P&L, in closing-time order."""
    closed = [op for op in operations
              if op.status is OperationStatus.CLOSED and op.realized_pnl is not None and op.closed_at is not None]
    return sorted(closed, key=lambda op: (op.closed_at, op.id))


def max_drawdown(pnls: Sequence[Decimal]) -> Decimal:
    """Return the deepest fall of the running sum of pnls below its peak, the peak starting at 0."""
    peak = cumulative = deepest = ZERO
    for pnl in pnls:
        cumulative += pnl
        peak = max(peak, cumulative)
        deepest = max(deepest, peak - cumulative)
    return deepest


def _periods(trades: Sequence[Operation], period: str) -> tuple[PeriodResult, ...]:
    groups: dict[str, list[Operation]] = {}
    for op in trades:
        groups.setdefault(op.closed_at.astimezone(UTC).strftime(PERIOD_FORMATS[period]), []).append(op)
    return tuple(
        PeriodResult(
            period=key,
            trades=len(ops),
            wins=sum(1 for op in ops if op.realized_pnl > 0),
            losses=sum(1 for op in ops if op.realized_pnl < 0),
            pnl=sum((op.realized_pnl for op in ops), ZERO),
            r=sum((r for op in ops if (r := r_multiple(op)) is not None), ZERO),
        )
        for key, ops in sorted(groups.items())
    )


def performance(operations: Iterable[Operation], *, strategy: str = ALL_STRATEGIES, capital: Decimal | None = None,
                period: str = "month") -> Performance:
    """Summarize the closed operations given; raise InvalidInput on a bad period or capital."""
    if period not in PERIOD_FORMATS:
        raise InvalidInput(f"period must be one of {', '.join(PERIOD_FORMATS)}, got {period!r}")
    if capital is not None and capital <= 0:
        raise InvalidInput(f"capital must be greater than 0, got {capital}")
    trades = closed_trades(operations)
    pnls = [op.realized_pnl for op in trades]
    rs = [r for op in trades if (r := r_multiple(op)) is not None]
    count = len(trades)
    gross_profit = sum((p for p in pnls if p > 0), ZERO)
    gross_loss = -sum((p for p in pnls if p < 0), ZERO)
    total = sum(pnls, ZERO)
    drawdown = max_drawdown(pnls)
    return Performance(
        strategy=strategy,
        trades=count,
        wins=sum(1 for p in pnls if p > 0),
        losses=sum(1 for p in pnls if p < 0),
        break_even=sum(1 for p in pnls if p == 0),
        win_rate=percent(Decimal(sum(1 for p in pnls if p > 0)), Decimal(count)) if count else None,
        average_r=sum(rs, ZERO) / len(rs) if rs else None,
        expectancy=total / count if count else None,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=gross_profit / gross_loss if gross_loss else None,
        total_pnl=total,
        total_fees=sum((op.entry_fee + op.exit_fee for op in trades), ZERO),
        max_drawdown=drawdown,
        max_drawdown_percent=percent(drawdown, capital) if capital is not None else None,
        best=max(trades, key=lambda op: op.realized_pnl) if trades else None,
        worst=min(trades, key=lambda op: op.realized_pnl) if trades else None,
        periods=_periods(trades, period),
    )


def performance_by_strategy(operations: Iterable[Operation], *, capital: Decimal | None = None,
                            period: str = "month") -> list[Performance]:
    """Return one Performance per strategy with closed trades, by strategy name."""
    by_strategy: dict[str, list[Operation]] = {}
    for op in closed_trades(operations):
        by_strategy.setdefault(op.strategy, []).append(op)
    return [performance(ops, strategy=name, capital=capital, period=period)
            for name, ops in sorted(by_strategy.items())]
