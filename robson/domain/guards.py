"""Risk guards run by `validate` (SPEC §2): each returns a verdict with its numbers.

Validation runs every guard and lists all verdicts rather than stopping at the first
FAIL. A FAIL blocks; a WARN is shown and allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from robson.domain.intent import EntryOrder, TradingIntent, entry_side_problem
from robson.domain.market import Side, SymbolInfo
from robson.domain.money import HUNDRED, ZERO, fmt, percent
from robson.domain.sizing import risk_figures, stop_distance

HARD_RISK_CEILING_PERCENT = Decimal("2")


class Verdict(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class GuardResult:
    guard: str
    verdict: Verdict
    message: str  # the rule with the numbers, e.g. "risk 2.40% > max 1.00%"
    fix: str | None = None  # what to change, for WARN and FAIL
    numbers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "guard": self.guard,
            "verdict": self.verdict.value,
            "message": self.message,
            "fix": self.fix,
            "numbers": self.numbers,
        }


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Guard thresholds in percent / minutes; defaults are SPEC §2's."""

    max_risk_percent: Decimal = Decimal("1")
    daily_loss_percent: Decimal = Decimal("2")
    monthly_drawdown_percent: Decimal = Decimal("4")
    max_open_positions: int = 5
    max_positions_per_symbol: int = 2
    max_total_exposure_percent: Decimal = Decimal("80")
    min_stop_distance_percent: Decimal = Decimal("0.1")
    warn_stop_distance_percent: Decimal = Decimal("0.5")
    max_stop_distance_percent: Decimal = Decimal("10")
    max_data_age_minutes: int = 5
    cooldown_minutes: int = 15
    max_position_percent: Decimal = Decimal("50")  # one position's notional, percent of capital
    warn_entry_gap_percent: Decimal = Decimal("0.5")  # a planned entry this far from the market warns


@dataclass(frozen=True, slots=True)
class OpenPosition:
    symbol: str
    notional: Decimal


@dataclass(frozen=True, slots=True)
class GuardContext:
    """Everything the guards look at, gathered by the validate use case."""

    intent: TradingIntent
    symbol_info: SymbolInfo | None  # None when the symbol is unknown
    capital: Decimal
    limits: RiskLimits
    fee_rate: Decimal
    free_balances: dict[str, Decimal]  # asset -> free amount
    realized_pnl_today: Decimal
    realized_pnl_month: Decimal
    open_positions: Sequence[OpenPosition]
    now: datetime
    last_price_at: datetime | None
    last_candle_close_at: datetime | None
    last_stop_out_at: datetime | None
    expected_candle_close_at: datetime | None = None  # when the latest candle should have closed; None = now
    market_price: Decimal | None = None  # the last price, to compare the planned entry with


def _pct(value: Decimal) -> str:
    return f"{fmt(value, 2)}%"


def symbol_tradable(ctx: GuardContext) -> GuardResult:
    info = ctx.symbol_info
    name = "symbol tradable"
    if info is None:
        return GuardResult(name, Verdict.FAIL, f"{ctx.intent.symbol} is not listed on the exchange", "plan a listed symbol")
    if info.status != "TRADING":
        return GuardResult(name, Verdict.FAIL, f"{info.symbol} status is {info.status}, not TRADING", "wait until trading resumes")
    if not info.spot_allowed:
        return GuardResult(name, Verdict.FAIL, f"{info.symbol} does not allow spot trading", "plan a spot symbol")
    return GuardResult(name, Verdict.PASS, f"{info.symbol} is TRADING, spot allowed")


