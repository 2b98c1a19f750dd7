"""Use case: run every risk guard on an intent and record the report (VALIDATED or FAILED)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from robson.application.plan import Account
from robson.application.ports import Clock, Exchange, MarketData, Store, StoreSession
from robson.domain.guards import (
    GUARD_NAMES,
    PORTFOLIO_GUARDS,
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
from robson.domain.market import Side, SymbolInfo, check_not_before, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.operation import OperationStatus
from robson.domain.orders import AuditEvent, AuditKind
from robson.domain.strategy import Strategy
from robson.errors import ExchangeError, ExecutionRefused, IllegalTransition, MarketDataError, NotFound


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
    with store.transaction() as tx:
        tx.update_intent(updated, expected_status=intent.status)
        tx.record(AuditEvent(
            at=now, kind=AuditKind.VALIDATION_FAILED if verdict is Verdict.FAIL else AuditKind.VALIDATED,
            intent_id=intent.id, message=validation_summary(verdict, results),
        ))
    return ValidationOutcome(intent=updated, results=results, verdict=verdict)


def validation_summary(verdict: Verdict, results: list[GuardResult]) -> str:
    """One line for the audit trail and notifications: the verdict and each failed (else warning) guard's numbers."""
    named = [r for r in results if r.verdict is Verdict.FAIL] or [r for r in results if r.verdict is Verdict.WARN]
    if verdict is Verdict.FAIL:
        return f"validation {verdict.value}: " + "; ".join(f"{r.guard}: {r.message}" for r in named)
    return f"validation {verdict.value}: {len(results)} guards" + "".join(f"; {r.guard}: {r.message}" for r in named)


def _order_test(intent: TradingIntent, exchange: Exchange) -> GuardResult:
    try:
        exchange.test_order(intent.symbol, intent.side, intent.quantity)
        rejection = None
    except ExchangeError as e:
        rejection = str(e)
    return order_test(exchange.name, intent.side.value, intent.quantity, intent.symbol, rejection)


@dataclass(frozen=True, slots=True)
class BookView:
    """What the store says about the account at a market time: the inputs validate's portfolio guards read."""

    realized_today: Decimal
    realized_month: Decimal
    positions: list[OpenPosition]  # ACTIVE operations and the other intents still EXECUTING
    last_stop_out: datetime | None
    reserved: dict[str, Decimal]  # what the other EXECUTING intents will spend, by asset


def book_view(session: StoreSession, intent: TradingIntent, now: datetime, fee_rate: Decimal) -> BookView:
    """Read the book as the guards see it at now, counting intents being executed as positions already.

    Two executions racing each other must not both pass the open-positions or balance guard: an intent
    found EXECUTING (its operation not yet recorded) counts with its planned notional, and what it will
    spend is held back from the free balance.
    """
    today, month = realized_so_far(session, now)
    positions = [OpenPosition(op.symbol, op.notional) for op in session.list_operations(OperationStatus.ACTIVE)]
    reserved: dict[str, Decimal] = {}
    for other in session.list_intents(IntentStatus.EXECUTING) + session.list_intents(IntentStatus.WORKING):
        if other.id == intent.id or session.operation_for_intent(other.id) is not None:
            continue
        notional = other.quantity * other.entry
        positions.append(OpenPosition(other.symbol, notional))
        if other.status is IntentStatus.WORKING:  # its order already locks what it will spend on the exchange
            continue
        if other.side is Side.BUY:
            asset, amount = other.quote_asset, notional * (1 + fee_rate)
        else:
            asset, amount = other.details.get("base_asset", other.symbol), other.quantity
        reserved[asset] = reserved.get(asset, Decimal(0)) + amount
    return BookView(today, month, positions, session.last_stop_out(intent.symbol, at_or_before=now), reserved)


def guard_capital(intent: TradingIntent, account: Account) -> Decimal:
    """The capital the guards measure against: the plan's, but never more than the account's own.

    A plan may size against a smaller capital (--capital), never a larger one than the account has:
    a risk that is 0.00 % of an imagined million is a real share of the real account.
    """
    return min(intent.capital, account.capital)


def portfolio_context(intent: TradingIntent, *, info: SymbolInfo | None, balances: dict, book: BookView,
                      account: Account, limits: RiskLimits, now: datetime) -> GuardContext:
    """The guards' view of the account and book alone (no market data): what execute checks again."""
    free = {asset: b.free - book.reserved.get(asset, Decimal(0)) for asset, b in balances.items()}
    return GuardContext(
        intent=intent, symbol_info=info, capital=guard_capital(intent, account), limits=limits,
        fee_rate=account.fee_rate, free_balances=free, realized_pnl_today=book.realized_today,
        realized_pnl_month=book.realized_month, open_positions=book.positions, now=now, last_price_at=None,
        last_candle_close_at=None, last_stop_out_at=book.last_stop_out,
    )


def gather_context(intent: TradingIntent, *, store: Store, market: MarketData, exchange: Exchange, account: Account,
                   clock: Clock, limits: RiskLimits) -> GuardContext:
    """Collect what the guards look at from the market, the exchange and the store."""
    now = clock.now()
    info: SymbolInfo | None
    try:
        info = market.symbol_info(intent.symbol)
    except NotFound:
        info = None
    price_at = candle_close_at = market_price = None
    length = timeframe_ms(intent.timeframe)
    expected_close = ms_to_datetime(datetime_to_ms(now) // length * length)
    try:
        quote = market.last_price(intent.symbol)
        price_at, market_price = quote.at, quote.price
        candles = market.candles(intent.symbol, intent.timeframe, 1)
        if candles:
            candle_close_at = ms_to_datetime(candles[-1].open_time + length)
    except (NotFound, MarketDataError):
        pass
    balances = exchange.balances()
    with store.read() as session:
        book = book_view(session, intent, now, account.fee_rate)
    context = portfolio_context(intent, info=info, balances=balances, book=book, account=account, limits=limits,
                                now=now)
    return dataclasses.replace(context, last_price_at=price_at, last_candle_close_at=candle_close_at,
                               expected_candle_close_at=expected_close, market_price=market_price)


def recheck_portfolio(intent: TradingIntent, session: StoreSession, *, info: SymbolInfo, balances: dict,
                      account: Account, limits: RiskLimits, now: datetime) -> None:
    """Run again the guards whose inputs change between validate and execute; raise ExecutionRefused naming them.

    Called inside the transaction that moves the intent to EXECUTING, so two executions cannot both
    pass: the second one sees the first as a position already (see book_view).
    """
    context = portfolio_context(intent, info=info, balances=balances, book=book_view(session, intent, now,
                                account.fee_rate), account=account, limits=limits, now=now)
    failed = [r for r in run_guards(context, skip=frozenset(GUARD_NAMES) - PORTFOLIO_GUARDS)
              if r.verdict is Verdict.FAIL]
    if failed:
        raise ExecutionRefused(
            "the book changed since validation: " + "; ".join(f"{r.guard}: {r.message}" for r in failed),
            hint="nothing was sent; validate again when it allows a new position: robson validate " + intent.id,
        )
