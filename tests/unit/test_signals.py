"""Signal lifecycle: the transition table, idempotency keys, and deciding from later candles."""

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.adapters.signal_engine import decide
from robson.domain import signals as signal_sm
from robson.domain.conditions import Detection, parse_scan
from robson.domain.market import Candle, Side
from robson.domain.signals import (
    SIGNAL_PREFIX,
    Signal,
    SignalEvent,
    SignalStatus,
    new_signal,
    signal_key,
)
from robson.errors import IllegalTransition, MarketDataError

S, E = SignalStatus, SignalEvent
NOW = datetime(2021, 7, 17, 21, 0, tzinfo=UTC)
HOUR = 3_600_000

EXPECTED = {
    (S.DETECTED, E.CONFIRM): S.CONFIRMED,
    (S.DETECTED, E.INVALIDATE): S.INVALIDATED,
    (S.DETECTED, E.EXPIRE): S.EXPIRED,
}


# --- the transition table ----------------------------------------------------------------------


@pytest.mark.parametrize(("pair", "after"), EXPECTED.items(), ids=lambda v: str(v))
def test_legal_signal_transition(pair, after):
    assert signal_sm.next_status(*pair) is after


ILLEGAL = [p for p in itertools.product(SignalStatus, SignalEvent) if p not in EXPECTED]