def exchange_filters(ctx: GuardContext) -> GuardResult:
    name = "exchange filters"
    info = ctx.symbol_info
    if info is None:
        return GuardResult(name, Verdict.FAIL, "no filters: symbol unknown", "plan a listed symbol")
    i = ctx.intent
    problems: list[str] = []
    if info.min_qty and i.quantity < info.min_qty:
        problems.append(f"quantity {fmt(i.quantity)} < LOT_SIZE min {fmt(info.min_qty)}")
    if info.max_qty and i.quantity > info.max_qty:
        problems.append(f"quantity {fmt(i.quantity)} > LOT_SIZE max {fmt(info.max_qty)}")
    if not info.quantity_on_step(i.quantity):
        problems.append(f"quantity {fmt(i.quantity)} not on LOT_SIZE step {fmt(info.step_size)}")
    for label, price in (("entry", i.entry), ("stop", i.stop), ("target", i.target)):
        if price is not None and not info.price_on_tick(price):
            problems.append(f"{label} {fmt(price)} not on PRICE_FILTER tick {fmt(info.tick_size)}")
    notional = i.quantity * i.entry
    if info.min_notional and notional < info.min_notional:
        problems.append(f"notional {fmt(notional, 2)} < MIN_NOTIONAL {fmt(info.min_notional)}")
    numbers = {"quantity": fmt(i.quantity), "step": fmt(info.step_size), "tick": fmt(info.tick_size),
               "notional": fmt(notional, 2), "min_notional": fmt(info.min_notional)}
    if problems:
        return GuardResult(name, Verdict.FAIL, "; ".join(problems), "plan again: sizing rounds to the exchange grid", numbers)
    return GuardResult(
        name, Verdict.PASS,
        f"quantity {fmt(i.quantity)} on step {fmt(info.step_size)}, prices on tick {fmt(info.tick_size)}, "
        f"notional {fmt(notional, 2)} ≥ {fmt(info.min_notional)}",
        numbers=numbers,
    )


def balance(ctx: GuardContext) -> GuardResult:
    name = "balance"
    i = ctx.intent
    info = ctx.symbol_info
    if info is None:
        return GuardResult(name, Verdict.FAIL, "no balance check: symbol unknown", "plan a listed symbol")
    notional = i.quantity * i.entry
    if i.side is Side.BUY:
        asset, needed = info.quote_asset, notional + notional * ctx.fee_rate
    else:
        # Spot: selling needs the base asset in the account.
        asset, needed = info.base_asset, i.quantity
    free = ctx.free_balances.get(asset, ZERO)
    numbers = {"asset": asset, "free": fmt(free), "needed": fmt(needed)}
    what, places = ("notional + fee", 2) if i.side is Side.BUY else ("quantity to sell", 8)
    if free < needed:
        return GuardResult(
            name, Verdict.FAIL, f"free {asset} {fmt(free, places)} < needed {fmt(needed, places)} ({what})",
            f"deposit {fmt(needed - free, 2)} {asset} or reduce the quantity", numbers,
        )
    return GuardResult(name, Verdict.PASS, f"free {asset} {fmt(free, places)} ≥ needed {fmt(needed, places)}",
                       numbers=numbers)


def risk_per_trade(ctx: GuardContext) -> GuardResult:
    name = "risk per trade"
    i = ctx.intent
    fig = risk_figures(i.quantity, i.entry, i.stop, ctx.capital, ctx.fee_rate)
    limit = min(ctx.limits.max_risk_percent, HARD_RISK_CEILING_PERCENT)
    numbers = {"risk": fmt(fig.risk_at_stop, 2), "risk_percent": fmt(fig.risk_percent, 4),
               "risk_with_fees": fmt(fig.total_risk, 2), "max_percent": fmt(limit), "capital": fmt(ctx.capital)}
    if fig.total_risk_percent > HARD_RISK_CEILING_PERCENT:
        return GuardResult(
            name, Verdict.FAIL,
            f"risk with fees {_pct(fig.total_risk_percent)} > hard ceiling {_pct(HARD_RISK_CEILING_PERCENT)}",
            "reduce the quantity or tighten the stop", numbers,
        )
    if fig.risk_percent > limit:
        return GuardResult(
            name, Verdict.FAIL, f"risk {_pct(fig.risk_percent)} > max {_pct(limit)} of capital {fmt(ctx.capital)}",
            f"reduce the quantity to at most {fmt(ctx.capital * limit / HUNDRED / stop_distance(i.entry, i.stop), 8)}",
            numbers,
        )
    if fig.total_risk_percent > limit:
        return GuardResult(
            name, Verdict.WARN,
            f"risk {_pct(fig.risk_percent)} ≤ max {_pct(limit)}, but {_pct(fig.total_risk_percent)} with fees",
            "fees push the loss at the stop past the budget; a smaller size keeps it inside", numbers,
        )
    return GuardResult(name, Verdict.PASS, f"risk {_pct(fig.risk_percent)} ≤ max {_pct(limit)} "
                       f"({_pct(fig.total_risk_percent)} with fees)", numbers=numbers)


