"""Position sizing: the one implementation used by plan, validate and execute (SPEC §2).

risk_amount = capital × risk_percent; quantity = risk_amount / |entry − stop|, rounded
down to the LOT_SIZE step; entry and stop on the PRICE_FILTER tick (the stop rounded away
from entry). The notional must fit the available balance and the maximum position share
of capital; when capped, the smaller quantity is used and the lower risk reported. A size
below the exchange minimums is refused, never rounded up past the risk budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from robson.domain.market import Side, SymbolInfo
from robson.domain.money import HUNDRED, ZERO, fmt, percent
from robson.errors import InvalidInput, SizingRefused


@dataclass(frozen=True, slots=True)
class SizingRequest:
    side: Side
    capital: Decimal
    risk_percent: Decimal
    entry: Decimal
    stop: Decimal
    fee_rate: Decimal  # taker fee as a fraction, e.g. 0.001
    max_position_percent: Decimal  # max notional as % of capital
    available_balance: Decimal | None = None  # free quote balance; None = unknown
    quantity: Decimal | None = None  # explicit size from the user, skips the risk rule


@dataclass(frozen=True, slots=True)
class RiskFigures:
    """What a position of a given size risks between entry and stop, fees included."""

    quantity: Decimal
    entry: Decimal
    stop: Decimal
    notional: Decimal
    risk_at_stop: Decimal  # quantity × |entry − stop|
    fees: Decimal  # taker fee on entry and on the exit at the stop
    total_risk: Decimal  # risk_at_stop + fees
    risk_percent: Decimal  # risk_at_stop as % of capital
    total_risk_percent: Decimal
    notional_percent: Decimal


@dataclass(frozen=True, slots=True)
class Sizing:
    """The result of the risk rule: a quantity on the exchange's grid and its real risk."""

    figures: RiskFigures
    risk_budget: Decimal  # capital × risk_percent
    raw_quantity: Decimal  # before rounding and caps
    capped_by: str | None  # "balance" / "max position" / None
    explicit_quantity: bool

    @property
    def quantity(self) -> Decimal:
        return self.figures.quantity


def stop_distance(entry: Decimal, stop: Decimal) -> Decimal:
    return abs(entry - stop)


def check_stop_side(side: Side, entry: Decimal, stop: Decimal) -> None:
    """Raise InvalidInput unless the stop is below entry for a buy, above for a sell."""
    if stop == entry:
        raise InvalidInput(f"stop {fmt(stop)} equals entry {fmt(entry)}: the stop distance would be zero")
    if side is Side.BUY and stop > entry:
        raise InvalidInput(f"stop {fmt(stop)} must be below entry {fmt(entry)} for a buy")
    if side is Side.SELL and stop < entry:
        raise InvalidInput(f"stop {fmt(stop)} must be above entry {fmt(entry)} for a sell")


def round_entry_and_stop(side: Side, entry: Decimal, stop: Decimal, info: SymbolInfo) -> tuple[Decimal, Decimal]:
    """Put entry on the tick (nearest down for a buy, up for a sell) and the stop away from entry."""
    rounded_entry = info.round_price(entry, up=side is Side.SELL)
    rounded_stop = info.round_price(stop, up=side is Side.SELL)
    return rounded_entry, rounded_stop


def risk_figures(quantity: Decimal, entry: Decimal, stop: Decimal, capital: Decimal, fee_rate: Decimal) -> RiskFigures:
    """Compute notional and the loss if the stop fills, with taker fees both ways."""
    notional = quantity * entry
    at_stop = quantity * stop_distance(entry, stop)
    fees = quantity * entry * fee_rate + quantity * stop * fee_rate
    total = at_stop + fees
    return RiskFigures(
        quantity=quantity,
        entry=entry,
        stop=stop,
        notional=notional,
        risk_at_stop=at_stop,
        fees=fees,
        total_risk=total,
        risk_percent=percent(at_stop, capital),
        total_risk_percent=percent(total, capital),
        notional_percent=percent(notional, capital),
    )


def size_position(request: SizingRequest, info: SymbolInfo) -> Sizing:
    """Apply the risk rule; raise SizingRefused if no valid order fits the budget."""
    if request.capital <= 0:
        raise InvalidInput(f"capital must be greater than 0, got {fmt(request.capital)}")
    if request.risk_percent <= 0:
        raise InvalidInput(f"risk percent must be greater than 0, got {fmt(request.risk_percent)}")
    entry, stop = round_entry_and_stop(request.side, request.entry, request.stop, info)
    check_stop_side(request.side, entry, stop)
    distance = stop_distance(entry, stop)
    budget = request.capital * request.risk_percent / HUNDRED
    capped_by: str | None = None

    if request.quantity is not None:
        raw = request.quantity
        quantity = info.round_quantity(raw)
    else:
        raw = budget / distance
        quantity = info.round_quantity(raw)
        # Caps: the notional must fit the max position share and the free balance.
        caps: list[tuple[str, Decimal]] = [
            ("max position", request.capital * request.max_position_percent / HUNDRED),
        ]
        if request.available_balance is not None and request.side is Side.BUY:
            # Keep room for the entry fee inside the free balance.
            caps.append(("balance", request.available_balance / (1 + request.fee_rate)))
        for name, max_notional in caps:
            if quantity * entry > max_notional:
                quantity = info.round_quantity(max_notional / entry)
                capped_by = name

    if quantity <= ZERO and request.quantity is not None:
        raise InvalidInput(
            f"quantity {fmt(request.quantity)} is below one LOT_SIZE step ({fmt(info.step_size)}) of {info.symbol}"
        )
    if quantity <= ZERO:
        raise SizingRefused(
            f"the risk budget {fmt(budget, 2)} buys less than one LOT_SIZE step "
            f"({fmt(info.step_size)}) at a stop distance of {fmt(distance)}",
            hint="raise capital or risk percent, or use a tighter stop",
        )
    if info.min_qty and quantity < info.min_qty:
        raise SizingRefused(
            f"quantity {fmt(quantity)} is below the exchange minimum {fmt(info.min_qty)} "
            f"(LOT_SIZE); robson never rounds up past the risk budget",
            hint="raise capital or risk percent, or use a tighter stop",
        )
    notional = quantity * entry
    if info.min_notional and notional < info.min_notional:
        raise SizingRefused(
            f"notional {fmt(notional, 2)} is below the exchange minimum {fmt(info.min_notional)} "
            f"(MIN_NOTIONAL); robson never rounds up past the risk budget",
            hint="raise capital or risk percent, or use a tighter stop",
        )
    figures = risk_figures(quantity, entry, stop, request.capital, request.fee_rate)
    return Sizing(
        figures=figures,
        risk_budget=budget,
        raw_quantity=raw,
        capped_by=capped_by,
        explicit_quantity=request.quantity is not None,
    )


def reward_to_risk(side: Side, entry: Decimal, stop: Decimal, target: Decimal | None) -> Decimal | None:
    """Return |target − entry| / |entry − stop|, or None without a target."""
    if target is None:
        return None
    return (target - entry) * side.sign / stop_distance(entry, stop)


def check_target_side(side: Side, entry: Decimal, target: Decimal) -> None:
    """Raise InvalidInput unless the target is in the profit direction."""
    if (target - entry) * side.sign <= 0:
        where = "above" if side is Side.BUY else "below"
        raise InvalidInput(f"target {fmt(target)} must be {where} entry {fmt(entry)} for a {side.value.lower()}")
