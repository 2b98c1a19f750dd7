"""Scale-out exits: a ladder of targets, each closing a part of the position, the stop moving after each.

A strategy writes its ladder under `targets:` (parse_ladder checks it when the file loads):

    targets:
      - {at: 1R, close: 50%, then_stop: breakeven_plus_fees}
      - {at: 2R, close: 25%, then_stop: previous_target}
      - {at: 3R, close: rest}

`at` is an R multiple of the stop distance (1R, 1.5R) or a percent of the entry (2%), one kind
per ladder, nearest first. `close` is the share of the position the target takes (50%), or `rest`
for the last one; the shares add up to 100 %. `then_stop` is where the stop goes once that
target has filled: `keep` (the default), `breakeven` (the entry), `breakeven_plus_fees` (the
price at which the rest nets zero after the entry fee and its own exit fee) or
`previous_target` (the target before this one). A stop never moves backwards.

resolve_ladder prices one position's ladder (plan time, and again at the entry fill):

- each target on the tick, rounded toward the entry as a single target is (robson/domain/targets.py);
- each part rounded DOWN to the LOT_SIZE step; the last part takes what is left, so the parts
  always add up to the position;
- a part too small to trade on its own (below LOT_SIZE min, or below MIN_NOTIONAL at its target
  or at the stop, the two prices its protective orders sit at) merges into the next part, and
  the last one into the part before it; a merged target closes nothing and moves no stop, and
  the ladder's notes say so;
- the blended R:R (each part's R weighted by its quantity), the stop after each target, the risk
  left on the rest, and the trade's P&L if the stop took the rest right then (taker fees on the
  entry and on every exit, the rate known at plan time).

walk_ladder replays closed candles over an open position with a ladder, candle by candle, with
the monitor's own rules (robson/domain/monitoring.py):

1. the stop first, as it stood before the candle: touched (or gapped through), it closes the rest;
2. then every target the candle reached, in order (several in one candle): each fills its part at
   the target, or at the open when the candle opened beyond it, with no slippage (a resting
   limit); after each, the stop moves by that target's rule, protecting from the NEXT candle on;
3. the time exit closes the rest at the close; then the hand-span trailing stop, if the strategy
   trails, may move the stop further (from the next candle too).

It returns the part fills (price, quantity, reason, candle) for paper, the backtest and live to
book as fills with their own fees. Live, where the exchange reports each target's fill, moves its
remaining stops with stop_after_part, the same rule the walk applies. ladder_doc / ladder_from_doc
keep a ladder in an intent's details; lifecycle.ladder_at_fill fits a plan's ladder to the fill.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from robson.domain.market import Candle, Side, SymbolInfo, ms_to_datetime, timeframe_ms
from robson.domain.money import HUNDRED, ZERO, fmt, parse_decimal
from robson.domain.monitoring import (
    Exit,
    MonitorSettings,
    StopMove,
    Touch,
    break_even_price,
    check_watched,
    exit_price,
    stop_touch,
    target_touch,
    time_exit_due_ms,
    touch_ms,
    trail,
    unseen_candles,
)
from robson.domain.operation import CloseReason, Operation
from robson.domain.orders import OrderRole, client_order_id
from robson.domain.sizing import reward_to_risk, stop_distance
from robson.domain.targets import TargetRule, target_for
from robson.errors import InvalidInput, StrategyError

MAX_TARGETS = 5  # Binance spot usually takes 5 stop orders per symbol (MAX_NUM_ALGO_ORDERS); live covers each part with one
MAX_R = Decimal("100")
MAX_PERCENT = Decimal("1000")
REST = "rest"
STEP_FIELDS = ("at", "close", "then_stop")
_AT = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]+)?|\.[0-9]+)\s*([rR%])\s*$")
_CLOSE = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9]+)?|\.[0-9]+)\s*%\s*$")


class StopRule(StrEnum):
    """Where the stop goes once a target has filled."""

    KEEP = "keep"
    BREAKEVEN = "breakeven"  # the entry price
    BREAKEVEN_PLUS_FEES = "breakeven_plus_fees"  # the rest nets zero after the entry fee and its exit fee
    PREVIOUS_TARGET = "previous_target"  # the price of the target before this one

    def describe(self) -> str:
        return {"keep": "kept", "breakeven": "break-even", "breakeven_plus_fees": "break-even + fees",
                "previous_target": "previous target"}[self.value]


@dataclass(frozen=True, slots=True)
class LadderStep:
    """One rung as the strategy writes it: where, how much, and the stop afterwards."""

    at: TargetRule  # r_multiple or percent
    close_percent: Decimal | None  # None: the rest (the last rung only)
    then_stop: StopRule = StopRule.KEEP

    @property
    def at_text(self) -> str:
        return f"{fmt(self.at.r_multiple)}R" if self.at.r_multiple is not None else f"{fmt(self.at.percent)}%"

    @property
    def close_text(self) -> str:
        return REST if self.close_percent is None else f"{fmt(self.close_percent)}%"

    def as_data(self) -> dict[str, str]:
        """The rung in the strategy's own words, which parse_ladder reads back."""
        return {"at": self.at_text, "close": self.close_text, "then_stop": self.then_stop.value}


