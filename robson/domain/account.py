"""The account's arithmetic: holdings valued in one quote asset, risk to stop, exposure, losses against the limits.

Pure and exact (Decimal): the account use case gathers balances, prices and the book, and these
functions turn them into the figures `robson account` shows and `capital: equity` sizes with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from robson.domain.money import ZERO, percent
from robson.domain.operation import Operation, gross_pnl
from robson.errors import InvalidInput

ASSET_PATTERN = re.compile(r"[A-Z0-9]{2,20}")


def parse_asset(text: str) -> str:
    """Return an asset name in upper case (BTC, USDT, 1INCH); raise InvalidInput for anything else."""
    name = text.strip().upper()
    if not name.isascii() or not ASSET_PATTERN.fullmatch(name):
        shown = text if len(text) <= 40 else text[:37] + "…"
        raise InvalidInput(f"asset must be 2 to 20 letters or digits like USDT or BTC, got '{shown}'")
    return name


@dataclass(frozen=True, slots=True)
class Holding:
    """One asset of the wallet, valued in the quote asset (value None when no price is known)."""

    asset: str
    free: Decimal
    locked: Decimal
    price: Decimal | None  # of one unit, in the quote asset
    value: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


def value_holdings(balances: Mapping[str, tuple[Decimal, Decimal]], prices: Mapping[str, Decimal], quote: str,
                   ) -> tuple[list[Holding], Decimal]:
    """Value each (free, locked) balance at its price in quote; return the holdings (by asset) and the equity.

    The quote asset is worth 1. An asset without a price is listed with value None and left out of the
    equity (the caller says so): a guess would be worse than a visible gap. Empty balances are dropped.
    """
    holdings = []
    equity = ZERO
    for asset in sorted(balances):
        free, locked = balances[asset]
        if not free and not locked:
            continue
        price = Decimal(1) if asset == quote else prices.get(asset)
        value = (free + locked) * price if price is not None else None
        if value is not None:
            equity += value
        holdings.append(Holding(asset, free, locked, price, value))
    return holdings, equity


@dataclass(frozen=True, slots=True)
class PositionRisk:
    """An open operation seen from the account: what it is worth now and what its stop still risks."""

    operation: Operation
    price: Decimal
    value: Decimal  # quantity × price: the exposure it adds
    risk_to_stop: Decimal  # lost from now if the stop fills: the move to the stop plus the taker exit fee there
    risk_percent: Decimal  # of equity
    pnl_at_stop: Decimal  # realized P&L if the stop fills: from the entry, both fees paid (≥ 0 once it is locked in)


def position_risk(operation: Operation, price: Decimal, *, fee_rate: Decimal, equity: Decimal) -> PositionRisk:
    """Value an ACTIVE operation at price and measure what its stop risks from here, in quote and % of equity.

    risk_to_stop = quantity × (price − stop) on the loss side, never below 0 (a price already through the
    stop risks no more move), plus the exit fee quantity × stop × fee_rate.
    """
    quantity, stop = operation.quantity, operation.stop
    move = max((price - stop) * operation.side.sign, ZERO) * quantity
    exit_fee = quantity * stop * fee_rate
    risk = move + exit_fee
    pnl_at_stop = gross_pnl(operation.side, operation.entry_price, stop, quantity) - operation.entry_fee - exit_fee
    return PositionRisk(operation, price, quantity * price, risk, percent(risk, equity), pnl_at_stop)


@dataclass(frozen=True, slots=True)
class LossAgainstLimit:
    """A period's realized P&L against its loss limit, measured on capital as the guards measure it."""

    period: str  # "today" / "month"
    realized_pnl: Decimal
    loss: Decimal  # the loss part of realized_pnl (0 when it is a gain)
    loss_percent: Decimal  # of capital
    limit_percent: Decimal
    limit_amount: Decimal  # capital × limit_percent / 100
    room: Decimal  # what may still be lost before the limit: limit_amount − loss, never below 0
    reached: bool  # the guard fails: loss_percent ≥ limit_percent


def loss_against_limit(period: str, realized_pnl: Decimal, *, capital: Decimal, limit_percent: Decimal) -> LossAgainstLimit:
    """Measure a period's realized P&L against its limit the way validate's loss guards do."""
    loss = -realized_pnl if realized_pnl < 0 else ZERO
    loss_pct = percent(loss, capital)
    limit_amount = capital * limit_percent / 100
    return LossAgainstLimit(period, realized_pnl, loss, loss_pct, limit_percent, limit_amount,
                            max(limit_amount - loss, ZERO), loss_pct >= limit_percent)
