"""One trade lifecycle: the rules plan, execute, the paper exchange, the monitors and the backtest all call.

Pure functions over Decimals and closed candles, the same whatever the clock (live, a replay,
a backtest's cursor) and the venue (Binance, the paper book, the backtest's simulated book):

- plan_trade: entry, stop (the strategy's method over closed candles), size (the risk rule
  with its caps, or a fixed notional), target (an R multiple or a percent, optionally after
  fees) or a ladder of targets each closing a part (robson/domain/ladder.py), on the exchange's grid;
- market_fill: where a market order fills (the price moved against the trader by the
  slippage, on the tick) and its taker fee;
- anchor_to_fill / ladder_at_fill: percent levels (a fixed-percent stop, a percent target, an R
  target on a percent stop) follow the entry fill; levels read off the chart stay where the plan
  put them; a ladder's parts are sized again from the quantity filled;
- waiting_fill: where a closed candle fills an entry that waits for its price (a limit at it or
  better, a stop at it or worse), and whether as maker or taker;
- execution_risk: the risk a position would carry if entered at the price now;
- walk_settings / stop_limit_price: how a position is watched and protected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from robson.domain.ladder import Ladder, resolve_ladder
from robson.domain.market import Candle, Side, SymbolInfo
from robson.domain.money import HUNDRED, ONE, fmt, round_to_tick
from robson.domain.monitoring import MonitorSettings, TimeExitRule, time_exit_deadline
from robson.domain.operation import Operation, OperationStatus
from robson.domain.sizing import (
    Sizing,
    SizingRequest,
    check_stop_side,
    check_target_side,
    reward_to_risk,
    size_position,
)
from robson.domain.stops import compute_stop
from robson.domain.strategy import Strategy
from robson.domain.targets import TargetRule, target_for
from robson.errors import InvalidInput

FIXED_PERCENT = "fixed_percent"


# --- planning ------------------------------------------------------------------------------------


def candles_needed(strategy: Strategy) -> int:
    """How many closed candles the strategy's stop method looks at, with ATR warm-up (0: none)."""
    s = strategy.stop
    if s.kind == FIXED_PERCENT:
        return 0
    return max(s.lookback, s.fallback_lookback, s.atr_period + 1, s.ma_period) + 1


@dataclass(frozen=True, slots=True)
class PlannedTrade:
    """A sized trade on the exchange's grid, with where each number came from."""

    side: Side
    entry: Decimal  # on the tick
    entry_source: str  # "market" or "given"
    stop: Decimal
    stop_method: str
    stop_label: str
    stop_details: dict[str, Any]
    sizing: Sizing
    target: Decimal | None
    target_source: str
    anchor: dict[str, str] = field(default_factory=dict)  # levels that follow the entry fill (see anchor_to_fill)
    ladder: Ladder | None = None  # the strategy's targets, each closing a part; target is then where the last closes

    @property
    def quantity(self) -> Decimal:
        return self.sizing.quantity

    @property
    def reward_to_risk(self) -> Decimal | None:
        """The R:R if the target fills; with a ladder, blended over its parts."""
        if self.ladder is not None:
            return self.ladder.blended_r
        return reward_to_risk(self.side, self.entry, self.stop, self.target)


def plan_trade(side: Side, info: SymbolInfo, strategy: Strategy, *, entry: Decimal, entry_source: str,
               candles: Sequence[Candle], capital: Decimal, fee_rate: Decimal, max_position_percent: Decimal,
               available_balance: Decimal | None, quantity: Decimal | None = None, stop: Decimal | None = None,
               target: Decimal | None = None) -> PlannedTrade:
    """Size a trade by the strategy's rules; raise InvalidInput or SizingRefused.

    candles are the strategy timeframe's closed candles (the last candles_needed of them); a
    given stop or target overrides the strategy's (a given target replaces its ladder too), and a
    given quantity skips the risk rule.
    """
    if stop is not None:
        check_stop_side(side, entry, stop)
        stop_price, method, label, details = stop, "manual", "given with --stop", {}
    else:
        result = compute_stop(side, entry, candles, strategy.stop)
        stop_price, method, label, details = result.price, result.method, result.label, result.details
    sizing = size_position(
        SizingRequest(side=side, capital=capital, risk_percent=strategy.risk_percent, entry=entry, stop=stop_price,
                      fee_rate=fee_rate, max_position_percent=max_position_percent,
                      available_balance=available_balance, quantity=quantity),
        info,
    )
    fig = sizing.figures
    anchor: dict[str, str] = {}
    ladder = None
    if method == FIXED_PERCENT:
        anchor["stop_percent"] = fmt(strategy.stop.percent)
    if target is not None:
        target_price = info.round_price(target, up=side is Side.BUY)
        check_target_side(side, fig.entry, target_price)
        target_source = "given"
    elif strategy.targets:
        ladder = resolve_ladder(strategy.targets, side, entry=fig.entry, stop=fig.stop, quantity=fig.quantity,
                                info=info, fee_rate=fee_rate)
        final = ladder.final
        target_price, target_source = final.target, f"ladder of {len(ladder.parts)} targets from strategy"
        if final.step.at.percent is not None or anchor:
            anchor |= _target_anchor(final.step.at)  # the single target an execution re-anchors: the last part's
    else:
        target_price = target_for(strategy.target, side, fig.entry, fig.stop, info, fee_rate)
        target_source = "none" if target_price is None else f"{strategy.target.describe()} from strategy"
        if target_price is not None and (strategy.target.percent is not None or anchor):
            anchor |= _target_anchor(strategy.target)
    return PlannedTrade(side=side, entry=fig.entry, entry_source=entry_source, stop=fig.stop, stop_method=method,
                        stop_label=label, stop_details=details, sizing=sizing, target=target_price,
                        target_source=target_source, anchor=anchor, ladder=ladder)


