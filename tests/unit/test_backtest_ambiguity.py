"""The backtest's same-candle flag: the stop candle also reached the target the position waited for.

With a ladder that target is the next one with a part to take, not the last one: a candle touching
the stop and target 2 is decided by the stop-first rule even though it never came near target 3.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D

import pytest

from robson.application.backtest import _ambiguous
from robson.domain.ladder import book_walk, fill_exit, next_target, walk_operation
from robson.domain.monitoring import MonitorSettings
from tests.unit.test_ladder import FEE, X, candle, ladder, operation

SETTINGS = MonitorSettings(timeframe="15m", fee_rate=FEE, slippage_rate=D("0"), tick_size=X.tick_size)


class Walk:
    """The two methods of a backtest's CandleHistory the flag reads."""

    def __init__(self, candles):
        self._candles = candles

    def index_at_or_after(self, open_ms: int) -> int:
        return next(i for i, c in enumerate(self._candles) if c.open_time >= open_ms)

    def candle(self, index: int):
        return self._candles[index]


def stopped(*candles):
    """Walk the 100 / 95 position with the 1R, 2R, 3R ladder (105, 110, 115) over candles; return what closed it."""
    op = dataclasses.replace(operation(target="115"), ladder=ladder())
    walk = walk_operation(op, list(candles), SETTINGS)
    assert walk.closed
    return book_walk(op, walk), fill_exit(walk.fills[-1])


@pytest.mark.parametrize(("high", "flagged"), [("111", True), ("109", False)])
def test_a_stop_candle_is_flagged_when_it_reached_the_next_ladder_target(high, flagged):
    # Candle 0 takes target 1 (105) and lifts the stop to break-even plus fees (100.21); candle 1 goes down to
    # 99 (the stop, first) and up to high: 111 reaches target 2 (110), though not the last target (115).
    candles = [candle(0, "100", "105.5", "99.5", "105"), candle(1, "104", high, "99", "100")]

    closed, exit_ = stopped(*candles)

    assert (closed.close_reason.value, closed.reached, next_target(closed)) == ("stop", 1, D("110"))
    assert _ambiguous(closed, exit_, Walk(candles)) is flagged


def test_before_any_target_the_first_target_is_the_one_compared():
    candles = [candle(0, "100", "106", "94", "100")]  # the stop (95) and target 1 (105) in one candle

    closed, exit_ = stopped(*candles)

    assert (closed.reached, closed.parts) == (0, ())
    assert _ambiguous(closed, exit_, Walk(candles)) is True