# --- the strategy's words --------------------------------------------------------------------


def _fail(path: str, problem: str) -> StrategyError:
    return StrategyError(f"field '{path}': {problem}")


def _number(path: str, text: str) -> Decimal:
    try:
        return parse_decimal(text, path, allow_zero=True)
    except InvalidInput as e:
        raise _fail(path, e.message) from None


def _parse_at(path: str, raw: Any) -> TargetRule:
    match = _AT.match(raw) if isinstance(raw, str) else None
    if match is None:
        if isinstance(raw, str) and raw.strip().startswith("-"):
            raise _fail(path, f"must be beyond the entry (above 0), got {raw!r}")
        raise _fail(path, f"must be an R multiple like 1R or a percent of the entry like 2%, got {raw!r}")
    value = _number(path, match.group(1))
    if value == 0:
        raise _fail(path, f"must be beyond the entry (above 0), got {raw!r}")
    if match.group(2) == "%":
        if value > MAX_PERCENT:
            raise _fail(path, f"must be at most {MAX_PERCENT}%, got {raw!r}")
        return TargetRule(percent=value)
    if value > MAX_R:
        raise _fail(path, f"must be at most {MAX_R}R, got {raw!r}")
    return TargetRule(r_multiple=value)


def _parse_close(path: str, raw: Any) -> Decimal | None:
    if raw == REST:
        return None
    match = _CLOSE.match(raw) if isinstance(raw, str) else None
    if match is None:
        raise _fail(path, f"must be a share of the position like 50%, or rest, got {raw!r}")
    value = _number(path, match.group(1))
    if value == 0 or value > HUNDRED:
        raise _fail(path, f"must be above 0% and at most 100%, got {raw!r}")
    return value


def _parse_stop_rule(path: str, raw: Any) -> StopRule:
    try:
        return StopRule(raw)
    except ValueError:
        raise _fail(path, f"must be one of {', '.join(r.value for r in StopRule)}, got {raw!r}") from None


def parse_ladder(raw: Any, field: str = "targets") -> tuple[LadderStep, ...]:
    """Parse a `targets:` list; raise StrategyError("field '<path>': <problem>") for a bad ladder."""
    if not isinstance(raw, list) or not raw:
        raise _fail(field, f"must be a list of targets like [{{at: 1R, close: 50%}}, {{at: 2R, close: rest}}], "
                           f"got {raw!r}")
    if len(raw) > MAX_TARGETS:
        raise _fail(field, f"has {len(raw)} targets; at most {MAX_TARGETS} (Binance usually takes {MAX_TARGETS} stop "
                           f"orders per symbol, and each part has its own)")
    steps: list[LadderStep] = []
    for index, item in enumerate(raw):
        path = f"{field}[{index}]"
        step = _parse_rung(path, item)
        last = index == len(raw) - 1
        if step.close_percent is None and not last:
            raise _fail(f"{path}.close", "rest closes what is left, so it belongs to the last target only")
        if last and "then_stop" in item and step.then_stop is not StopRule.KEEP:
            raise _fail(f"{path}.then_stop", "the last target closes the position: no stop is left to move")
        if index == 0 and step.then_stop is StopRule.PREVIOUS_TARGET:
            raise _fail(f"{path}.then_stop", "the first target has no previous target (use breakeven_plus_fees)")
        if steps:
            _check_order(f"{path}.at", steps[-1], step)
        steps.append(step)
    _check_shares(field, steps)
    return tuple(steps)


def _parse_rung(path: str, item: Any) -> LadderStep:
    """Parse one rung on its own (its fields, not its place in the ladder); raise StrategyError."""
    if not isinstance(item, dict):
        raise _fail(path, f"must be a mapping like {{at: 1R, close: 50%}}, got {item!r}")
    for key in item:
        if key not in STEP_FIELDS:
            raise _fail(f"{path}.{key}", f"unknown field (allowed: {', '.join(STEP_FIELDS)})")
    for key in ("at", "close"):
        if key not in item:
            raise _fail(f"{path}.{key}", "is required")
    return LadderStep(at=_parse_at(f"{path}.at", item["at"]), close_percent=_parse_close(f"{path}.close", item["close"]),
                      then_stop=_parse_stop_rule(f"{path}.then_stop", item.get("then_stop", StopRule.KEEP.value)))