def stop_distance_guard(ctx: GuardContext) -> GuardResult:
    name = "stop distance"
    i, lim = ctx.intent, ctx.limits
    wrong_side = (i.stop - i.entry) * i.side.sign >= 0
    if wrong_side:
        where = "below" if i.side is Side.BUY else "above"
        return GuardResult(name, Verdict.FAIL, f"stop {fmt(i.stop)} is not {where} entry {fmt(i.entry)}",
                           f"put the stop {where} entry")
    dist = percent(stop_distance(i.entry, i.stop), i.entry)
    numbers = {"distance_percent": fmt(dist, 4)}
    if dist < lim.min_stop_distance_percent:
        return GuardResult(name, Verdict.FAIL, f"stop distance {_pct(dist)} < min {_pct(lim.min_stop_distance_percent)}",
                           "widen the stop: noise would stop this out", numbers)
    if dist > lim.max_stop_distance_percent:
        return GuardResult(name, Verdict.FAIL, f"stop distance {_pct(dist)} > max {_pct(lim.max_stop_distance_percent)}",
                           "tighten the stop or skip this trade", numbers)
    if dist < lim.warn_stop_distance_percent:
        return GuardResult(name, Verdict.WARN, f"stop distance {_pct(dist)} < {_pct(lim.warn_stop_distance_percent)}: tight",
                           "a tight stop is easily hit by noise", numbers)
    return GuardResult(name, Verdict.PASS, f"stop distance {_pct(dist)} within {_pct(lim.min_stop_distance_percent)}"
                       f"–{_pct(lim.max_stop_distance_percent)}", numbers=numbers)


def _loss_guard(name: str, pnl: Decimal, capital: Decimal, limit: Decimal, period: str, halted: bool) -> GuardResult:
    loss = -pnl if pnl < 0 else ZERO
    loss_pct = percent(loss, capital)
    numbers = {"realized_pnl": fmt(pnl, 2), "loss_percent": fmt(loss_pct, 4), "limit_percent": fmt(limit)}
    if loss_pct >= limit:
        state = "trading HALTED" if halted else "no new entries"
        return GuardResult(name, Verdict.FAIL, f"{period} realized loss {_pct(loss_pct)} ≥ {_pct(limit)}: {state}",
                           f"wait for the next {'month' if halted else 'UTC day'}", numbers)
    return GuardResult(name, Verdict.PASS, f"{period} realized loss {_pct(loss_pct)} < {_pct(limit)}", numbers=numbers)


def daily_loss(ctx: GuardContext) -> GuardResult:
    return _loss_guard("daily loss", ctx.realized_pnl_today, ctx.capital, ctx.limits.daily_loss_percent, "today's", False)


def monthly_drawdown(ctx: GuardContext) -> GuardResult:
    return _loss_guard("monthly drawdown", ctx.realized_pnl_month, ctx.capital,
                       ctx.limits.monthly_drawdown_percent, "this month's", True)


