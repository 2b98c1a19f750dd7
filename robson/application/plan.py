"""Use case: create a trading intent (PENDING) from the risk rule and the strategy's stop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from robson.application.ports import Clock, Exchange, MarketData, Store
from robson.domain.guards import RiskLimits
from robson.domain.ids import INTENT_PREFIX, new_id
from robson.domain.intent import EntryOrder, IntentSource, IntentStatus, TradingIntent, entry_side_problem, parse_expiry
from robson.domain.market import Side, timeframe_ms
from robson.domain.money import ZERO, fmt
from robson.domain.orders import AuditEvent, AuditKind
from robson.domain.ladder import ladder_doc
from robson.domain.lifecycle import candles_needed, plan_trade
from robson.domain.strategy import Strategy
from robson.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Account:
    """The account-level numbers every use case sizes and guards with."""

    capital: Decimal
    fee_rate: Decimal
    limits: RiskLimits
    validation_max_age_minutes: int = 15
    stop_limit_offset_percent: Decimal = Decimal("0.5")
    risk_change_tolerance_percent: Decimal = Decimal("25")  # execute refuses a trade changed more than this
    capital_source: str = "config"  # "config": the capital setting; "equity": the account's equity at market prices

    @property
    def max_position_percent(self) -> Decimal:
        """The largest position, percent of capital: sizing caps at it, the open-positions guard fails above it."""
        return self.limits.max_position_percent

    def limits_for(self, strategy: Strategy | None) -> RiskLimits:
        """Return the guard limits for strategy: its overrides, its max risk capped by the account's."""
        if strategy is None:
            return self.limits
        limits = strategy.risk_limits(self.limits)
        return dataclasses.replace(
            limits, max_risk_percent=min(limits.max_risk_percent, self.limits.max_risk_percent)
        )


@dataclass(frozen=True, slots=True)
class PlanRequest:
    side: Side
    symbol: str
    strategy: Strategy
    quantity: Decimal | None = None
    capital: Decimal | None = None
    timeframe: str | None = None
    entry: Decimal | None = None
    stop: Decimal | None = None
    target: Decimal | None = None
    note: str | None = None
    source: IntentSource = IntentSource.MANUAL
    confidence: Decimal | None = None
    signal_id: str | None = None
    entry_order: EntryOrder = EntryOrder.MARKET  # limit / stop: the entry waits for its price
    expires: str | None = None  # a waiting entry's expiry as typed: '4h' or a UTC time


def waiting_entry(request: PlanRequest, symbol: str, market: MarketData, clock: Clock):
    """Check a limit or stop entry's price and expiry against the market now; return its expiry (or None)."""
    order = request.entry_order
    if order is EntryOrder.MARKET:
        if request.expires is not None:
            raise InvalidInput("--expires applies to an entry that waits for its price: add --order limit or "
                               "--order stop with --entry PRICE")
        return None
    if request.entry is None:
        raise InvalidInput(f"--order {order.value} needs --entry PRICE: the price the entry waits for")
    expires = parse_expiry(request.expires, clock.now()) if request.expires is not None else None
    problem = entry_side_problem(request.side, order, request.entry, market.last_price(symbol).price)
    if problem is not None:
        raise InvalidInput(problem, hint="a market entry is --order market (the default); or choose the other "
                                         "order kind: a limit waits for a pullback, a stop for a breakout")
    return expires