def parse_targets_text(text: str, option: str = "--targets") -> tuple[LadderStep, ...]:
    """Parse a ladder written on one line, AT:CLOSE[:THEN_STOP] per target, comma-separated
    ("1R:50%:breakeven_plus_fees,2R:rest"); raise InvalidInput naming the option and the problem."""
    raw: list[dict[str, str]] = []
    for index, rung in enumerate(str(text).split(",")):
        fields = [f.strip() for f in rung.split(":")]
        if not rung.strip() or not 2 <= len(fields) <= 3 or not all(fields):
            raise InvalidInput(f"{option} {text!r}: target {index + 1} {rung.strip()!r} must be AT:CLOSE or "
                               "AT:CLOSE:THEN_STOP, like 1R:50%:breakeven_plus_fees", hint="for example "
                               f"{option} \"1R:50%:breakeven_plus_fees,2R:rest\"")
        raw.append(dict(zip(STEP_FIELDS, fields, strict=False)))
    try:
        return parse_ladder(raw, field="targets")
    except StrategyError as e:
        raise InvalidInput(f"{option} {text!r}: {e.message}") from None


def _check_order(path: str, before: LadderStep, step: LadderStep) -> None:
    if (before.at.r_multiple is None) != (step.at.r_multiple is None):
        raise _fail(path, f"{step.at_text} mixes R and percent targets ({before.at_text} before it): "
                          "their order would depend on the stop; use one kind")
    previous = before.at.r_multiple if before.at.r_multiple is not None else before.at.percent
    current = step.at.r_multiple if step.at.r_multiple is not None else step.at.percent
    if current <= previous:
        raise _fail(path, f"{step.at_text} is not beyond the previous target {before.at_text}: "
                          "targets go from the nearest to the farthest")


def _check_shares(field: str, steps: list[LadderStep]) -> None:
    shares = [s.close_percent for s in steps if s.close_percent is not None]
    total = sum(shares, ZERO)
    listed = " + ".join(f"{fmt(s)}%" for s in shares)
    if steps[-1].close_percent is None:
        if total >= HUNDRED:
            raise _fail(field, f"the parts before rest add up to {fmt(total)}% ({listed}): nothing is left for rest")
    elif total != HUNDRED:
        raise _fail(field, f"the parts add up to {fmt(total)}% ({listed}), not 100%: make them add up to 100% "
                           "or close the last target with rest")


# --- one position's ladder ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LadderPart:
    """One target of a resolved ladder: its price, the quantity it closes, the stop after it."""

    number: int  # the rung's place in the strategy, from 1
    step: LadderStep
    target: Decimal  # on the tick
    r_multiple: Decimal  # (target − entry) / |entry − stop|, toward profit
    quantity: Decimal  # what this target closes (0: merged into another part)
    stop_after: Decimal | None = None  # the stop once it filled (None: nothing left, or merged)
    risk_left: Decimal | None = None  # the rest's loss from the entry if that stop fills, before fees (≥ 0)
    pnl_if_stopped: Decimal | None = None  # the trade's P&L, all fees in, if that stop takes the rest; last: all targets
    merged_into: int | None = None  # the part that took this one's quantity
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Ladder:
    """A position's targets with the part each closes; the parts add up to quantity."""

    side: Side
    entry: Decimal
    stop: Decimal
    quantity: Decimal
    fee_rate: Decimal  # the taker rate the figures were computed with
    parts: tuple[LadderPart, ...]

    @property
    def blended_r(self) -> Decimal:
        """The reward if every target fills, in R: each part's R weighted by its quantity."""
        return sum((p.r_multiple * p.quantity for p in self.parts), ZERO) / self.quantity

    @property
    def final(self) -> LadderPart:
        """The part that closes the last of the position (the farthest one with a quantity)."""
        return [p for p in self.parts if p.quantity > 0][-1]

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(p.note for p in self.parts if p.note)

    @property
    def steps(self) -> tuple[LadderStep, ...]:
        return tuple(p.step for p in self.parts)


def stop_level(rule: StopRule, side: Side, *, entry: Decimal, quantity: Decimal, entry_fee: Decimal,
               previous_target: Decimal | None, fee_rate: Decimal, tick_size: Decimal) -> Decimal | None:
    """Return where rule puts the stop (None for keep); raise InvalidInput for previous_target without one.

    Break-even plus fees is the same price for any part of the position, as the entry fee is
    shared pro rata: monitoring.break_even_price over the whole quantity and entry fee.
    """
    if rule is StopRule.KEEP:
        return None
    if rule is StopRule.BREAKEVEN:
        return entry
    if rule is StopRule.BREAKEVEN_PLUS_FEES:
        return break_even_price(side, entry, quantity, entry_fee, fee_rate, tick_size)
    if previous_target is None:
        raise InvalidInput("previous_target: the first target has no previous target")
    return previous_target