def open_positions(ctx: GuardContext) -> GuardResult:
    name = "open positions"
    lim, i = ctx.limits, ctx.intent
    total = len(ctx.open_positions)
    same = sum(1 for p in ctx.open_positions if p.symbol == i.symbol)
    notional = i.quantity * i.entry
    exposure = sum((p.notional for p in ctx.open_positions), ZERO) + notional
    exposure_pct, position_pct = percent(exposure, ctx.capital), percent(notional, ctx.capital)
    numbers = {"open": str(total), "open_on_symbol": str(same), "exposure_percent": fmt(exposure_pct, 4),
               "position_percent": fmt(position_pct, 4)}
    problems = []
    if position_pct > lim.max_position_percent:  # whatever sized it: the risk rule, or a quantity given by hand
        problems.append(f"this position's notional {_pct(position_pct)} of capital > max {_pct(lim.max_position_percent)}"
                        " per position")
    if total >= lim.max_open_positions:
        problems.append(f"{total} open operations ≥ max {lim.max_open_positions}")
    if same >= lim.max_positions_per_symbol:
        problems.append(f"{same} open on {i.symbol} ≥ max {lim.max_positions_per_symbol} per symbol")
    if exposure_pct > lim.max_total_exposure_percent:
        problems.append(f"total notional {_pct(exposure_pct)} of capital > max {_pct(lim.max_total_exposure_percent)}")
    if problems:
        return GuardResult(name, Verdict.FAIL, "; ".join(problems), "close an operation first or reduce the size", numbers)
    return GuardResult(name, Verdict.PASS, f"{total} open (<{lim.max_open_positions}), {same} on {i.symbol} "
                       f"(≤{lim.max_positions_per_symbol} after), exposure {_pct(exposure_pct)} ≤ "
                       f"{_pct(lim.max_total_exposure_percent)}", numbers=numbers)


def _waiting_entry_price(ctx: GuardContext, market: Decimal, gap: Decimal, numbers: dict[str, str]) -> GuardResult:
    """A limit or stop entry is checked at the price it names: it must still be waiting on the right side."""
    name, i = "entry price", ctx.intent
    kind = i.entry_order.value.upper()
    problem = entry_side_problem(i.side, i.entry_order, i.entry, market)
    if problem is None:
        where = "below" if i.entry < market else "above"
        return GuardResult(name, Verdict.PASS, f"{kind} entry waits at {fmt(i.entry)}, {_pct(gap)} {where} the market "
                           f"{fmt(market)}: it fills only when the price gets there", numbers=numbers)
    if i.entry_order is EntryOrder.STOP:  # the exchange refuses a stop that would trigger at once
        return GuardResult(name, Verdict.FAIL, f"the market moved through the entry: {problem}",
                           "plan again: at market, or a stop entry beyond the price now", numbers)
    return GuardResult(name, Verdict.WARN, f"the market moved through the entry: {problem} (at the entry or better)",
                       "execute fills it at once; plan again if you meant to wait for a pullback", numbers)


def entry_price(ctx: GuardContext) -> GuardResult:
    """WARN when the planned entry is far from the market: execute fills at market, not at the planned entry."""
    name = "entry price"
    i, market = ctx.intent, ctx.market_price
    if market is None or market <= 0:
        return GuardResult(name, Verdict.PASS, "no market price to compare the entry with")
    gap = percent(abs(i.entry - market), market)
    numbers = {"entry": fmt(i.entry), "market": fmt(market), "gap_percent": fmt(gap, 4)}
    if i.waits:
        return _waiting_entry_price(ctx, market, gap, numbers)
    if gap > ctx.limits.warn_entry_gap_percent:
        return GuardResult(name, Verdict.WARN,
                           f"entry {fmt(i.entry)} is {_pct(gap)} from the market {fmt(market)}: "
                           "execute fills at market, not at the planned entry",
                           "plan at the market price, or wait for the price to come to your entry", numbers)
    return GuardResult(name, Verdict.PASS, f"entry {fmt(i.entry)} within {_pct(ctx.limits.warn_entry_gap_percent)} "
                       f"of the market {fmt(market)}", numbers=numbers)