def _target_anchor(rule: TargetRule) -> dict[str, str]:
    if rule.percent is not None:
        return {"target_percent": fmt(rule.percent), "target_after_fees": "true" if rule.after_fees else "false"}
    return {"target_r": fmt(rule.r_multiple)}


def anchor_to_fill(side: Side, fill: Decimal, anchor: dict[str, str], stop: Decimal, target: Decimal | None,
                   info: SymbolInfo, fee_rate: Decimal) -> tuple[Decimal, Decimal | None]:
    """Return (stop, target) re-anchored to the entry fill where the plan set them as a percent of entry.

    A fixed-percent stop is that percent from the fill, rounded away from it; a percent target
    (or an R target on a percent stop) is recomputed from the fill and that stop. Levels read off
    the chart (support, moving average, ATR) and prices given by hand stay as planned.
    """
    if "stop_percent" in anchor:
        percent = Decimal(anchor["stop_percent"])
        stop = info.round_price(fill * (ONE - side.sign * percent / HUNDRED), up=side is Side.SELL)
    if target is None:
        return stop, None
    if "target_percent" in anchor:
        rule = TargetRule(percent=Decimal(anchor["target_percent"]), after_fees=anchor.get("target_after_fees") == "true")
        target = target_for(rule, side, fill, stop, info, fee_rate)
    elif "target_r" in anchor:
        target = target_for(TargetRule(r_multiple=Decimal(anchor["target_r"])), side, fill, stop, info, fee_rate)
    return stop, target


def ladder_at_fill(ladder: Ladder, anchor: dict[str, str], *, fill: Decimal, stop: Decimal, quantity: Decimal,
                   info: SymbolInfo, fee_rate: Decimal) -> Ladder:
    """Return the plan's ladder for the position really opened: fill price, its stop, the quantity filled.

    Targets follow the fill where the plan's single target would (anchor_to_fill: percent targets,
    or R targets on a percent stop); otherwise they stay at the planned prices. The parts are sized
    again from the quantity filled, with the same merges. Raise InvalidInput as resolve_ladder does.
    """
    follows = "target_percent" in anchor or "target_r" in anchor
    return resolve_ladder(ladder.steps, ladder.side, entry=fill, stop=stop, quantity=quantity, info=info,
                          fee_rate=fee_rate, prices=None if follows else [part.target for part in ladder.parts])


def operation_ladder(ladder: Ladder, anchor: dict[str, str], *, fill: Decimal, stop: Decimal, quantity: Decimal,
                     info: SymbolInfo, fee_rate: Decimal) -> Ladder | None:
    """Return the ladder an operation opened at fill walks: ladder_at_fill, re-fitted when the fill passed a target.

    A fill at or beyond a kept target (the price ran past it before the entry filled) re-prices
    every target from the fill by the strategy's own R or percent, as a plan made at that price
    would; if even that cannot be priced (a stop too close to the fill), None: the position is
    then watched with its single target, where the last part would have closed.
    """
    try:
        return ladder_at_fill(ladder, anchor, fill=fill, stop=stop, quantity=quantity, info=info, fee_rate=fee_rate)
    except InvalidInput:
        pass
    try:
        return resolve_ladder(ladder.steps, ladder.side, entry=fill, stop=stop, quantity=quantity, info=info,
                              fee_rate=fee_rate)
    except InvalidInput:
        return None


# --- execution -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fill:
    price: Decimal  # on the tick, after slippage
    fee: Decimal  # taker fee in quote

    def cost(self, side: Side, quantity: Decimal) -> Decimal:
        """What the fill moves in quote: paid for a buy (notional + fee), received for a sell (notional − fee)."""
        notional = self.price * quantity
        return notional + self.fee if side is Side.BUY else notional - self.fee