def stop_after_target(stop: Decimal, level: Decimal | None, side: Side, target: Decimal) -> Decimal:
    """Return the stop once a target filled: the rule's level, unless it is behind stop or not behind the target."""
    if level is None or (level - stop) * side.sign <= 0 or (target - level) * side.sign <= 0:
        return stop
    return level


def resolve_ladder(steps: Sequence[LadderStep], side: Side, *, entry: Decimal, stop: Decimal, quantity: Decimal,
                   info: SymbolInfo, fee_rate: Decimal, prices: Sequence[Decimal] | None = None) -> Ladder:
    """Price a ladder for one position (entry and stop on the tick, quantity on the step); raise InvalidInput.

    prices, when given, are the targets already set (a plan's, kept at the fill) instead of the
    steps' R or percent from this entry. Refused: no steps, a target that rounds onto or behind the
    entry or the target before it, and a stop rule that would put the stop at or beyond its own
    target (it would fire at once).
    """
    if not steps:
        raise InvalidInput("a ladder needs at least one target")
    if prices is not None and len(prices) != len(steps):
        raise InvalidInput(f"{len(prices)} target prices for a ladder of {len(steps)} targets")
    if quantity <= 0:
        raise InvalidInput(f"quantity must be greater than 0, got {fmt(quantity)}")
    distance = stop_distance(entry, stop)
    if distance == 0:
        raise InvalidInput(f"stop {fmt(stop)} equals entry {fmt(entry)}: targets in R need a stop distance")
    sign = side.sign
    targets: list[Decimal] = []
    for number, step in enumerate(steps, 1):
        price = target_for(step.at, side, entry, stop, info, fee_rate) if prices is None else prices[number - 1]
        behind = targets[-1] if targets else entry
        if price is None or price <= 0 or (price - behind) * sign <= 0:
            what = f"the target {number - 1} at {fmt(behind)}" if targets else f"the entry {fmt(entry)}"
            raise InvalidInput(f"target {number} ({step.at_text}) lands at {fmt(price)}, not beyond {what} "
                               f"for a {side.value.lower()}", hint="space the targets wider than the price tick")
        targets.append(price)
    quantities, merges = _part_quantities(steps, quantity, targets, stop, info)
    entry_fee = entry * quantity * fee_rate
    parts: list[LadderPart] = []
    current, remaining, realized = stop, quantity, -entry_fee
    for index, step in enumerate(steps):
        target, qty = targets[index], quantities[index]
        r = reward_to_risk(side, entry, stop, target)
        if qty == 0:
            parts.append(LadderPart(index + 1, step, target, r, qty, merged_into=merges[index][0],
                                    note=merges[index][1]))
            continue
        remaining -= qty
        realized += (target - entry) * sign * qty - target * qty * fee_rate
        if remaining == 0:
            parts.append(LadderPart(index + 1, step, target, r, qty, None, ZERO, realized, note=merges[index][1]))
            continue
        level = stop_level(step.then_stop, side, entry=entry, quantity=quantity, entry_fee=entry_fee,
                           previous_target=targets[index - 1] if index else None, fee_rate=fee_rate,
                           tick_size=info.tick_size)
        if level is not None and (target - level) * sign <= 0:
            raise InvalidInput(f"target {index + 1} ({step.at_text}) at {fmt(target)} is not beyond its stop "
                               f"afterwards, {step.then_stop.describe()} at {fmt(level)}: that stop would fire at once",
                               hint="put the target further from the entry, or keep the stop there")
        current = stop_after_target(current, level, side, target)
        risk_left = max(ZERO, (entry - current) * sign * remaining)
        pnl = realized + (current - entry) * sign * remaining - current * remaining * fee_rate
        parts.append(LadderPart(index + 1, step, target, r, qty, current, risk_left, pnl, note=merges[index][1]))
    return Ladder(side, entry, stop, quantity, fee_rate, tuple(parts))


