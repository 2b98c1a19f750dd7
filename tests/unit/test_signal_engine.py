"""The one evaluator over whole series: bulk outcomes equal one-signal decisions, confirm: none, the timeline."""

from datetime import UTC, datetime
from decimal import Decimal as D

import numpy as np
import pytest

from robson.adapters.signal_engine import (
    CONFIRMED,
    EXPIRED,
    INVALIDATED,
    WAITING,
    Evaluation,
    Series,
    SignalEngine,
)
from robson.domain.conditions import parse_scan
from robson.domain.market import Candle, Side
from robson.domain.signals import SignalEvent

HOUR = 3_600_000


def candles(closes: list[str], highs: list[str] | None = None, lows: list[str] | None = None) -> list[Candle]:
    highs = highs or closes
    lows = lows or closes
    return [Candle(i * HOUR, D(c), D(h), D(low), D(c), D("1")) for i, (c, h, low) in enumerate(zip(closes, highs, lows))]


def definition(confirm="next_close_above_high", window=2, when=None, side="buy"):
    return parse_scan({
        "indicators": {"fast": {"kind": "sma", "length": 1}, "slow": {"kind": "sma", "length": 2}},
        "setups": [{"name": "s", "side": side, "when": when or {"crosses_above": ["fast", "slow"]},
                    "confirm": confirm, "window": window}],
    })


def test_bulk_outcomes_equal_each_signals_own_decision():
    bars = candles(["10", "9", "11", "10.5", "12", "8", "13", "12", "12", "14"],
                   highs=["10", "9.5", "11.5", "11", "12.5", "9", "13.5", "12", "12.2", "14"])
    scan = definition(window=2)
    evaluation = SignalEngine().evaluate(scan, bars)
    setup = scan.setups[0]
    indices = np.arange(len(bars))

    codes, at = evaluation.outcomes(setup, indices)

    for index in indices:
        decision = evaluation.decision(setup, int(index))
        expected = {WAITING: None, CONFIRMED: SignalEvent.CONFIRM, INVALIDATED: SignalEvent.INVALIDATE,
                    EXPIRED: SignalEvent.EXPIRE}[int(codes[index])]
        assert decision.event is expected, index
        if decision.event in (SignalEvent.CONFIRM, SignalEvent.INVALIDATE):
            assert decision.candle_open_time == bars[int(at[index])].open_time


def test_confirm_none_confirms_on_the_signal_candle_itself():
    bars = candles(["10", "9", "11", "12"])
    scan = definition(confirm="none")
    evaluation = SignalEngine().evaluate(scan, bars)

    timeline = evaluation.timeline(scan.setups[0])

    assert timeline == [(2, CONFIRMED, 2, 0)]  # 9 → 11 crosses above the 2-candle average on candle 2
    decision = evaluation.decision(scan.setups[0], 2)
    assert (decision.event, decision.candle_open_time) == (SignalEvent.CONFIRM, 2 * HOUR)
    assert decision.reason == "no confirmation asked: entered on the next open"


def test_the_timeline_lists_every_detection_with_its_outcome_and_the_boosts_held():
    scan = parse_scan({
        "indicators": {"fast": {"kind": "sma", "length": 1}, "slow": {"kind": "sma", "length": 2}},
        "setups": [{"name": "s", "side": "buy", "when": {"crosses_above": ["fast", "slow"]},
                    "confirm": "condition_holds", "confidence": {"base": 0.5, "boosts": [{"gt": ["close", 10]}]}}],
    })
    bars = candles(["10", "9", "11", "10", "8", "12", "13"])
    evaluation = SignalEngine().evaluate(scan, bars)

    assert evaluation.timeline(scan.setups[0]) == [
        (2, INVALIDATED, 3, 1),  # 11 > 10 boosts; the next close 10 is back under the average 10.5
        (5, CONFIRMED, 6, 1),  # 8 → 12 crosses; 13 still above 12.5
    ]


def test_a_sell_setup_is_confirmed_below_the_signal_low():
    bars = candles(["10", "11", "9", "8.5", "8"], lows=["10", "11", "8.8", "8.5", "8"])
    scan = definition(when={"crosses_below": ["fast", "slow"]}, side="sell", window=3)

    evaluation = SignalEngine().evaluate(scan, bars)

    assert evaluation.timeline(scan.setups[0]) == [(2, CONFIRMED, 3, 0)]
    assert scan.setups[0].side is Side.SELL


def test_evaluating_an_empty_series_is_a_market_data_error():
    from robson.errors import MarketDataError

    with pytest.raises(MarketDataError):
        SignalEngine().evaluate(definition(), [])


def test_arrays_and_candles_give_the_same_evaluation():
    bars = candles(["10", "9", "11", "10.5", "12", "8", "13"])
    scan = definition()
    series = Series.from_candles(bars)

    from_candles = SignalEngine().evaluate(scan, bars).timeline(scan.setups[0])
    from_arrays = SignalEngine().evaluate(scan, series).timeline(scan.setups[0])

    assert from_candles == from_arrays
    assert isinstance(SignalEngine().evaluate(scan, series), Evaluation)
    assert datetime.fromtimestamp(series.open_time[-1] / 1000, UTC).hour == 6


def test_values_shown_stop_at_eight_places_and_prices_come_back_exactly():
    bars = candles(["33000.1", "33020.7", "33041.31", "33000.12345678"])
    scan = parse_scan({
        "indicators": {"slow": {"kind": "sma", "length": 3}},
        "setups": [{"name": "s", "side": "buy", "when": {"gt": ["close", "slow"]}, "confirm": "none"}],
    })

    values = SignalEngine().evaluate(scan, bars).values_at(scan.setups[0].when, 2)

    assert values["close"] == D("33041.31")
    assert values["slow"] == D("33020.70333333")  # (33000.1 + 33020.7 + 33041.31) / 3, not float noise
    assert all(-value.as_tuple().exponent <= 8 for value in values.values() if value is not None)
    assert SignalEngine().evaluate(scan, bars).values_at(scan.setups[0].when, 3)["close"] == D("33000.12345678")
