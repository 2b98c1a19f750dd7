"""Price alerts in the domain: the state table, and the crossing rule on closed candles (wick, exact touch, gap)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.domain import alerts as alert_sm
from robson.domain.alerts import Alert, AlertEvent, AlertStatus, Crossing, Direction, new_alert, parse_direction, scan_candles
from robson.domain.market import Candle, datetime_to_ms
from robson.errors import IllegalTransition, InvalidInput

T0 = datetime(2021, 6, 9, 5, 45, tzinfo=UTC)
FIVE = 300_000  # 5m in ms
START = datetime_to_ms(T0)


def candle(minutes_after_t0: int, open_: str, high: str, low: str, close: str) -> Candle:
    """A 5m candle opening minutes_after_t0 after T0."""
    return Candle(open_time=START + minutes_after_t0 * 60_000, open=D(open_), high=D(high), low=D(low), close=D(close),
                  volume=D("1"))


def alert(direction: Direction = Direction.ABOVE, price: str = "33950", **changes: object) -> Alert:
    made = new_alert("btcusdt", direction, D(price), at=T0)
    return Alert(**{**{f: getattr(made, f) for f in made.__slots__}, **changes})


# --- the state table ------------------------------------------------------------------------

EXPECTED = {
    (AlertStatus.ACTIVE, AlertEvent.FIRE): AlertStatus.FIRED,
    (AlertStatus.ACTIVE, AlertEvent.REMOVE): AlertStatus.REMOVED,
}


def test_the_table_is_exactly_the_specified_one():
    assert alert_sm.TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("pair", "after"), EXPECTED.items(), ids=lambda v: str(v))
def test_legal_alert_transition(pair, after):
    assert alert_sm.next_status(*pair) is after


@pytest.mark.parametrize("pair", [p for p in itertools.product(AlertStatus, AlertEvent) if p not in EXPECTED],
                         ids=lambda p: f"{p[0].value}-{p[1].value}")
def test_a_fired_or_removed_alert_accepts_no_event(pair):
    with pytest.raises(IllegalTransition, match=f"alert cannot go {pair[0].value} -> {pair[1].value}"):
        alert_sm.next_status(*pair)


def test_a_new_alert_is_active_with_an_al_id_and_an_upper_case_symbol():
    made = new_alert("btcusdt", Direction.BELOW, D("30000"), at=T0, note="support", plan_id="pl-7f3a9c2e")

    assert made.id.startswith("al-") and len(made.id) == 11
    assert (made.symbol, made.status, made.created_at, made.updated_at) == ("BTCUSDT", AlertStatus.ACTIVE, T0, T0)
    assert made.condition == "BTCUSDT below 30000"
    assert made.since_ms == START  # never checked: the candles closing after its creation are new


def test_firing_records_the_candle_and_the_price_that_reached_the_level():
    fired_at = T0 + timedelta(minutes=50)
    crossing = Crossing(candle_open_time=START + 40 * 60_000, candle_close_time=START + 45 * 60_000,
                        price=D("33968.70"), gapped=False)

    fired = alert().fire(crossing, fired_at)

    assert (fired.status, fired.fired_at, fired.updated_at) == (AlertStatus.FIRED, fired_at, fired_at)
    assert (fired.fired_candle_ms, fired.fired_price, fired.checked_ms) == (START + 40 * 60_000, D("33968.70"),
                                                                           START + 45 * 60_000)
    assert fired.reached_text("5m", gapped=False) == "the 2021-06-09 06:25 UTC 5m candle's high 33968.7"
    with pytest.raises(IllegalTransition):
        fired.fire(crossing, fired_at)  # once only
    with pytest.raises(IllegalTransition):
        fired.remove(fired_at)


@pytest.mark.parametrize(("text", "expected"), [("above", Direction.ABOVE), (" BELOW ", Direction.BELOW)])
def test_a_direction_is_above_or_below_in_any_case(text, expected):
    assert parse_direction(text) is expected


@pytest.mark.parametrize("text", ["over", "", "abovee", ">"])
def test_any_other_direction_is_refused(text):
    with pytest.raises(InvalidInput, match="direction must be 'above' or 'below'"):
        parse_direction(text)


# --- the crossing rule ----------------------------------------------------------------------
# Candles from the sample market's BTCUSDT 5m on 2021-06-09, opening 05:45 + n minutes.
MORNING = [
    candle(0, "33566.91", "33590.00", "33435.66", "33466.53"),  # 05:45
    candle(5, "33466.53", "33480.00", "33400.27", "33454.20"),  # 05:50
    candle(35, "33543.28", "33700.00", "33507.98", "33674.40"),  # 06:20
    candle(40, "33676.94", "33968.70", "33627.43", "33902.96"),  # 06:25: a wick to 33968.70, closed at 33902.96
    candle(45, "33902.96", "33902.97", "33700.00", "33704.45"),  # 06:30
    candle(55, "33778.22", "34149.48", "33725.39", "34085.07"),  # 06:40
]


def test_a_wick_above_the_price_fires_although_the_candle_closed_below_it():
    scan = scan_candles(alert(price="33950"), MORNING, FIVE)

    assert scan.crossing == Crossing(START + 40 * 60_000, START + 45 * 60_000, D("33968.70"), gapped=False)
    assert scan.checked_ms == START + 45 * 60_000


def test_the_first_candle_to_reach_the_price_fires_not_a_later_one():
    assert scan_candles(alert(price="33700"), MORNING, FIVE).crossing.candle_open_time == START + 35 * 60_000


@pytest.mark.parametrize(("direction", "price", "reached_at"), [
    (Direction.ABOVE, "33968.70", 40),  # the 06:25 high exactly
    (Direction.BELOW, "33400.27", 5),  # the 05:50 low exactly
], ids=["above", "below"])
def test_an_exact_touch_of_the_price_fires(direction, price, reached_at):
    scan = scan_candles(alert(direction, price), MORNING, FIVE)

    assert scan.crossing.candle_open_time == START + reached_at * 60_000
    assert scan.crossing.price == D(price)


@pytest.mark.parametrize(("direction", "price"), [(Direction.ABOVE, "33968.71"), (Direction.BELOW, "33400.26")])
def test_a_price_one_tick_beyond_every_candle_does_not_fire(direction, price):
    scan = scan_candles(alert(direction, price), MORNING[:5], FIVE)

    assert scan.crossing is None
    assert scan.checked_ms == START + 50 * 60_000  # the 06:30 candle's close: checked through it


def test_a_wick_below_the_price_fires_a_below_alert_with_the_low():
    scan = scan_candles(alert(Direction.BELOW, "33420"), MORNING, FIVE)

    assert (scan.crossing.candle_open_time, scan.crossing.price) == (START + 5 * 60_000, D("33400.27"))


def test_a_gap_past_the_price_fires_on_the_candle_that_opened_beyond_it():
    gap = [candle(0, "100", "101", "99", "100.5"), candle(5, "110", "112", "109", "111")]

    above = scan_candles(alert(Direction.ABOVE, "105"), gap, FIVE).crossing
    below = scan_candles(alert(Direction.BELOW, "95"), [*gap, candle(10, "90", "91", "89", "90")], FIVE).crossing

    assert (above.candle_open_time, above.price, above.gapped) == (START + 5 * 60_000, D("112"), True)
    assert (below.candle_open_time, below.price, below.gapped) == (START + 10 * 60_000, D("89"), True)


def test_nothing_fires_and_nothing_is_checked_while_no_candle_has_closed_since_the_last_check():
    # Set at 05:45: the 05:40 candle closed at 05:45, before the alert existed; nothing has closed since.
    before = [candle(-5, "33526.28", "40000", "33488.58", "33566.91")]

    scan = scan_candles(alert(price="33950"), before, FIVE)

    assert (scan.crossing, scan.checked_ms) == (None, None)


def test_candles_closed_by_the_last_check_are_not_looked_at_again():
    checked = alert(price="33950", checked_ms=START + 45 * 60_000)  # through the 06:25 candle's close

    scan = scan_candles(checked, MORNING, FIVE)

    assert scan.crossing.candle_open_time == START + 55 * 60_000  # the 06:40 candle, not the 06:25 wick again