def _part_quantities(steps: Sequence[LadderStep], quantity: Decimal, targets: list[Decimal], stop: Decimal,
                     info: SymbolInfo) -> tuple[list[Decimal], list[tuple[int | None, str | None]]]:
    """Return each part's quantity and (merged into, note): shares down to the step, small parts merged."""
    quantities = [info.round_quantity(quantity * s.close_percent / HUNDRED) for s in steps[:-1]]
    quantities.append(quantity - sum(quantities, ZERO))

    def too_small(index: int) -> str | None:
        part = quantities[index]
        if info.below_minimum(part, None):
            return info.dust_reason(part, None)
        # Its protective orders sell it at its target and at the stop: the lower of the two must be worth enough.
        where, price = min((("at the stop", stop), ("at its target", targets[index])), key=lambda pair: pair[1])
        if not info.below_minimum(part, price):
            return None
        return f"{where} {fmt(price)}, {info.dust_reason(part, price)}"

    reasons: dict[int, tuple[int, str]] = {}  # merged part → (the part it went into, why)

    def merge(index: int, into: int) -> None:
        reasons[index] = (into, too_small(index) or "")
        quantities[into] += quantities[index]
        quantities[index] = ZERO

    for index in range(len(steps) - 1):
        if too_small(index) is not None:
            merge(index, index + 1)
    last = len(steps) - 1
    earlier = [i for i in range(last) if quantities[i] > 0]
    if earlier and too_small(last) is not None:
        merge(last, earlier[-1])
    merges: list[tuple[int | None, str | None]] = [(None, None)] * len(steps)
    for index, (into, reason) in reasons.items():
        while quantities[into] == 0:  # merged again further on: name the part that closes it in the end
            into = reasons[into][0]
        merges[index] = (into + 1, f"target {index + 1} ({steps[index].at_text}, {steps[index].close_text}): "
                                   f"{reason}; merged into target {into + 1}, which closes "
                                   f"{fmt(quantities[into])} {info.base_asset}")
    return quantities, merges


# --- the candle walk --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartFill:
    """A part of the position closed: by a target, or the rest by the stop or a time exit."""

    part: int | None  # the ladder part's number for a target; None for the rest closed by the stop or time exit
    quantity: Decimal
    price: Decimal  # the fill: the target (or the gapped open); a stop or time exit after slippage, on the tick
    trigger_price: Decimal  # target, stop, gapped open or close before slippage
    fee: Decimal  # taker fee on the fill at the walk's rate, in quote (live books the exchange's own)
    reason: CloseReason
    at: datetime  # the candle's close (its open for a gap)
    candle_open_time: int
    gapped: bool = False


@dataclass(frozen=True, slots=True)
class LadderWalk:
    fills: tuple[PartFill, ...]
    moves: tuple[StopMove, ...]  # reason: the rule's name (breakeven_plus_fees …) or "trailing"
    stop: Decimal  # the stop after the walk
    reached: int  # parts passed (filled or merged): the next walk's `reached`
    remaining: Decimal  # still open (0: the position is closed)
    last_checked_at: datetime | None

    @property
    def closed(self) -> bool:
        return self.remaining == 0


def _part_fill(part: int | None, quantity: Decimal, candle: Candle, close_ms: int, touch: Touch,
               reason: CloseReason, side: Side, settings: MonitorSettings, *, slip: bool) -> PartFill:
    price = exit_price(side, touch.price, settings, slip=slip)
    return PartFill(part, quantity, price, touch.price, price * quantity * settings.fee_rate, reason,
                    ms_to_datetime(touch_ms(candle, touch, close_ms)), candle.open_time, touch.gapped)


def stop_after_part(operation: Operation, ladder: Ladder, part: LadderPart, stop: Decimal, *, fee_rate: Decimal,
                    tick_size: Decimal) -> Decimal:
    """Return the stop once part's target filled on operation (its real entry and fee), moving from stop by its rule."""
    previous = ladder.parts[part.number - 2].target if part.number > 1 else None
    level = stop_level(part.step.then_stop, operation.side, entry=operation.entry_price, quantity=operation.quantity,
                       entry_fee=operation.entry_fee, previous_target=previous, fee_rate=fee_rate, tick_size=tick_size)
    return stop_after_target(stop, level, operation.side, part.target)


