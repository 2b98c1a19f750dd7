"""Use cases on the account: its equity at current prices, and the view `robson account` shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from robson.application.ports import Balance, Clock, Exchange, MarketData, Store
from robson.domain.account import (
    Holding,
    LossAgainstLimit,
    PositionRisk,
    loss_against_limit,
    position_risk,
    value_holdings,
)
from robson.domain.guards import RiskLimits
from robson.domain.money import ZERO, percent
from robson.domain.operation import OperationStatus
from robson.errors import MarketDataError, NotFound


@dataclass(frozen=True, slots=True)
class Equity:
    """The wallet valued in one quote asset at the market's current prices."""

    quote_asset: str
    holdings: list[Holding]
    total: Decimal
    unpriced: list[str]  # assets held that no {asset}{quote} price values: left out of total


def _price(market: MarketData, symbol: str) -> Decimal | None:
    try:
        return market.last_price(symbol).price
    except (NotFound, MarketDataError):
        return None


def equity(balances: dict[str, Balance], market: MarketData, quote_asset: str) -> Equity:
    """Value balances at the last price of each {asset}{quote_asset} symbol (one price per asset held)."""
    prices = {}
    for asset, balance in balances.items():
        if asset != quote_asset and balance.total:
            price = _price(market, f"{asset}{quote_asset}")
            if price is not None:
                prices[asset] = price
    holdings, total = value_holdings({a: (b.free, b.locked) for a, b in balances.items()}, prices, quote_asset)
    return Equity(quote_asset, holdings, total, [h.asset for h in holdings if h.value is None])


@dataclass(frozen=True, slots=True)
class AccountView:
    venue: str  # "paper" / "binance"
    at: datetime  # market time (a replay's --as-of)
    equity: Equity
    positions: list[PositionRisk]
    unpriced_positions: list[str]  # ACTIVE operations on a symbol with no price now
    risk_to_stops: Decimal
    risk_to_stops_percent: Decimal  # of equity
    exposure: Decimal  # Σ quantity × price of the open positions
    exposure_percent: Decimal  # of equity
    exposure_at_entry: Decimal  # Σ quantity × entry price: what the open-positions guard counts
    exposure_at_entry_percent: Decimal  # of capital, as the guard measures it
    max_exposure_percent: Decimal  # the guard's limit (risk.max_total_exposure_percent, of capital)
    capital: Decimal  # what the loss limits are measured on (the risk percentages' capital)
    capital_source: str  # "config" / "equity"
    today: LossAgainstLimit
    month: LossAgainstLimit


def account_view(*, exchange: Exchange, market: MarketData, store: Store, clock: Clock, quote_asset: str,
                 capital: Decimal, capital_source: str, limits: RiskLimits, fee_rate: Decimal) -> AccountView:
    """Gather the account: balances valued at current prices, open positions with their risk, losses against limits.

    Positions are the ACTIVE operations of this venue (paper ones for the paper wallet, live ones for
    Binance). Today's and this month's realized P&L are counted as validate's guards count them: every
    operation closed in the UTC day and month of the market time, up to it.
    Raise ExchangeError or MarketDataError when the venue or the market cannot answer.
    """
    from robson.application.validate import realized_so_far

    now = clock.now()
    valued = equity(exchange.balances(), market, quote_asset)
    mode = "live" if exchange.live else "paper"
    with store.read() as session:
        operations = [op for op in session.list_operations(OperationStatus.ACTIVE) if op.mode == mode]
        realized_today, realized_month = realized_so_far(session, now)
    prices: dict[str, Decimal | None] = {}
    positions, unpriced = [], []
    for op in operations:
        if op.symbol not in prices:
            prices[op.symbol] = _price(market, op.symbol)
        price = prices[op.symbol]
        if price is None:
            unpriced.append(op.id)
            continue
        positions.append(position_risk(op, price, fee_rate=fee_rate, equity=valued.total))
    risk = sum((p.risk_to_stop for p in positions), ZERO)
    exposure = sum((p.value for p in positions), ZERO)
    at_entry = sum((op.notional for op in operations), ZERO)
    return AccountView(
        venue=exchange.name, at=now, equity=valued, positions=positions, unpriced_positions=unpriced,
        risk_to_stops=risk, risk_to_stops_percent=percent(risk, valued.total), exposure=exposure,
        exposure_percent=percent(exposure, valued.total), exposure_at_entry=at_entry,
        exposure_at_entry_percent=percent(at_entry, capital), max_exposure_percent=limits.max_total_exposure_percent,
        capital=capital, capital_source=capital_source,
        today=loss_against_limit("today", realized_today, capital=capital, limit_percent=limits.daily_loss_percent),
        month=loss_against_limit("month", realized_month, capital=capital,
                                 limit_percent=limits.monthly_drawdown_percent),
    )