def plan(request: PlanRequest, *, store: Store, market: MarketData, exchange: Exchange, account: Account,
         clock: Clock) -> TradingIntent:
    """Size and record a PENDING intent; raise InvalidInput, NotFound or SizingRefused."""
    strategy = request.strategy
    symbol = request.symbol.strip().upper()
    info = market.symbol_info(symbol)
    timeframe = request.timeframe or strategy.timeframe
    timeframe_ms(timeframe)
    capital = request.capital if request.capital is not None else account.capital
    capital_source = "given" if request.capital is not None else account.capital_source
    if capital <= 0:
        raise InvalidInput(f"capital must be greater than 0, got {fmt(capital)} ({capital_source}): "
                           "an empty account has nothing to risk")

    expires = waiting_entry(request, symbol, market, clock)
    if request.entry is not None:
        entry, entry_source = request.entry, "given"
    else:
        entry, entry_source = market.last_price(symbol).price, "market"
    needed = candles_needed(strategy)
    candles = market.candles(symbol, timeframe, needed) if request.stop is None and needed else []
    free_quote = exchange.balances().get(info.quote_asset)
    planned = plan_trade(
        request.side, info, strategy, entry=entry, entry_source=entry_source, candles=candles, capital=capital,
        fee_rate=account.fee_rate, max_position_percent=account.max_position_percent,
        available_balance=free_quote.free if free_quote is not None else ZERO,
        quantity=request.quantity, stop=request.stop, target=request.target,
    )
    sizing, fig = planned.sizing, planned.sizing.figures
    target, stop_method = planned.target, planned.stop_method

    now = clock.now()
    details = {
        "capital_source": capital_source,
        "entry_source": entry_source,
        "stop_label": planned.stop_label,
        "stop_details": planned.stop_details,
        "stop_distance_percent": fmt(abs(fig.entry - fig.stop) / fig.entry * 100, 4),
        "risk_budget": fmt(sizing.risk_budget),
        "raw_quantity": fmt(sizing.raw_quantity),
        "capped_by": sizing.capped_by,
        "notional": fmt(fig.notional),
        "notional_percent": fmt(fig.notional_percent, 4),
        "risk_at_stop": fmt(fig.risk_at_stop),
        "risk_percent": fmt(fig.risk_percent, 4),
        "fees": fmt(fig.fees),
        "risk_with_fees": fmt(fig.total_risk),
        "risk_with_fees_percent": fmt(fig.total_risk_percent, 4),
        "target_source": planned.target_source,
        "reward_to_risk": fmt(planned.reward_to_risk, 2) if target else None,
        "quote_asset": info.quote_asset,
        "base_asset": info.base_asset,
        "market": market.name,
        "entry_order": request.entry_order.value,
    }
    if planned.anchor:
        details["anchor"] = planned.anchor  # levels that follow the entry fill at execution
    if planned.ladder is not None:
        details["ladder"] = ladder_doc(planned.ladder)  # its rungs re-resolve at the fill; ladder_from_doc reads it
    intent = TradingIntent(
        id=new_id(INTENT_PREFIX),
        symbol=symbol,
        side=request.side,
        status=IntentStatus.PENDING,
        strategy=strategy.name,
        source=request.source,
        timeframe=timeframe,
        capital=capital,
        risk_percent=strategy.risk_percent,
        entry=fig.entry,
        stop=fig.stop,
        stop_method=stop_method,
        quantity=fig.quantity,
        target=target,
        created_at=now,
        updated_at=now,
        note=request.note,
        confidence=request.confidence,
        signal_id=request.signal_id,
        details=details,
        entry_order=request.entry_order,
        expires_at=expires,
    )
    with store.transaction() as tx:
        tx.add_intent(intent)
        tx.record(AuditEvent(
            at=now, kind=AuditKind.PLANNED, intent_id=intent.id,
            message=f"planned {request.side.value} {fmt(fig.quantity)} {symbol} @ {fmt(fig.entry)}"
                    + ("" if not intent.waits else f" ({intent.entry_order.value} entry, waits for its price"
                       + (f" until {expires:%Y-%m-%d %H:%M} UTC)" if expires else ")")) + " "
                    f"stop {fmt(fig.stop)} ({stop_method}) risk {fmt(fig.risk_at_stop, 2)} {info.quote_asset}",
            data={"strategy": strategy.name, "source": request.source.value},
        ))
    return intent