def walk_ladder(operation: Operation, ladder: Ladder, candles: Sequence[Candle], settings: MonitorSettings, *,
                reached: int = 0, now: datetime | None = None) -> LadderWalk:
    """Replay closed candles over an ACTIVE operation with a ladder: part fills and stop moves.

    operation.stop is the stop now and operation.quantity the position as opened (the ladder's
    quantity); reached is how many parts earlier walks passed. Raise IllegalTransition for an
    operation that is not ACTIVE, InvalidInput for a ladder that does not fit it.
    """
    check_watched(operation)
    if ladder.quantity != operation.quantity or ladder.side is not operation.side:
        raise InvalidInput(f"the ladder is for {ladder.side.value} {fmt(ladder.quantity)}, the operation "
                           f"{operation.id} {operation.side.value} {fmt(operation.quantity)}")
    if not 0 <= reached < len(ladder.parts):
        raise InvalidInput(f"reached must be between 0 and {len(ladder.parts) - 1}, got {reached}")
    side, sign, length = operation.side, operation.side.sign, timeframe_ms(settings.timeframe)
    due_ms = time_exit_due_ms(operation, settings)
    remaining = sum((p.quantity for p in ladder.parts[reached:]), ZERO)

    def after(part: LadderPart, stop: Decimal) -> Decimal:
        return stop_after_part(operation, ladder, part, stop, fee_rate=settings.fee_rate, tick_size=settings.tick_size)

    rules = operation.initial_stop  # the stop the ladder's rules alone give: a stop beyond it was trailed
    for part in ladder.parts[:reached]:
        rules = after(part, rules) if part.quantity > 0 else rules
    stop, fills, moves, checked_ms = operation.stop, [], [], None
    for candle in unseen_candles(operation, candles, settings.timeframe, now):
        checked_ms = close_ms = candle.open_time + length
        touch = stop_touch(side, candle, stop)
        if touch is not None:
            reason = CloseReason.TRAILING if settings.trailing and (stop - rules) * sign > 0 else CloseReason.STOP
            fills.append(_part_fill(None, remaining, candle, close_ms, touch, reason, side, settings, slip=True))
            remaining = ZERO
            break
        next_stop = stop
        while reached < len(ladder.parts) and remaining > 0:
            part = ladder.parts[reached]
            touch = target_touch(side, candle, part.target) if part.quantity > 0 else None
            if part.quantity > 0 and touch is None:
                break
            reached += 1
            if touch is None:  # merged into another part: no fill, no stop move
                continue
            fills.append(_part_fill(part.number, part.quantity, candle, close_ms, touch, CloseReason.TARGET, side,
                                    settings, slip=False))
            remaining -= part.quantity
            rules, moved = after(part, rules), after(part, next_stop)
            if remaining > 0 and moved != next_stop:
                moves.append(StopMove(ms_to_datetime(close_ms), next_stop, moved, part.step.then_stop.value,
                                      candle.open_time, part.target))
                next_stop = moved
        if remaining == 0:
            break
        if due_ms is not None and close_ms >= due_ms:
            fills.append(_part_fill(None, remaining, candle, close_ms, Touch(candle.close, False),
                                    CloseReason.TIME_EXIT, side, settings, slip=True))
            remaining = ZERO
            break
        move = trail(operation, candle, next_stop, settings, close_ms) if settings.trailing else None
        if move is not None:
            moves.append(move)
            next_stop = move.new_stop
        stop = next_stop
    last = ms_to_datetime(checked_ms) if checked_ms is not None else operation.last_checked_at
    return LadderWalk(tuple(fills), tuple(moves), stop, reached, remaining, last)


# --- an operation's ladder: walked, booked, re-fitted -----------------------------------------


def ladder_view(operation: Operation) -> Operation:
    """Return operation as its ladder sees it: the quantity the ladder was sized for, its share of the entry fee.

    An operation's ladder is sized for the position as opened, or for what was held when it was
    re-fitted (a part closed by hand, targets replaced); break-even plus fees is the same price
    for any share of the position, as the entry fee is shared pro rata.
    """
    ladder = operation.ladder
    if ladder is None or ladder.quantity == operation.quantity:
        return dataclasses.replace(operation, parts=())
    return dataclasses.replace(operation, quantity=ladder.quantity, parts=(),
                               entry_fee=operation.entry_fee * ladder.quantity / operation.quantity)


def walk_operation(operation: Operation, candles: Sequence[Candle], settings: MonitorSettings, *,
                   now: datetime | None = None) -> LadderWalk:
    """Walk an ACTIVE operation with a ladder from where its last walk stopped (walk_ladder); raise as it does."""
    if operation.ladder is None:
        raise InvalidInput(f"operation {operation.id} has no ladder of targets")
    return walk_ladder(ladder_view(operation), operation.ladder, candles, settings, reached=operation.reached,
                       now=now)


def book_walk(operation: Operation, walk: LadderWalk) -> Operation:
    """Return operation after walk: each target's part taken (a fill with its own fee, order id -P1, -P2 …), the
    stop moved, the parts reached and the last check stored, and CLOSED by the fill that took the last of it."""
    updated = dataclasses.replace(operation, stop=walk.stop, reached=walk.reached,
                                  last_checked_at=walk.last_checked_at)
    for index, fill in enumerate(walk.fills):
        if walk.closed and index == len(walk.fills) - 1:
            return updated.close(exit_price=fill.price, exit_fee=fill.fee, reason=fill.reason, at=fill.at)
        updated = updated.take_part(quantity=fill.quantity, price=fill.price, fee=fill.fee, reason=fill.reason,
                                    at=fill.at, client_order_id=part_order_id(updated), target=fill.part)
    if walk.fills or walk.moves:
        updated = dataclasses.replace(updated, last_checked_at=walk.last_checked_at)
    return updated


