"""Use case: the books — per-strategy performance of closed operations (robson/domain/performance.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from robson.application.ports import Store
from robson.domain.operation import Operation, OperationStatus
from robson.domain.performance import ALL_STRATEGIES, Performance, performance, performance_by_strategy


@dataclass(frozen=True, slots=True)
class StrategyReport:
    strategy: str | None  # None: every strategy
    since: datetime | None
    period: str  # "day" or "month"
    capital: Decimal  # drawdown percentages are of this
    overall: Performance
    strategies: list[Performance]
    trades: list[Operation]  # the closed operations counted, by closing time: one trade each, parts and all


def strategy_report(*, store: Store, capital: Decimal, strategy: str | None = None, since: datetime | None = None,
                    period: str = "month") -> StrategyReport:
    """Summarize operations CLOSED at or after since, overall and per strategy; raise InvalidInput on a bad period."""
    with store.read() as session:
        operations = session.list_operations(OperationStatus.CLOSED)
    if strategy is not None:
        operations = [op for op in operations if op.strategy == strategy]
    if since is not None:
        operations = [op for op in operations if op.closed_at is not None and op.closed_at >= since]
    overall = performance(operations, strategy=strategy or ALL_STRATEGIES, capital=capital, period=period)
    trades = sorted(operations, key=lambda op: (op.closed_at, op.id))
    return StrategyReport(strategy, since, period, capital, overall,
                          performance_by_strategy(operations, capital=capital, period=period), trades)