@pytest.mark.parametrize("pair", ILLEGAL, ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_illegal_signal_transition_is_refused(pair):
    with pytest.raises(IllegalTransition, match=f"signal cannot go {pair[0].value} -> {pair[1].value}; .* is final"):
        signal_sm.next_status(*pair)


def test_signal_table_is_exactly_the_specified_one():
    assert signal_sm.TRANSITIONS == EXPECTED
    assert signal_sm.TERMINAL == {S.CONFIRMED, S.INVALIDATED, S.EXPIRED}


# --- the signal --------------------------------------------------------------------------------


def detection(side=Side.BUY, open_time=10 * HOUR):
    return Detection("cross", side, open_time, D("0.75"), {"fast": D("3"), "slow": None}, "fast crosses above slow")


def test_a_new_signal_is_detected_with_an_sg_id_and_the_detection_facts():
    signal = new_signal(detection(), strategy="rescue-forces", symbol="btcusdt", timeframe="1h", at=NOW)

    assert signal.id.startswith(f"{SIGNAL_PREFIX}-") and len(signal.id) == 11
    assert signal.status is S.DETECTED
    assert (signal.strategy, signal.pattern, signal.symbol, signal.timeframe) == ("rescue-forces", "cross", "BTCUSDT", "1h")
    assert (signal.candle_open_time, signal.side, signal.confidence) == (10 * HOUR, Side.BUY, D("0.75"))
    assert signal.values == {"fast": D("3"), "slow": None}
    assert (signal.reason, signal.detected_at, signal.updated_at, signal.resolution) == (
        "fast crosses above slow", NOW, NOW, None)


def test_the_idempotency_key_is_strategy_pattern_symbol_timeframe_and_candle():
    first = new_signal(detection(), strategy="rescue-forces", symbol="BTCUSDT", timeframe="1h", at=NOW)
    again = new_signal(detection(), strategy="rescue-forces", symbol="btcusdt", timeframe="1h", at=NOW + timedelta(minutes=5))

    assert first.id != again.id
    assert first.key == again.key == ("rescue-forces", "cross", "BTCUSDT", "1h", 10 * HOUR)
    assert signal_key("rescue-forces", "cross", "btcusdt", "1h", 10 * HOUR) == first.key


def test_applying_an_event_moves_the_status_and_records_why_and_when():
    signal = new_signal(detection(), strategy="s", symbol="BTCUSDT", timeframe="1h", at=NOW)
    later = NOW + timedelta(hours=1)

    confirmed = signal.apply(E.CONFIRM, later, "close 105 above the signal high 104")

    assert (confirmed.status, confirmed.updated_at, confirmed.detected_at) == (S.CONFIRMED, later, NOW)
    assert confirmed.resolution == "close 105 above the signal high 104"
    with pytest.raises(IllegalTransition, match="CONFIRMED is final"):
        confirmed.apply(E.EXPIRE, later)


# --- deciding from later candles ---------------------------------------------------------------


def bar(index: int, close: str, high: str | None = None, low: str | None = None) -> Candle:
    c = D(close)
    return Candle(index * HOUR, c, D(high) if high else c, D(low) if low else c, c, D("1"))


SIGNAL_CANDLE = bar(10, "100", high="104", low="96")


def scan_setup(**changes):
    data = {"name": "cross", "side": "buy", "when": {"crosses_above": ["fast", "slow"]}}
    data.update(changes)
    return parse_scan({"indicators": {"fast": {"kind": "sma", "length": 2}, "slow": {"kind": "sma", "length": 3}},
                       "setups": [data]}).setups[0]


def detected(side=Side.BUY, open_time=10 * HOUR) -> Signal:
    return new_signal(detection(side, open_time), strategy="s", symbol="BTCUSDT", timeframe="1h", at=NOW)


def run(later_closes, *, side=Side.BUY, window=1, series=None):
    candles = [bar(9, "99"), SIGNAL_CANDLE] + [bar(11 + i, close) for i, close in enumerate(later_closes)]
    setup = scan_setup(side=side.value.lower(), window=window)
    return decide(detected(side), setup, candles, series or {})


def test_a_buy_is_confirmed_when_the_next_close_is_above_the_signal_high():
    decision = run(["104.01"])

    assert decision.event is E.CONFIRM
    assert decision.reason == "close 104.01 above the signal high 104"
    assert decision.candle_open_time == 11 * HOUR


def test_a_buy_is_invalidated_when_the_next_close_is_below_the_signal_low():
    decision = run(["95.99"])

    assert decision.event is E.INVALIDATE
    assert decision.reason == "close 95.99 below the signal low 96"


def test_a_sell_is_confirmed_by_a_close_below_the_low_and_invalidated_by_one_above_the_high():
    assert run(["95"], side=Side.SELL).event is E.CONFIRM
    assert run(["105"], side=Side.SELL).event is E.INVALIDATE


def test_a_close_inside_the_signal_range_decides_nothing_and_the_signal_waits_within_its_window():
    decision = run(["104"], window=3)

    assert decision.event is None
    assert decision.reason == "waiting: 1 of 3 candles closed"


def test_a_signal_with_no_closed_candle_after_it_waits():
    assert run([]).event is None


def test_the_first_verdict_within_the_window_wins():
    decision = run(["101", "99", "105", "90"], window=3)

    assert decision.event is E.CONFIRM
    assert decision.candle_open_time == 13 * HOUR


def test_a_signal_expires_when_its_window_closes_without_a_verdict():
    decision = run(["101", "99", "102", "110"], window=3)

    assert decision.event is E.EXPIRE
    assert decision.reason == "not confirmed within 3 closed candles"


def test_condition_holds_confirms_when_the_cross_still_holds_on_the_next_close():
    series = {"fast": [1, 3, 4], "slow": [2, 2, 2]}
    candles = [bar(9, "99"), SIGNAL_CANDLE, bar(11, "100")]

    decision = decide(detected(), scan_setup(confirm="condition_holds"), candles, series)

    assert decision.event is E.CONFIRM
    assert decision.reason == "fast crosses above slow still holds on the next close"
    assert decision.values == {"fast": D(4), "slow": D(2)}


def test_condition_holds_invalidates_when_the_cross_has_undone_itself():
    series = {"fast": [1, 3, 1.5], "slow": [2, 2, 2]}
    candles = [bar(9, "99"), SIGNAL_CANDLE, bar(11, "100")]

    decision = decide(detected(), scan_setup(confirm="condition_holds", window=3), candles, series)

    assert decision.event is E.INVALIDATE
    assert decision.reason == "fast crosses above slow no longer holds on the next close"


def test_condition_holds_checks_its_own_condition_when_one_is_given():
    series = {"fast": [1, 3, 4], "slow": [2, 2, 2]}
    candles = [bar(9, "99"), SIGNAL_CANDLE, bar(11, "100")]
    setup = scan_setup(confirm={"condition_holds": {"gt": ["close", 100]}})

    decision = decide(detected(), setup, candles, series)

    assert decision.event is E.INVALIDATE
    assert decision.reason == "close > 100 no longer holds on the next close"


def test_only_a_detected_signal_is_decided():
    confirmed = detected().apply(E.CONFIRM, NOW)

    with pytest.raises(IllegalTransition, match="is CONFIRMED: only a DETECTED signal is decided"):
        decide(confirmed, scan_setup(), [SIGNAL_CANDLE], {})


def test_a_signal_whose_candle_left_the_data_long_ago_expires():
    candles = [bar(20 + i, "100") for i in range(3)]

    decision = decide(detected(), scan_setup(window=3), candles, {})

    assert decision.event is E.EXPIRE
    assert "signal candle no longer in the data" in decision.reason


def test_a_recent_signal_whose_candle_is_missing_is_a_market_data_error():
    candles = [bar(11, "100")]

    with pytest.raises(MarketDataError, match=r"the signal candle \(1970-01-01 10:00 UTC\) of sg-"):
        decide(detected(), scan_setup(window=3), candles, {})
