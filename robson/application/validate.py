"""Use case: run every risk guard on an intent and record the report (VALIDATED or FAILED)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from robson.application.plan import Account
from robson.application.ports import Clock, Exchange, MarketData, Store
from robson.domain.guards import (
    GuardContext,
    GuardResult,
    OpenPosition,
    RiskLimits,
    Verdict,
    order_test,
    overall,
    run_guards,
)
from robson.domain.intent import IntentEvent, IntentStatus, TradingIntent
from robson.domain.market import SymbolInfo, check_not_before, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.operation import OperationStatus
from robson.domain.orders import AuditEvent, AuditKind
from robson.domain.strategy import Strategy
from robson.errors import ExchangeError, IllegalTransition, MarketDataError, NotFound


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    intent: TradingIntent
    results: list[GuardResult]
    verdict: Verdict


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def next_month(moment: datetime) -> datetime:
    start = month_start(moment)
    return (start + timedelta(days=32)).replace(day=1)


def known_by(now: datetime) -> datetime:
    """The end (exclusive) of what is known at market time now: everything closed at or before it."""
    return now + timedelta(microseconds=1)


def realized_so_far(session, now: datetime) -> tuple[Decimal, Decimal]:
    """Return (today's, this month's) realized P&L as known at market time now.

    The UTC day and month are those of now; an operation counts once it has closed, at or
    before now, so a replay never counts a close it has not reached yet.
    """
    end = known_by(now)
    today = session.realized_pnl_between(day_start(now), min(day_start(now) + timedelta(days=1), end))
    month = session.realized_pnl_between(month_start(now), min(next_month(now), end))
    return today, month


def validate(intent_id: str, *, strategy: Strategy | None, store: Store, market: MarketData, exchange: Exchange,
             account: Account, clock: Clock) -> ValidationOutcome:
    """Run all guards; store the report and move the intent to VALIDATED or FAILED."""
    with store.read() as session:
        intent = session.get_intent(session.resolve_intent_id(intent_id))
    if intent.status not in (IntentStatus.PENDING, IntentStatus.VALIDATED):
        raise IllegalTransition(
            f"intent {intent.id} is {intent.status.value}: only PENDING or VALIDATED intents can be validated"
        )
    check_not_before(clock.now(), intent.updated_at, f"the last change of {intent.id} ({intent.status.value})")
    limits = account.limits_for(strategy)
    ctx = gather_context(intent, store=store, market=market, exchange=exchange, account=account, clock=clock,
                         limits=limits)
    results = run_guards(ctx)
    if exchange.live:
        results.append(_order_test(intent, exchange))
    verdict = overall(results)
    now = ctx.now
    report = {
        "verdict": verdict.value,
        "at": now.isoformat(),
        "market": market.name,
        "results": [r.to_dict() for r in results],
    }
    event = IntentEvent.VALIDATION_FAILED if verdict is Verdict.FAIL else IntentEvent.VALIDATION_PASSED
    updated = intent.apply(event, now, validation=report, validated_at=now)
    failed = [r for r in results if r.verdict is Verdict.FAIL]
    message = (f"validation {verdict.value}: " + "; ".join(f"{r.guard}: {r.message}" for r in failed)
               if failed else f"validation {verdict.value}: {len(results)} guards")
    with store.transaction() as tx:
        tx.update_intent(updated, expected_status=intent.status)
        tx.record(AuditEvent(
            at=now, kind=AuditKind.VALIDATION_FAILED if failed else AuditKind.VALIDATED,
            intent_id=intent.id, message=message,
        ))
    return ValidationOutcome(intent=updated, results=results, verdict=verdict)


def _order_test(intent: TradingIntent, exchange: Exchange) -> GuardResult:
    try:
        exchange.test_order(intent.symbol, intent.side, intent.quantity)
        rejection = None
    except ExchangeError as e:
        rejection = str(e)
    return order_test(exchange.name, intent.side.value, intent.quantity, intent.symbol, rejection)


def gather_context(intent: TradingIntent, *, store: Store, market: MarketData, exchange: Exchange, account: Account,
                   clock: Clock, limits: RiskLimits) -> GuardContext:
    """Collect what the guards look at from the market, the exchange and the store."""
    now = clock.now()
    info: SymbolInfo | None
    try:
        info = market.symbol_info(intent.symbol)
    except NotFound:
        info = None
    price_at = candle_close_at = None
    length = timeframe_ms(intent.timeframe)
    expected_close = ms_to_datetime(datetime_to_ms(now) // length * length)
    try:
        price_at = market.last_price(intent.symbol).at
        candles = market.candles(intent.symbol, intent.timeframe, 1)
        if candles:
            candle_close_at = ms_to_datetime(candles[-1].open_time + length)
    except (NotFound, MarketDataError):
        pass
    free = {asset: b.free for asset, b in exchange.balances().items()}
    with store.read() as session:
        today, month = realized_so_far(session, now)
        open_ops = session.list_operations(OperationStatus.ACTIVE)
        last_stop = session.last_stop_out(intent.symbol, at_or_before=now)
    return GuardContext(
        intent=intent,
        symbol_info=info,
        capital=intent.capital,
        limits=limits,
        fee_rate=account.fee_rate,
        free_balances=free,
        realized_pnl_today=today,
        realized_pnl_month=month,
        open_positions=[OpenPosition(op.symbol, op.notional) for op in open_ops],
        now=now,
        last_price_at=price_at,
        last_candle_close_at=candle_close_at,
        last_stop_out_at=last_stop,
        expected_candle_close_at=expected_close,
    )