def part_order_id(operation: Operation) -> str:
    """The client order id of the next part operation closes: -P1, -P2 …"""
    return client_order_id(operation.intent_id, OrderRole.PART, len(operation.parts) + 1)


def fill_exit(fill: PartFill) -> Exit:
    """The fill that closed the last of a position, as the monitor reports an exit."""
    return Exit(at=fill.at, price=fill.price, trigger_price=fill.trigger_price, fee=fill.fee, reason=fill.reason,
                candle_open_time=fill.candle_open_time, gapped=fill.gapped)


def part_quantity(text: str, held: Decimal, info: SymbolInfo, price: Decimal) -> Decimal:
    """Return the part of held that text asks to close ('50%' of it, or a quantity), down to the LOT_SIZE step;
    raise InvalidInput if it is not a share or quantity, nothing, all of it or more, or below the exchange's
    minimum (LOT_SIZE min, MIN_NOTIONAL at price), or if what it leaves is."""
    raw = text.strip() if isinstance(text, str) else ""
    if raw.endswith("%"):
        share = _CLOSE.match(raw)
        if share is None:
            raise InvalidInput(f"--part must be a share of what is held like 50%, or a quantity, got {text!r}")
        percent_ = Decimal(share.group(1).replace("_", ""))
        if percent_ <= 0 or percent_ >= HUNDRED:
            raise InvalidInput(f"--part {text} must be above 0% and below 100%",
                               hint="to close all of it, run robson operation close without --part")
        quantity = info.round_quantity(held * percent_ / HUNDRED)
    else:
        quantity = info.round_quantity(parse_decimal(raw, "--part"))
    if quantity >= held:
        raise InvalidInput(f"--part {text} is {fmt(quantity)} {info.base_asset}, not less than the {fmt(held)} held",
                           hint="to close all of it, run robson operation close without --part")
    if info.below_minimum(quantity, price):
        raise InvalidInput(f"--part {text}: {info.dust_reason(quantity, price)}")
    if info.below_minimum(held - quantity, price):
        raise InvalidInput(f"--part {text} would leave {info.dust_reason(held - quantity, price)}: no order could "
                           "protect or sell the rest", hint="close all of it, or a smaller part")
    return quantity


def ladder_for_held(ladder: Ladder, reached: int, held: Decimal, info: SymbolInfo) -> Ladder:
    """Return ladder with the parts still to come re-sized to held (a part closed by hand), pro rata, down to
    the step, the last taking the rest; a part too small to trade merges into the next (the last into the one
    before). The parts passed keep their sizes; the ladder's quantity is then their sum and held."""
    coming = [p for p in ladder.parts[reached:]]
    before = sum((p.quantity for p in coming), ZERO)
    if not coming or before == 0:
        return ladder
    sized = [info.round_quantity(held * p.quantity / before) if p.quantity > 0 else ZERO for p in coming]
    live = [i for i, q in enumerate(sized) if coming[i].quantity > 0]
    sized[live[-1]] += held - sum(sized, ZERO)
    for position, index in enumerate(live[:-1]):
        if info.below_minimum(sized[index], min(coming[index].target, ladder.stop)):
            sized[live[position + 1]] += sized[index]
            sized[index] = ZERO
    kept = [i for i in live if sized[i] > 0]
    if len(kept) > 1 and info.below_minimum(sized[kept[-1]], min(coming[kept[-1]].target, ladder.stop)):
        sized[kept[-2]] += sized[kept[-1]]
        sized[kept[-1]] = ZERO
    parts = list(ladder.parts[:reached]) + [
        dataclasses.replace(p, quantity=q, merged_into=p.merged_into if q or not p.quantity else None,
                            note=p.note if q or not p.quantity else f"target {p.number}: merged when a part was "
                                                                     "closed by hand")
        for p, q in zip(coming, sized, strict=True)]
    quantity = sum((p.quantity for p in ladder.parts[:reached]), ZERO) + held
    return dataclasses.replace(ladder, quantity=quantity, parts=tuple(parts))


# --- the ladder as data (an intent's details, an execution record) ----------------------------