def data_freshness(ctx: GuardContext) -> GuardResult:
    """The price must be ≤ N minutes old and the candles must include the latest closed one, ≤ N minutes late."""
    name = "data freshness"
    limit = timedelta(minutes=ctx.limits.max_data_age_minutes)
    if ctx.last_price_at is None or ctx.last_candle_close_at is None:
        return GuardResult(name, Verdict.FAIL, "no price or candles for the symbol", "check the market data source")
    price_age = ctx.now - ctx.last_price_at
    expected = ctx.expected_candle_close_at or ctx.now
    candle_lag = expected - ctx.last_candle_close_at
    numbers = {"price_age_s": str(int(price_age.total_seconds())), "candle_lag_s": str(int(candle_lag.total_seconds()))}
    if price_age > limit or candle_lag > limit:
        return GuardResult(name, Verdict.FAIL,
                           f"market data is stale: price {_minutes(price_age)} old, last candle closed "
                           f"{_minutes(candle_lag)} before the latest expected close "
                           f"(limit {ctx.limits.max_data_age_minutes} min)",
                           "refresh market data, or plan at a time the market has data for", numbers)
    return GuardResult(name, Verdict.PASS, f"price {_minutes(price_age)} old, candles up to date "
                       f"(lag {_minutes(candle_lag)} ≤ {ctx.limits.max_data_age_minutes} min)", numbers=numbers)


def _minutes(delta: timedelta) -> str:
    """Return a readable duration: '4m05s' under an hour, '3h 05m' under a day, then '167d 3h'."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return f"-{_minutes(-delta)}"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m{seconds % 60:02d}s"
    if days < 1:
        return f"{hours}h {minutes % 60:02d}m"
    return f"{days:,}d {hours % 24}h"


def cooldown(ctx: GuardContext) -> GuardResult:
    name = "cooldown"
    window = timedelta(minutes=ctx.limits.cooldown_minutes)
    last = ctx.last_stop_out_at
    if last is not None and ctx.now - last < window:
        wait = window - (ctx.now - last)
        return GuardResult(name, Verdict.FAIL,
                           f"{ctx.intent.symbol} stopped out {_minutes(ctx.now - last)} ago < {ctx.limits.cooldown_minutes} min",
                           f"wait {_minutes(wait)} before re-entering", {"last_stop_out": last.isoformat()})
    return GuardResult(name, Verdict.PASS, f"no stop-out on {ctx.intent.symbol} in the last {ctx.limits.cooldown_minutes} min")


GUARDS: tuple[Callable[[GuardContext], GuardResult], ...] = (
    symbol_tradable,
    exchange_filters,
    balance,
    risk_per_trade,
    stop_distance_guard,
    daily_loss,
    monthly_drawdown,
    open_positions,
    data_freshness,
    cooldown,
    entry_price,
)


def order_test(exchange: str, side: str, quantity: Decimal, symbol: str, rejection: str | None) -> GuardResult:
    """The LIVE-only guard: the exchange's test-order endpoint accepted (or rejected) the entry order."""
    name = "order test"
    order = f"MARKET {side} {fmt(quantity)} {symbol}"
    if rejection is None:
        return GuardResult(name, Verdict.PASS, f"{exchange} accepted a test {order}")
    return GuardResult(name, Verdict.FAIL, f"{exchange} refused a test {order}: {rejection}",
                       fix="plan again: the exchange's filters, balance or status no longer allow this order")


GUARD_NAMES: tuple[str, ...] = (
    "symbol tradable", "exchange filters", "balance", "risk per trade", "stop distance", "daily loss",
    "monthly drawdown", "open positions", "data freshness", "cooldown", "entry price",
)
# What can change between validate and execute (other executions, closes, a loss halt): execute runs these again.
PORTFOLIO_GUARDS = frozenset({"balance", "daily loss", "monthly drawdown", "open positions", "cooldown"})


def run_guards(ctx: GuardContext, *, skip: frozenset[str] = frozenset()) -> list[GuardResult]:
    """Run every guard (but those named in skip, a backtest's --no-guards) and return all verdicts, in the SPEC's order."""
    return [guard(ctx) for guard, name in zip(GUARDS, GUARD_NAMES, strict=True) if name not in skip]


def overall(results: Sequence[GuardResult]) -> Verdict:
    """FAIL if any guard failed, else WARN if any warned, else PASS."""
    verdicts = {r.verdict for r in results}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    return Verdict.WARN if Verdict.WARN in verdicts else Verdict.PASS
