"""The trade lifecycle rules plan, execute, the paper book, the monitors and the backtest share."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.domain.lifecycle import (
    anchor_to_fill,
    candles_needed,
    execution_risk,
    market_fill,
    open_operation,
    plan_trade,
    stop_limit_price,
    target_for,
    walk_settings,
)
from robson.domain.market import Side, SymbolInfo
from robson.domain.monitoring import TimeExitRule
from robson.domain.operation import OperationStatus
from robson.domain.stops import StopSettings
from robson.domain.strategy import Strategy, TargetRule
from robson.errors import InvalidInput

BTC = SymbolInfo("BTCUSDT", "BTC", "USDT", tick_size=D("0.01"), step_size=D("0.00001"), min_qty=D("0.00001"),
                 min_notional=D("10"))
FEE = D("0.001")
T0 = datetime(2021, 6, 1, 12, tzinfo=UTC)


def strategy(stop: StopSettings, target: TargetRule, **changes) -> Strategy:
    base = dict(name="s", title="S", description="", entry="manual", timeframe="15m", risk_percent=D("1"),
                max_risk_percent=D("1"), stop=stop, target=target)
    return Strategy(**(base | changes))


PERCENT = StopSettings(kind="fixed_percent", percent=D("2"))


# --- targets ------------------------------------------------------------------------------------


def test_an_r_target_sits_r_stop_distances_beyond_entry_rounded_toward_entry():
    assert target_for(TargetRule(r_multiple=D("2")), Side.BUY, D("95432"), D("93500"), BTC, FEE) == D("99296.00")
    assert target_for(TargetRule(r_multiple=D("1.5")), Side.SELL, D("100"), D("100.07"), BTC, FEE) == D("99.90")


def test_a_percent_target_sits_that_percent_beyond_entry_rounded_toward_entry():
    # 18683.55 × 1.04 = 19430.892 → 19430.89 (a buy's target rounds down, toward entry)
    assert target_for(TargetRule(percent=D("4")), Side.BUY, D("18683.55"), D("18000"), BTC, FEE) == D("19430.89")


def test_a_percent_target_after_fees_nets_that_percent_once_both_fees_are_paid():
    # freqtrade's ROI: 18683.55 × 1.04 × 1.001 / 0.999 = 19469.7927… → rounded up to 19469.80, never below 4 %
    # (freqtrade rounds to the nearest tick, 19469.79, which nets a hair under 4 %).
    target = target_for(TargetRule(percent=D("4"), after_fees=True), Side.BUY, D("18683.55"), D("18000"), BTC, FEE)

    assert target == D("19469.80")
    quantity = D("0.00535")
    cost = D("18683.55") * quantity * (1 + FEE)
    proceeds = target * quantity * (1 - FEE)
    assert proceeds / cost - 1 >= D("0.04")
    assert (target - D("0.01")) * quantity * (1 - FEE) / cost - 1 < D("0.04")


def test_a_percent_target_after_fees_with_no_fee_is_the_plain_percent_rounded_up():
    assert target_for(TargetRule(percent=D("4"), after_fees=True), Side.BUY, D("18683.55"), D("1"), BTC, D(0)) == \
        D("19430.90")


def test_no_target_rule_means_no_target():
    assert target_for(TargetRule(), Side.BUY, D("100"), D("99"), BTC, FEE) is None


# --- fills and anchors ----------------------------------------------------------------------------


def test_a_market_fill_moves_against_the_trader_by_the_slippage_on_the_tick_and_charges_the_taker_fee():
    buy = market_fill(Side.BUY, D("36596.63"), D("0.01366"), BTC, fee_rate=FEE, slippage_rate=D("0.0005"))
    sell = market_fill(Side.SELL, D("36000"), D("0.01366"), BTC, fee_rate=FEE, slippage_rate=D("0.0005"))

    assert (buy.price, buy.fee) == (D("36614.93"), D("36614.93") * D("0.01366") * FEE)  # 36614.928… → up
    assert sell.price == D("35982.00")  # 35982 exactly: never rounded in the trader's favour
    assert buy.cost(Side.BUY, D("0.01366")) == buy.price * D("0.01366") + buy.fee
    assert sell.cost(Side.SELL, D("0.01366")) == sell.price * D("0.01366") - sell.fee


def test_a_percent_stop_and_its_percent_target_follow_the_entry_fill():
    planned = plan_trade(Side.BUY, BTC, strategy(PERCENT, TargetRule(percent=D("4"), after_fees=True)),
                         entry=D("19600"), entry_source="market", candles=[], capital=D("1000"), fee_rate=D(0),
                         max_position_percent=D("50"), available_balance=D("1000"), quantity=D("0.0051"))

    assert planned.anchor == {"stop_percent": "2", "target_percent": "4", "target_after_fees": "true"}
    assert (planned.stop, planned.target) == (D("19208.00"), D("20384.00"))
    # The fill 19605.59: 2 % below is 19213.4782 → 19213.47 (away from the fill); 4 % above → 20389.8136 → up.
    assert anchor_to_fill(Side.BUY, D("19605.59"), planned.anchor, planned.stop, planned.target, BTC, D(0)) == (
        D("19213.47"), D("20389.82"))


def test_an_r_target_on_a_percent_stop_follows_the_fill_too():
    planned = plan_trade(Side.BUY, BTC, strategy(PERCENT, TargetRule(r_multiple=D("2"))), entry=D("100"),
                         entry_source="market", candles=[], capital=D("1000"), fee_rate=FEE,
                         max_position_percent=D("50"), available_balance=None, quantity=D("1"))

    assert planned.anchor == {"stop_percent": "2", "target_r": "2"}
    assert anchor_to_fill(Side.BUY, D("110"), planned.anchor, planned.stop, planned.target, BTC, FEE) == (
        D("107.80"), D("114.40"))


def test_levels_read_off_the_chart_or_given_by_hand_stay_where_the_plan_put_them():
    ma_stop = StopSettings(kind="moving_average", ma_period=3)
    planned = plan_trade(Side.BUY, BTC, strategy(PERCENT, TargetRule(r_multiple=D("2"))), entry=D("100"),
                         entry_source="given", candles=[], capital=D("1000"), fee_rate=FEE,
                         max_position_percent=D("50"), available_balance=None, stop=D("98"), target=D("104"))
    charted = plan_trade(Side.BUY, BTC, strategy(ma_stop, TargetRule(r_multiple=D("2"))), entry=D("100"),
                         entry_source="given", candles=[], capital=D("1000"), fee_rate=FEE,
                         max_position_percent=D("50"), available_balance=None)

    assert planned.anchor == {} and charted.anchor == {}
    assert anchor_to_fill(Side.BUY, D("101"), {}, D("98"), D("104"), BTC, FEE) == (D("98"), D("104"))


def test_the_execution_risk_of_a_percent_stop_is_measured_from_the_price_now():
    stop, risk = execution_risk(Side.BUY, D("2"), D("110"), D("98"), {"stop_percent": "2"}, BTC, FEE)
    fixed_stop, fixed_risk = execution_risk(Side.BUY, D("2"), D("110"), D("98"), {}, BTC, FEE)

    assert (stop, risk) == (D("107.80"), D("4.40"))
    assert (fixed_stop, fixed_risk) == (D("98"), D("24"))


# --- the rest -----------------------------------------------------------------------------------


def test_a_percent_stop_needs_no_candles_and_the_others_their_lookback_with_warm_up():
    assert candles_needed(strategy(PERCENT, TargetRule())) == 0
    assert candles_needed(strategy(StopSettings(), TargetRule())) == 101
    assert candles_needed(strategy(StopSettings(kind="moving_average", ma_period=9), TargetRule())) == 101


def test_the_protective_limit_sits_offset_beyond_the_stop_away_from_the_position():
    assert stop_limit_price(Side.BUY, D("36000"), BTC.round_price) == D("35820.00")
    assert stop_limit_price(Side.SELL, D("100"), BTC.round_price, D("1")) == D("101.00")


def test_an_opened_operation_is_active_and_checked_from_its_opening():
    op = open_operation(operation_id="op-1", intent_id="pl-1", symbol="BTCUSDT", side=Side.BUY, mode="paper",
                        strategy="s", quantity=D("1"), entry_price=D("100"), entry_fee=D("0.1"), stop=D("98"),
                        target=None, at=T0, quote_asset="USDT")

    assert (op.status, op.initial_stop, op.stop, op.last_checked_at) == (OperationStatus.ACTIVE, D("98"), D("98"), T0)


def test_walk_settings_turn_a_time_exit_in_candles_into_an_age_for_finer_candles():
    op = open_operation(operation_id="op-1", intent_id="pl-1", symbol="BTCUSDT", side=Side.BUY, mode="paper",
                        strategy="s", quantity=D("1"), entry_price=D("100"), entry_fee=D("0"), stop=D("98"),
                        target=None, at=T0 + timedelta(minutes=5), quote_asset="USDT")
    timed = strategy(PERCENT, TargetRule(), time_exit=TimeExitRule(candles=2), trailing="hand_span")

    settings = walk_settings(op, timed, "5m", fee_rate=FEE, slippage_rate=D("0.0005"), tick_size=D("0.01"))

    # Opened 12:05 on a 15m strategy: the first full 15m candle opens 12:15, the second closes 12:45.
    assert settings.time_exit == TimeExitRule(max_age=timedelta(minutes=40))
    assert (settings.timeframe, settings.trailing) == ("5m", True)


def test_an_after_fee_target_with_an_impossible_fee_is_refused():
    with pytest.raises(InvalidInput, match="fee rate"):
        target_for(TargetRule(percent=D("4"), after_fees=True), Side.BUY, D("100"), D("99"), BTC, D("1"))
