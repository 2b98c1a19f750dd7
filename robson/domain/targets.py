"""Where a target sits: an R multiple of the stop distance or a percent of the entry, on the exchange's tick.

One rule for every target robson prices: a strategy's single `target:`, each rung of a
`targets:` ladder (robson/domain/ladder.py), and a target re-anchored to the entry fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from robson.domain.market import Side, SymbolInfo
from robson.domain.money import HUNDRED, ONE, ZERO, fmt
from robson.domain.sizing import stop_distance
from robson.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class TargetRule:
    """Where the target sits: an R multiple of the stop distance, or a percent of the entry.

    A percent target with after_fees is the exit price at which the trade nets that percent of
    its cost once both taker fees are paid (freqtrade's ROI): entry × (1 + p) × (1 + f) / (1 − f).
    """

    r_multiple: Decimal | None = None
    percent: Decimal | None = None
    after_fees: bool = False

    def describe(self) -> str:
        if self.r_multiple is not None:
            return f"{fmt(self.r_multiple)}R"
        if self.percent is not None:
            return f"{fmt(self.percent)} %" + (" after fees" if self.after_fees else "")
        return "-"


def target_for(rule: TargetRule, side: Side, entry: Decimal, stop: Decimal, info: SymbolInfo,
               fee_rate: Decimal) -> Decimal | None:
    """Return the strategy's target on the tick, or None when it sets none.

    An R target sits r × the stop distance beyond entry, rounded toward entry. A percent target
    sits percent beyond entry, rounded toward entry; after fees, it is the price at which the
    trade nets that percent of its cost once both taker fees are paid, rounded away from entry
    so that it nets at least that.
    """
    if rule.r_multiple is not None:
        raw = entry + side.sign * rule.r_multiple * stop_distance(entry, stop)
        return info.round_price(raw, up=side is Side.SELL)
    if rule.percent is None:
        return None
    move = rule.percent / HUNDRED
    if not rule.after_fees:
        return info.round_price(entry * (ONE + side.sign * move), up=side is Side.SELL)
    if not ZERO <= fee_rate < ONE:
        raise InvalidInput(f"fee rate must be between 0 and 1, got {fmt(fee_rate)}")
    sign = side.sign
    # Long: P·q·(1 − f) = E·q·(1 + f)·(1 + p); a short's proceeds and cost swap sides.
    raw = entry * (ONE + sign * move) * (ONE + sign * fee_rate) / (ONE - sign * fee_rate)
    if raw <= 0:
        raise InvalidInput(f"a {fmt(rule.percent)} % target after fees has no price for a short at {fmt(entry)}")
    return info.round_price(raw, up=side is Side.BUY)