def market_fill(side: Side, price: Decimal, quantity: Decimal, info: SymbolInfo, *, fee_rate: Decimal,
                slippage_rate: Decimal) -> Fill:
    """Fill a market order at price moved against the trader by slippage, on the tick; taker fee in quote."""
    slipped = price * (ONE + side.sign * slippage_rate)
    fill = info.round_price(slipped, up=side is Side.BUY)
    return Fill(fill, fill * quantity * fee_rate)


@dataclass(frozen=True, slots=True)
class WaitingFill:
    """Where a candle filled a waiting entry."""

    price: Decimal  # the fill, on the tick (a stop's after slippage)
    trigger_price: Decimal  # the entry price, or the open when the candle gapped through it
    fee: Decimal  # in quote: maker for a limit, taker for a stop
    maker: bool
    gapped: bool  # the candle opened beyond the entry price


def waiting_fill(order: str, side: Side, entry: Decimal, quantity: Decimal, candle: Candle, info: SymbolInfo, *,
                 maker_fee_rate: Decimal, taker_fee_rate: Decimal, slippage_rate: Decimal) -> WaitingFill | None:
    """Return how candle fills an entry waiting at entry, or None if the candle never traded at it.

    A limit buy fills when the low reaches the entry, at the entry or at the open if that was lower
    (better); it rests on the book, so it pays the maker fee. A stop buy triggers when the high
    reaches the entry and fills like a market order: at the entry or at the open if the candle
    gapped above it, moved against the trader by the slippage, taker fee. Sells mirror them.
    A wick counts: the candle traded at every price between its low and high.
    """
    limit = order == "limit"
    # Which extreme reaches the entry: a limit buy and a stop sell wait below the price, the others above.
    waits_below = limit == (side is Side.BUY)
    reached = candle.low <= entry if waits_below else candle.high >= entry
    if not reached:
        return None
    gapped = candle.open < entry if waits_below else candle.open > entry
    trigger = candle.open if gapped else entry
    if limit:
        price, rate = trigger, maker_fee_rate
    else:
        price, rate = info.round_price(trigger * (ONE + side.sign * slippage_rate), up=side is Side.BUY), taker_fee_rate
    return WaitingFill(price, trigger, price * quantity * rate, limit, gapped)


def execution_risk(side: Side, quantity: Decimal, price: Decimal, stop: Decimal, anchor: dict[str, str],
                   info: SymbolInfo, fee_rate: Decimal) -> tuple[Decimal, Decimal]:
    """Return (stop, risk at stop) of entering quantity at price now, the stop re-anchored where it follows the fill."""
    stop, _ = anchor_to_fill(side, price, anchor, stop, None, info, fee_rate)
    return stop, quantity * (price - stop) * side.sign


def stop_limit_price(side: Side, stop: Decimal, tick_round, offset_percent: Decimal = Decimal("0.5")) -> Decimal:
    """Return the limit price of the protective stop: offset_percent beyond the stop, away from the position."""
    offset = offset_percent / 100
    if side is Side.BUY:  # a long is protected by a SELL stop; its limit sits lower
        return tick_round(stop * (1 - offset), up=False)
    return tick_round(stop * (1 + offset), up=True)


def open_operation(*, operation_id: str, intent_id: str, symbol: str, side: Side, mode: str, strategy: str,
                   quantity: Decimal, entry_price: Decimal, entry_fee: Decimal, stop: Decimal,
                   target: Decimal | None, at: datetime, quote_asset: str) -> Operation:
    """Return the ACTIVE operation of a filled entry, checked from the moment it opened."""
    return Operation(id=operation_id, intent_id=intent_id, symbol=symbol, side=side, status=OperationStatus.ACTIVE,
                     mode=mode, strategy=strategy, quantity=quantity, entry_price=entry_price, entry_fee=entry_fee,
                     initial_stop=stop, stop=stop, target=target, opened_at=at, updated_at=at,
                     quote_asset=quote_asset, last_checked_at=at)


# --- watching ------------------------------------------------------------------------------------


def walk_settings(operation: Operation, strategy: Strategy | None, timeframe: str, *, fee_rate: Decimal,
                  slippage_rate: Decimal, tick_size: Decimal) -> MonitorSettings:
    """Return how the candle walk watches an operation: its candles, costs, the strategy's trailing and time exit."""
    rule = None
    if strategy is not None and strategy.time_exit is not None:
        # N candles count on the strategy's timeframe; the walk runs on finer ones, so pass the deadline as an age.
        deadline = time_exit_deadline(operation.opened_at, strategy.timeframe, strategy.time_exit)
        rule = TimeExitRule(max_age=deadline - operation.opened_at) if deadline is not None else None
    return MonitorSettings(timeframe=timeframe, fee_rate=fee_rate, slippage_rate=slippage_rate, tick_size=tick_size,
                           trailing=strategy is not None and strategy.trails, time_exit=rule)


def tick_rounder(tick_size: Decimal):
    """Return round(price, up=) on tick_size, as SymbolInfo.round_price does."""
    return lambda price, *, up: round_to_tick(price, tick_size, up=up)