def ladder_doc(ladder: Ladder) -> dict[str, Any]:
    """Return the ladder as JSON-ready strings: the rungs in the strategy's words and each resolved part."""

    def text(value: Decimal | None, places: int | None = None) -> str | None:
        return None if value is None else fmt(value, places)

    return {
        "side": ladder.side.value,
        "entry": fmt(ladder.entry),
        "stop": fmt(ladder.stop),
        "quantity": fmt(ladder.quantity),
        "fee_rate": fmt(ladder.fee_rate),
        "blended_reward_to_risk": fmt(ladder.blended_r, 4),
        "rungs": [step.as_data() for step in ladder.steps],
        "parts": [
            {"number": p.number, "at": p.step.at_text, "close": p.step.close_text, "then_stop": p.step.then_stop.value,
             "target": fmt(p.target), "r_multiple": fmt(p.r_multiple, 4), "quantity": fmt(p.quantity),
             "stop_after": text(p.stop_after), "risk_left": text(p.risk_left), "pnl_if_stopped": text(p.pnl_if_stopped),
             "merged_into": p.merged_into, "note": p.note}
            for p in ladder.parts
        ],
        "notes": list(ladder.notes),
    }


def ladder_from_doc(doc: dict[str, Any]) -> Ladder:
    """Read back a ladder_doc (exactly: prices and quantities are stored as text); raise InvalidInput if malformed."""

    def number(value: Any) -> Decimal | None:
        return None if value is None else Decimal(value)

    try:
        # Rung by rung: an operation's ladder whose coming targets were replaced is not one strategy's list.
        steps = [_parse_rung(f"rungs[{index}]", rung) for index, rung in enumerate(doc["rungs"])]
        side, entry, stop = Side(doc["side"]), Decimal(doc["entry"]), Decimal(doc["stop"])
        parts = tuple(
            LadderPart(number=p["number"], step=step, target=Decimal(p["target"]),
                       r_multiple=reward_to_risk(side, entry, stop, Decimal(p["target"])),
                       quantity=Decimal(p["quantity"]), stop_after=number(p["stop_after"]),
                       risk_left=number(p["risk_left"]), pnl_if_stopped=number(p["pnl_if_stopped"]),
                       merged_into=p["merged_into"], note=p["note"])
            for step, p in zip(steps, doc["parts"], strict=True)
        )
        return Ladder(side, entry, stop, Decimal(doc["quantity"]), Decimal(doc["fee_rate"]), parts)
    except (KeyError, TypeError, ValueError, ArithmeticError, StrategyError) as e:
        raise InvalidInput(f"a recorded ladder cannot be read ({e})") from None


# --- an operation's ladder replaced by hand, and the next target it waits for ----------------


def replace_ladder(operation: Operation, steps: Sequence[LadderStep], *, info: SymbolInfo, fee_rate: Decimal,
                   price: Decimal) -> Ladder:
    """Return operation's ladder with the targets still to come replaced by steps; raise InvalidInput.

    The new targets are priced as a strategy's are, from the operation's entry and initial stop (1 R),
    and sized over what it still holds (resolve_ladder: down to the step, small parts merged); the
    parts already passed are kept, so the parts taken keep their numbers and the rules' stop after
    them. Refused (InvalidInput): a target that rounds onto or behind the entry or the one before
    it, a stop rule that would fire at once, and a target not beyond price on the profit side (it
    would fill at once).
    """
    side, held = operation.side, operation.held
    coming = resolve_ladder(steps, side, entry=operation.entry_price, stop=operation.initial_stop, quantity=held,
                            info=info, fee_rate=fee_rate)
    for part in coming.parts:
        if (part.target - price) * side.sign <= 0:
            raise InvalidInput(f"--targets: target {part.number} ({part.step.at_text}) at {fmt(part.target)} is not "
                               f"{'above' if side is Side.BUY else 'below'} the price now {fmt(price)}: it would fill "
                               "at once", hint="choose targets further from the entry, or close a part by hand "
                                               "with robson operation close ID --part")
    old = operation.ladder
    passed = old.parts[:operation.reached] if old is not None else ()
    shift = len(passed)
    parts = passed + tuple(
        dataclasses.replace(p, number=p.number + shift,
                            merged_into=None if p.merged_into is None else p.merged_into + shift)
        for p in coming.parts)
    ladder = Ladder(side, old.entry if old is not None else operation.entry_price,
                    old.stop if old is not None else operation.initial_stop,
                    sum((p.quantity for p in passed), ZERO) + held, fee_rate, parts)
    return ladder_for_held(ladder, operation.reached, held, info)


def next_target(operation: Operation) -> Decimal | None:
    """The price the position waits for on the profit side: its ladder's next target with a part to take, or its target."""
    if operation.ladder is None:
        return operation.target
    return next((p.target for p in operation.ladder.parts[operation.reached:] if p.quantity > 0), None)
