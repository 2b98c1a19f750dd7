"""The candle walk of a paper operation: stop before target, gaps, wicks, trailing and time exits."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.domain.market import Candle, Side, datetime_to_ms
from robson.domain.monitoring import (
    MonitorSettings,
    StopMove,
    TimeExitRule,
    apply_walk,
    parse_duration,
    time_exit_candle,
    time_exit_deadline,
    walk_candles,
)
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.errors import IllegalTransition, InvalidInput

T0 = datetime(2021, 7, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
M15 = 15 * 60_000
SETTINGS = MonitorSettings(timeframe="15m", fee_rate=D("0.001"), slippage_rate=D("0.0005"), tick_size=D("0.01"))
TRAILING = dataclasses.replace(SETTINGS, trailing=True)


def operation(side=Side.BUY, stop="95", target=None, opened_at=T0, last_checked_at=None) -> Operation:
    # entry 100, 2 units, entry fee 0.2: one R = 2 × 5 = 10.
    return Operation(id="op-1", intent_id="pl-1", symbol="XUSDT", side=side, status=OperationStatus.ACTIVE,
                     mode="paper", strategy="all-in", quantity=D("2"), entry_price=D("100"), entry_fee=D("0.2"),
                     initial_stop=D(stop), stop=D(stop), target=D(target) if target else None,
                     opened_at=opened_at, updated_at=opened_at, last_checked_at=last_checked_at)


def candle(index: int, open_: str, high: str, low: str, close: str) -> Candle:
    """The index-th 15m candle after T0."""
    return Candle(datetime_to_ms(T0) + index * M15, D(open_), D(high), D(low), D(close), D("1"))


def at(minutes: int) -> datetime:
    return T0 + minutes * MINUTE


# --- nothing to see -----------------------------------------------------------------------


def test_no_candles_leave_the_operation_unchanged():
    result = walk_candles(operation(), [], SETTINGS)

    assert (result.moves, result.exit, result.stop, result.last_checked_at) == ((), None, D("95"), None)


def test_quiet_candles_advance_the_last_check_only():
    candles = [candle(0, "100", "101", "99", "100.5"), candle(1, "100.5", "102", "100", "101")]

    result = walk_candles(operation(target="110"), candles, SETTINGS)

    assert result.exit is None
    assert result.last_checked_at == at(30)


# --- stops --------------------------------------------------------------------------------


def test_a_touched_stop_fills_at_the_stop_less_slippage():
    # Candle 1's low 94.5 touches the stop 95: 95 × (1 − 0.0005) = 94.9525 → tick down → 94.95.
    candles = [candle(0, "100", "101", "99", "100.5"), candle(1, "100.5", "101", "94.5", "99")]

    result = walk_candles(operation(), candles, SETTINGS)

    assert result.exit.reason is CloseReason.STOP
    assert (result.exit.trigger_price, result.exit.price) == (D("95"), D("94.95"))
    assert result.exit.fee == D("0.18990")  # 94.95 × 2 × 0.001
    assert result.exit.candle_open_time == candles[1].open_time
    assert (result.exit.at, result.last_checked_at) == (at(30), at(30))
    assert result.exit.gapped is False


def test_a_wick_between_checks_is_caught_though_the_price_is_back_above_the_stop():
    # Checked at 00:15; by 00:45 the price is back at 99, but candle 2 (00:30–00:45) wicked to 94.
    op = operation(last_checked_at=at(15))
    candles = [candle(1, "100", "101", "99", "100"), candle(2, "100", "100.5", "94", "99")]

    result = walk_candles(op, candles, SETTINGS, now=at(45))

    assert result.exit.reason is CloseReason.STOP
    assert result.exit.candle_open_time == candles[1].open_time
    assert result.exit.price == D("94.95")


def test_stop_wins_when_stop_and_target_are_touched_in_one_candle():
    candles = [candle(0, "100", "111", "94", "105")]  # high 111 ≥ target 110, low 94 ≤ stop 95

    result = walk_candles(operation(target="110"), candles, SETTINGS)

    assert result.exit.reason is CloseReason.STOP
    assert result.exit.price == D("94.95")


def test_a_gap_through_the_stop_fills_at_the_open():
    # Candle 1 opens at 93, below the stop 95: 93 × 0.9995 = 92.9535 → 92.95, at the candle's open.
    candles = [candle(0, "100", "101", "96", "96"), candle(1, "93", "94", "92", "93.5")]

    result = walk_candles(operation(), candles, SETTINGS)

    assert (result.exit.trigger_price, result.exit.price) == (D("93"), D("92.95"))
    assert result.exit.gapped is True
    assert result.exit.at == at(15)
    assert result.last_checked_at == at(30)


def test_a_stop_already_beyond_the_price_exits_at_the_first_open():
    candles = [candle(0, "90", "91", "89", "90")]

    result = walk_candles(operation(), candles, SETTINGS)

    assert (result.exit.reason, result.exit.trigger_price, result.exit.price) == (CloseReason.STOP, D("90"), D("89.95"))


def test_a_short_stop_fills_above_the_stop_plus_slippage():
    # Short entry 100, stop 105: high 105.5 touches it; 105 × 1.0005 = 105.0525 → tick up → 105.06.
    candles = [candle(0, "100", "105.5", "99", "104")]

    result = walk_candles(operation(side=Side.SELL, stop="105", target="90"), candles, SETTINGS)

    assert (result.exit.reason, result.exit.price) == (CloseReason.STOP, D("105.06"))


# --- targets ------------------------------------------------------------------------------


def test_a_touched_target_fills_at_the_target_without_slippage():
    candles = [candle(0, "100", "104", "99", "103"), candle(1, "103", "110.4", "102", "109")]

    result = walk_candles(operation(target="110"), candles, SETTINGS)

    assert (result.exit.reason, result.exit.price, result.exit.at) == (CloseReason.TARGET, D("110"), at(30))
    assert result.exit.fee == D("0.220")  # 110 × 2 × 0.001


def test_a_gap_beyond_the_target_fills_at_the_better_open():
    candles = [candle(0, "100", "109", "99", "109"), candle(1, "112", "113", "111", "112")]

    result = walk_candles(operation(target="110"), candles, SETTINGS)

    assert (result.exit.reason, result.exit.price, result.exit.gapped) == (CloseReason.TARGET, D("112"), True)


def test_a_short_target_fills_when_the_low_reaches_it():
    candles = [candle(0, "100", "101", "89.5", "91")]

    result = walk_candles(operation(side=Side.SELL, stop="105", target="90"), candles, SETTINGS)

    assert (result.exit.reason, result.exit.price) == (CloseReason.TARGET, D("90"))


# --- which candles count ------------------------------------------------------------------


def test_candles_opened_before_the_operation_are_ignored():
    # Opened at 00:05: candle 0 (00:00–00:15) dipped to 90 before the entry, so it does not count.
    op = operation(opened_at=at(5))
    candles = [candle(0, "96", "101", "90", "100"), candle(1, "100", "101", "99", "100")]

    result = walk_candles(op, candles, SETTINGS)

    assert result.exit is None
    assert result.last_checked_at == at(30)


def test_candles_already_checked_are_not_checked_again():
    op = operation(last_checked_at=at(15))
    candles = [candle(0, "100", "101", "90", "100")]  # closed at 00:15, seen by the last check

    result = walk_candles(op, candles, SETTINGS)

    assert (result.exit, result.last_checked_at) == (None, at(15))


def test_a_candle_still_open_is_left_for_the_next_check():
    candles = [candle(0, "100", "101", "99", "100"), candle(1, "100", "101", "90", "95")]  # 1 closes at 00:30

    result = walk_candles(operation(), candles, SETTINGS, now=at(20))

    assert (result.exit, result.last_checked_at) == (None, at(15))


def test_candles_are_walked_in_time_order_whatever_order_they_come_in():
    candles = [candle(1, "100", "111", "99", "110"), candle(0, "100", "101", "94", "96")]

    result = walk_candles(operation(target="110"), candles, SETTINGS)

    assert result.exit.reason is CloseReason.STOP


def test_only_active_operations_are_walked():
    closed = operation().close(exit_price=D("95"), exit_fee=D("0"), reason=CloseReason.STOP, at=T0)

    with pytest.raises(IllegalTransition):
        walk_candles(closed, [], SETTINGS)


# --- trailing -----------------------------------------------------------------------------


def test_trailing_moves_the_stop_candle_by_candle_and_exits_as_trailing():
    # span 5: candle 0 high 105 → break-even 100.21; candle 1 high 110.5 → 105; candle 2 low 104.9 hits 105.
    # 105 × 0.9995 = 104.9475 → tick down → 104.94.
    candles = [candle(0, "100", "105", "101", "104"), candle(1, "104", "110.5", "104", "110"),
               candle(2, "110", "110", "104.9", "105.5")]

    result = walk_candles(operation(), candles, TRAILING)

    assert result.moves == (
        StopMove(at(15), D("95"), D("100.21"), "trailing", candles[0].open_time, D("105")),
        StopMove(at(30), D("100.21"), D("105"), "trailing", candles[1].open_time, D("110.5")),
    )
    assert (result.exit.reason, result.exit.price, result.stop) == (CloseReason.TRAILING, D("104.94"), D("105"))


def test_a_move_made_by_a_candles_high_protects_only_from_the_next_candle():
    # Candle 0 reaches 105 and also dips to 99, below the new break-even 100.21: the order of high and
    # low is unknown, so candle 0 does not exit; candle 1's low 100 does: 100.21 × 0.9995 = 100.159895 → 100.15.
    candles = [candle(0, "100", "105", "99", "103"), candle(1, "103", "104", "100", "101")]

    result = walk_candles(operation(), candles, TRAILING)

    assert [move.new_stop for move in result.moves] == [D("100.21")]
    assert result.exit.candle_open_time == candles[1].open_time
    assert (result.exit.reason, result.exit.price) == (CloseReason.TRAILING, D("100.15"))


def test_a_short_trails_down_and_exits_as_trailing():
    # Short entry 100, stop 105: low 90 = 2 spans → stop 95; next high 95.2 hits it: 95 × 1.0005 = 95.0475 → 95.05.
    candles = [candle(0, "100", "100", "90", "91"), candle(1, "91", "95.2", "90.5", "94")]

    result = walk_candles(operation(side=Side.SELL, stop="105"), candles, TRAILING)

    assert [move.new_stop for move in result.moves] == [D("95")]
    assert (result.exit.reason, result.exit.price) == (CloseReason.TRAILING, D("95.05"))


def test_without_trailing_the_stop_stays_put():
    candles = [candle(0, "100", "120", "101", "119")]

    result = walk_candles(operation(), candles, SETTINGS)

    assert (result.moves, result.stop) == ((), D("95"))


def test_a_stop_moved_earlier_by_trailing_still_exits_as_trailing():
    op = dataclasses.replace(operation(last_checked_at=at(15)), stop=D("100.21"))

    result = walk_candles(op, [candle(1, "102", "103", "100", "101")], TRAILING)

    assert result.exit.reason is CloseReason.TRAILING


# --- time exit ----------------------------------------------------------------------------


def test_time_exit_counts_full_candles_from_the_first_after_entry():
    # Opened 00:05 → the first full 15m candle is 00:15–00:30; 4 candles end at 01:15.
    assert time_exit_deadline(at(5), "15m", TimeExitRule(candles=4)) == at(75)


def test_the_earlier_of_candles_and_max_age_wins():
    rule = TimeExitRule(candles=4, max_age=timedelta(minutes=50))

    assert time_exit_deadline(at(5), "15m", rule) == at(55)
    assert time_exit_deadline(at(5), "15m", None) is None


def test_time_exit_picks_the_candle_whose_close_reaches_the_deadline():
    candles = [candle(i, "100", "101", "99", "100") for i in range(6)]

    chosen = time_exit_candle(at(5), candles, "15m", TimeExitRule(max_age=timedelta(minutes=50)))

    assert chosen == candles[3]  # 00:45–01:00 is the first to close at or after 00:55


def test_time_exit_closes_at_the_close_of_the_last_allowed_candle():
    # 2 candles from 00:00: exit at the close of candle 1 (00:30), 101 × 0.9995 = 100.9495 → 100.94.
    settings = dataclasses.replace(SETTINGS, time_exit=TimeExitRule(candles=2))
    candles = [candle(0, "100", "101", "99", "100"), candle(1, "100", "102", "99", "101"),
               candle(2, "101", "130", "80", "120")]

    result = walk_candles(operation(target="110"), candles, settings)

    assert result.exit.reason is CloseReason.TIME_EXIT
    assert (result.exit.trigger_price, result.exit.price) == (D("101"), D("100.94"))
    assert (result.exit.at, result.last_checked_at) == (at(30), at(30))


def test_a_stop_in_the_time_exit_candle_wins():
    settings = dataclasses.replace(SETTINGS, time_exit=TimeExitRule(candles=1))

    result = walk_candles(operation(), [candle(0, "100", "101", "94", "99")], settings)

    assert result.exit.reason is CloseReason.STOP


def test_parse_duration_reads_minutes_hours_days_and_weeks():
    assert [parse_duration(t) for t in ("90m", "12h", "3d", "2w")] == [
        timedelta(minutes=90), timedelta(hours=12), timedelta(days=3), timedelta(weeks=2)]
    with pytest.raises(InvalidInput, match="max_age must be a positive duration"):
        parse_duration("3 days")


@pytest.mark.parametrize("text", ["\u0663d", "\uff13d", "\u09e9h", "3\u0660m"])  # Arabic-Indic, fullwidth, Bengali digits
def test_parse_duration_refuses_digits_other_than_0_to_9(text):
    with pytest.raises(InvalidInput, match="max_age must be a positive duration"):
        parse_duration(text)


# --- applying the result ------------------------------------------------------------------


def test_applying_an_exit_closes_the_operation_with_realized_pnl_after_both_fees():
    # (94.95 − 100) × 2 − 0.2 − 0.1899 = −10.4899
    candles = [candle(0, "100", "101", "94.5", "99")]
    op = operation()

    closed = apply_walk(op, walk_candles(op, candles, SETTINGS))

    assert (closed.status, closed.close_reason, closed.closed_at) == (OperationStatus.CLOSED, CloseReason.STOP, at(15))
    assert closed.realized_pnl == D("-10.4899")
    assert closed.last_checked_at == at(15)


def test_applying_a_quiet_walk_keeps_the_operation_active_with_its_new_stop():
    op = operation()

    updated = apply_walk(op, walk_candles(op, [candle(0, "100", "110", "101", "109")], TRAILING))

    assert (updated.status, updated.stop, updated.last_checked_at) == (OperationStatus.ACTIVE, D("105"), at(15))
