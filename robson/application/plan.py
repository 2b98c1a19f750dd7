"""Use case: create a trading intent (PENDING) from the risk rule and the strategy's stop."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from robson.application.ports import Clock, Exchange, MarketData, Store
from robson.domain.guards import RiskLimits
from robson.domain.ids import INTENT_PREFIX, new_id
from robson.domain.intent import IntentSource, IntentStatus, TradingIntent
from robson.domain.market import Side, timeframe_ms
from robson.domain.money import ZERO, fmt
from robson.domain.orders import AuditEvent, AuditKind
from robson.domain.sizing import (
    SizingRequest,
    check_stop_side,
    check_target_side,
    reward_to_risk,
    size_position,
    target_from_r_multiple,
)
from robson.domain.stops import compute_stop
from robson.domain.strategy import Strategy


@dataclass(frozen=True, slots=True)
class Account:
    """The account-level numbers every use case sizes and guards with."""

    capital: Decimal
    fee_rate: Decimal
    max_position_percent: Decimal
    limits: RiskLimits
    validation_max_age_minutes: int = 15
    stop_limit_offset_percent: Decimal = Decimal("0.5")

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


def candles_needed(strategy: Strategy) -> int:
    """How many closed candles the strategy's stop method looks at, with ATR warm-up."""
    s = strategy.stop
    return max(s.lookback, s.fallback_lookback, s.atr_period + 1, s.ma_period) + 1


def plan(request: PlanRequest, *, store: Store, market: MarketData, exchange: Exchange, account: Account,
         clock: Clock) -> TradingIntent:
    """Size and record a PENDING intent; raise InvalidInput, NotFound or SizingRefused."""
    strategy = request.strategy
    symbol = request.symbol.strip().upper()
    info = market.symbol_info(symbol)
    timeframe = request.timeframe or strategy.timeframe
    timeframe_ms(timeframe)
    capital = request.capital if request.capital is not None else account.capital

    if request.entry is not None:
        entry, entry_source = request.entry, "given"
    else:
        entry, entry_source = market.last_price(symbol).price, "market"

    if request.stop is not None:
        check_stop_side(request.side, entry, request.stop)
        stop, stop_method, stop_label, stop_details = request.stop, "manual", "given with --stop", {}
    else:
        candles = market.candles(symbol, timeframe, candles_needed(strategy))
        result = compute_stop(request.side, entry, candles, strategy.stop)
        stop, stop_method, stop_label, stop_details = result.price, result.method, result.label, result.details

    free_quote = exchange.balances().get(info.quote_asset)
    sizing = size_position(
        SizingRequest(
            side=request.side,
            capital=capital,
            risk_percent=strategy.risk_percent,
            entry=entry,
            stop=stop,
            fee_rate=account.fee_rate,
            max_position_percent=account.max_position_percent,
            available_balance=free_quote.free if free_quote is not None else ZERO,
            quantity=request.quantity,
        ),
        info,
    )
    fig = sizing.figures
    if request.target is not None:
        target = info.round_price(request.target, up=request.side is Side.BUY)
        check_target_side(request.side, fig.entry, target)
        target_source = "given"
    elif strategy.target_r_multiple is not None:
        target = target_from_r_multiple(request.side, fig.entry, fig.stop, strategy.target_r_multiple, info)
        target_source = f"{fmt(strategy.target_r_multiple)}R from strategy"
    else:
        target, target_source = None, "none"

    now = clock.now()
    details = {
        "entry_source": entry_source,
        "stop_label": stop_label,
        "stop_details": stop_details,
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
        "target_source": target_source,
        "reward_to_risk": fmt(reward_to_risk(request.side, fig.entry, fig.stop, target), 2) if target else None,
        "quote_asset": info.quote_asset,
        "base_asset": info.base_asset,
        "market": market.name,
    }
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
    )
    with store.transaction() as tx:
        tx.add_intent(intent)
        tx.record(AuditEvent(
            at=now, kind=AuditKind.PLANNED, intent_id=intent.id,
            message=f"planned {request.side.value} {fmt(fig.quantity)} {symbol} @ {fmt(fig.entry)} "
                    f"stop {fmt(fig.stop)} ({stop_method}) risk {fmt(fig.risk_at_stop, 2)} {info.quote_asset}",
            data={"strategy": strategy.name, "source": request.source.value},
        ))
    return intent

