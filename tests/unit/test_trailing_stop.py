"""Trailing "hand span" stop (SPEC §2) and the rules for moving a stop or target by hand."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from robson.domain.market import Side
from robson.domain.monitoring import break_even_price, modify_stop, modify_target, spans_reached, trailing_stop
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.errors import IllegalTransition, InvalidInput, Refused

T0 = datetime(2021, 7, 1, tzinfo=UTC)
FEE = D("0.001")
TICK = D("0.01")


def operation(side=Side.BUY, entry="100", stop="95", qty="2", fee="0.2", target=None) -> Operation:
    return Operation(id="op-1", intent_id="pl-1", symbol="XUSDT", side=side, status=OperationStatus.ACTIVE,
                     mode="paper", strategy="all-in", quantity=D(qty), entry_price=D(entry), entry_fee=D(fee),
                     initial_stop=D(stop), stop=D(stop), target=D(target) if target else None,
                     opened_at=T0, updated_at=T0)


def spec_operation() -> Operation:
    # SPEC worked example: entry 95,432, stop 93,500 (span 1,932), 0.00051 BTC, entry fee 0.1 %.
    entry_fee = D("95432") * D("0.00051") * FEE  # 0.04867032
    return operation(entry="95432", stop="93500", qty="0.00051", fee=str(entry_fee))


# --- break-even plus fees -----------------------------------------------------------------


def test_break_even_nets_zero_after_entry_fee_and_exit_fee():
    # (P − 100)·2 − 0.2 − P·2·0.001 = 0  →  P = 200.2 / 1.998 = 100.2002002…  → tick up → 100.21
    price = break_even_price(Side.BUY, D("100"), D("2"), D("0.2"), FEE, TICK)

    assert price == D("100.21")
    # 100.21 nets +0.01958 (0.42 − 0.2 − 0.20042); one tick lower, 100.20, would lose 0.0004.
    assert (price - 100) * 2 - D("0.2") - price * 2 * FEE == D("0.01958")
    assert (D("100.20") - 100) * 2 - D("0.2") - D("100.20") * 2 * FEE < 0


def test_break_even_of_a_short_rounds_down_toward_profit():
    # (100 − P)·2 − 0.2 − P·2·0.001 = 0  →  P = 199.8 / 2.002 = 99.8001998…  → 99.80 (nets +0.0004)
    assert break_even_price(Side.SELL, D("100"), D("2"), D("0.2"), FEE, TICK) == D("99.80")


def test_break_even_refuses_a_zero_quantity():
    with pytest.raises(InvalidInput, match="quantity"):
        break_even_price(Side.BUY, D("100"), D("0"), D("0"), FEE)


# --- each trailing step -------------------------------------------------------------------


def test_no_move_before_one_full_span():
    assert trailing_stop(operation(), D("104.99"), fee_rate=FEE, tick_size=TICK) is None


def test_one_span_moves_the_stop_to_break_even_plus_fees():
    # span = 100 − 95 = 5; a high of 105 is one span.
    assert trailing_stop(operation(), D("105"), fee_rate=FEE, tick_size=TICK) == D("100.21")


def test_one_span_on_the_spec_example_moves_the_stop_to_95623_06():
    # Entry fee 95,432 × 0.00051 × 0.001 = 0.04867032.
    # P = (95,432 × 0.00051 + 0.04867032) / (0.00051 × 0.999)
    #   = 48.71899032 / 0.00050949 = 95,623.0550… → tick up → 95,623.06
    # At 95,623.06 the close nets +0.0000025194; at 95,623.05 it would net −0.0000025755.
    new_stop = trailing_stop(spec_operation(), D("97364"), fee_rate=FEE, tick_size=TICK)  # 95,432 + 1,932

    assert new_stop == D("95623.06")


def test_two_spans_move_the_stop_to_entry_plus_one_span():
    # SPEC example: 2 spans = 95,432 + 2 × 1,932 = 99,296 → stop 95,432 + 1,932 = 97,364.
    assert trailing_stop(spec_operation(), D("99296"), fee_rate=FEE, tick_size=TICK) == D("97364")


def test_three_spans_move_the_stop_to_entry_plus_two_spans():
    # 3 spans = 101,228 (101,300 is still 3 spans) → stop 95,432 + 2 × 1,932 = 99,296.
    assert trailing_stop(spec_operation(), D("101300"), fee_rate=FEE, tick_size=TICK) == D("99296")


def test_span_levels_round_away_from_the_price():
    # entry 100.004 (an averaged fill), stop 95 → span 5.004; 2 spans (≥ 110.012) → 105.008 → 105.00
    op = operation(entry="100.004", stop="95")

    assert trailing_stop(op, D("110.02"), fee_rate=FEE, tick_size=TICK) == D("105.00")


def test_spans_count_only_whole_spans_of_favourable_move():
    assert spans_reached(Side.BUY, D("100"), D("95"), D("114.99")) == 2
    assert spans_reached(Side.BUY, D("100"), D("95"), D("90")) == 0
    assert spans_reached(Side.BUY, D("100"), D("100"), D("200")) == 0  # no span, no trailing


# --- never backwards ----------------------------------------------------------------------


def test_stop_never_moves_backwards():
    # The stop is already at 105 (two spans); a later high of 106 is one span → break-even 100.21 < 105.
    op = dataclasses.replace(operation(), stop=D("105"))

    assert trailing_stop(op, D("106"), fee_rate=FEE, tick_size=TICK) is None


def test_same_level_again_is_no_move():
    op = dataclasses.replace(operation(), stop=D("105"))

    assert trailing_stop(op, D("110"), fee_rate=FEE, tick_size=TICK) is None


def test_break_even_is_skipped_when_the_span_is_smaller_than_the_fees():
    # entry 100, stop 99.9 (span 0.1): break-even 100.21 lies above the 1-span high 100.1 and would trigger at once.
    op = operation(stop="99.9")

    assert trailing_stop(op, D("100.1"), fee_rate=FEE, tick_size=TICK) is None
    # Two spans (100.2) move it to entry + 1 span = 100.1, the literal SPEC level.
    assert trailing_stop(op, D("100.2"), fee_rate=FEE, tick_size=TICK) == D("100.1")


# --- shorts -------------------------------------------------------------------------------


def test_short_trails_down_span_by_span():
    # short entry 100, stop 105: span 5; lows of 95, 90, 85 are 1, 2, 3 spans.
    op = operation(side=Side.SELL, stop="105")

    assert trailing_stop(op, D("95"), fee_rate=FEE, tick_size=TICK) == D("99.80")
    assert trailing_stop(op, D("90"), fee_rate=FEE, tick_size=TICK) == D("95")
    assert trailing_stop(op, D("85"), fee_rate=FEE, tick_size=TICK) == D("90")


def test_short_stop_never_moves_backwards():
    op = dataclasses.replace(operation(side=Side.SELL, stop="105"), stop=D("95"))

    assert trailing_stop(op, D("94"), fee_rate=FEE, tick_size=TICK) is None


# --- operation modify --stop / --target ---------------------------------------------------


def test_modify_tightens_a_stop_toward_profit():
    assert modify_stop(operation(), D("98"), price=D("103"), tick_size=TICK) == D("98")


def test_modify_refuses_to_loosen_a_stop_without_allow_loosen():
    with pytest.raises(Refused, match="loosens it: risk grows by 2.00 USDT"):
        modify_stop(operation(), D("94"), price=D("103"))


def test_modify_loosens_a_stop_when_allowed():
    assert modify_stop(operation(), D("94"), price=D("103"), allow_loosen=True) == D("94")


def test_modify_refuses_a_stop_at_or_beyond_the_price():
    with pytest.raises(InvalidInput, match="at or above the current price 103: it would trigger at once"):
        modify_stop(operation(), D("103"), price=D("103"))


def test_modify_refuses_a_short_stop_below_the_price():
    op = operation(side=Side.SELL, stop="105")

    with pytest.raises(InvalidInput, match="at or below the current price"):
        modify_stop(op, D("96"), price=D("97"))


def test_modify_tightens_a_short_stop_downward_and_refuses_raising_it():
    op = operation(side=Side.SELL, stop="105")

    assert modify_stop(op, D("101"), price=D("97")) == D("101")
    with pytest.raises(Refused):
        modify_stop(op, D("106"), price=D("97"))


def test_modify_refuses_a_stop_off_the_tick_and_names_the_neighbours():
    with pytest.raises(InvalidInput, match="not on the price tick 0.01") as caught:
        modify_stop(operation(), D("98.005"), price=D("103"), tick_size=TICK)

    assert caught.value.hint == "use 98 or 98.01"


def test_modify_refuses_a_closed_operation():
    closed = operation().close(exit_price=D("95"), exit_fee=D("0"), reason=CloseReason.STOP, at=T0)

    with pytest.raises(IllegalTransition):
        modify_stop(closed, D("98"), price=D("103"))


def test_modify_moves_a_target_beyond_the_price_and_refuses_one_behind_it():
    assert modify_target(operation(target="110"), D("115"), price=D("103")) == D("115")
    with pytest.raises(InvalidInput, match="would fill at once"):
        modify_target(operation(target="110"), D("102"), price=D("103"))
