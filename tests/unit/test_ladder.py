"""Scale-out ladders: the YAML, the sizes of the parts, merges, blended R:R, risk left, and the candle walk.

Every number is worked by hand in the comments. The symbol X/USDT has a 0.01 tick, a 0.001 step
and minimum, and a 10 USDT minimum order value; the taker fee is 0.1 %.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
from robson.domain.ladder import (
    LadderStep,
    StopRule,
    ladder_doc,
    ladder_from_doc,
    parse_ladder,
    resolve_ladder,
    stop_after_part,
    stop_after_target,
    stop_level,
    walk_ladder,
)
from robson.domain.lifecycle import ladder_at_fill, plan_trade
from robson.domain.market import Candle, Side, SymbolInfo, datetime_to_ms
from robson.domain.monitoring import MonitorSettings, StopMove, TimeExitRule, walk_candles
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.stops import StopSettings
from robson.domain.strategy import Strategy, parse_strategy
from robson.domain.targets import TargetRule
from robson.errors import IllegalTransition, InvalidInput, StrategyError

X = SymbolInfo(symbol="XUSDT", base_asset="X", quote_asset="USDT", tick_size=D("0.01"), step_size=D("0.001"),
               min_qty=D("0.001"), min_notional=D("10"))
FEE = D("0.001")
THREE = [{"at": "1R", "close": "50%", "then_stop": "breakeven_plus_fees"},
         {"at": "2R", "close": "25%", "then_stop": "previous_target"},
         {"at": "3R", "close": "rest"}]


def ladder(rungs=THREE, side=Side.BUY, entry="100", stop="95", quantity="1", info=X):
    return resolve_ladder(parse_ladder(rungs), side, entry=D(entry), stop=D(stop), quantity=D(quantity), info=info,
                          fee_rate=FEE)


def minimal(**changes):
    data = {"name": "test", "timeframe": "15m", "risk_percent": 1, "stop": {"method": "technical"}}
    data.update(changes)
    return data


# --- the strategy's words -------------------------------------------------------------------------


def test_a_three_target_ladder_reads_its_rungs_in_order():
    s = parse_strategy(minimal(targets=THREE), "my.yaml")

    assert s.targets == (
        LadderStep(TargetRule(r_multiple=D("1")), D("50"), StopRule.BREAKEVEN_PLUS_FEES),
        LadderStep(TargetRule(r_multiple=D("2")), D("25"), StopRule.PREVIOUS_TARGET),
        LadderStep(TargetRule(r_multiple=D("3")), None, StopRule.KEEP),
    )
    assert s.target == TargetRule()  # no single target: the ladder is the strategy's exit


def test_percent_targets_and_shares_adding_up_to_100_need_no_rest():
    steps = parse_ladder([{"at": "1.5%", "close": "60%", "then_stop": "breakeven"}, {"at": "3 %", "close": "40%"}])

    assert [(s.at.percent, s.close_percent, s.then_stop) for s in steps] == [
        (D("1.5"), D("60"), StopRule.BREAKEVEN), (D("3"), D("40"), StopRule.KEEP)]


def test_a_ladder_reads_back_from_its_own_words():
    steps = parse_ladder(THREE)

    assert parse_ladder([s.as_data() for s in steps]) == steps


def test_a_single_target_strategy_is_unchanged_and_the_bundled_ones_have_no_ladder():
    s = parse_strategy(minimal(target={"r_multiple": 2}), "my.yaml")

    assert (s.target, s.targets) == (TargetRule(r_multiple=D("2")), ())
    assert all(s.targets == () for s in StrategyCatalog([bundled_strategies_dir()]).all())


@pytest.mark.parametrize(("targets", "field", "problem"), [
    ([{"at": "1R", "close": "50%"}, {"at": "2R", "close": "25%"}], "targets",
     "the parts add up to 75% (50% + 25%), not 100%"),
    ([{"at": "1R", "close": "60%"}, {"at": "2R", "close": "40%"}, {"at": "3R", "close": "rest"}], "targets",
     "the parts before rest add up to 100% (60% + 40%): nothing is left for rest"),
    ([{"at": "1R", "close": "rest"}, {"at": "2R", "close": "50%"}], "targets[0].close", "last target only"),
    ([{"at": "2R", "close": "50%"}, {"at": "1R", "close": "rest"}], "targets[1].at",
     "1R is not beyond the previous target 2R"),
    ([{"at": "1R", "close": "50%"}, {"at": "1R", "close": "rest"}], "targets[1].at", "not beyond the previous"),
    ([{"at": "-1R", "close": "rest"}], "targets[0].at", "must be beyond the entry"),
    ([{"at": "0R", "close": "rest"}], "targets[0].at", "must be beyond the entry"),
    ([{"at": "0%", "close": "rest"}], "targets[0].at", "must be beyond the entry"),
    ([{"at": "2", "close": "rest"}], "targets[0].at", "an R multiple like 1R or a percent of the entry like 2%"),
    ([{"at": "101R", "close": "rest"}], "targets[0].at", "at most 100R"),
    ([{"at": "1R", "close": "0%"}, {"at": "2R", "close": "rest"}], "targets[0].close", "above 0% and at most 100%"),
    ([{"at": "1R", "close": "150%"}, {"at": "2R", "close": "rest"}], "targets[0].close", "above 0% and at most 100%"),
    ([{"at": "1R", "close": 0.5}, {"at": "2R", "close": "rest"}], "targets[0].close", "like 50%, or rest"),
    ([{"at": "1R", "close": "50%", "then_stop": "trail"}, {"at": "2R", "close": "rest"}], "targets[0].then_stop",
     "must be one of keep, breakeven, breakeven_plus_fees, previous_target, got 'trail'"),
    ([{"at": "1R", "close": "50%"}, {"at": "2R", "close": "rest", "then_stop": "breakeven"}], "targets[1].then_stop",
     "no stop is left to move"),
    ([{"at": "1R", "close": "50%", "then_stop": "previous_target"}, {"at": "2R", "close": "rest"}],
     "targets[0].then_stop", "the first target has no previous target"),
    ([{"at": "1R", "close": "50%"}, {"at": "3%", "close": "rest"}], "targets[1].at", "mixes R and percent targets"),
    ([{"at": "1R", "close": "rest", "size": 2}], "targets[0].size", "unknown field"),
    ([{"at": "1R"}], "targets[0].close", "is required"),
    ([], "targets", "must be a list of targets"),
    ("1R", "targets", "must be a list of targets"),
    (["1R"], "targets[0]", "must be a mapping"),
    ([{"at": f"{n}R", "close": "10%"} for n in range(1, 7)], "targets", "has 6 targets; at most 5"),
])
def test_a_bad_ladder_is_refused_naming_the_file_and_the_field(targets, field, problem):
    with pytest.raises(StrategyError) as caught:
        parse_strategy(minimal(targets=targets), "my.yaml")

    message = str(caught.value)
    assert message.startswith(f"my.yaml: field '{field}': ")
    assert problem in message


def test_target_and_targets_together_are_refused():
    with pytest.raises(StrategyError, match="my.yaml: field 'targets': give target .* or targets .*, not both"):
        parse_strategy(minimal(target={"r_multiple": 2}, targets=THREE), "my.yaml")


def test_a_bad_ladder_in_a_user_file_names_that_file(tmp_path):
    (tmp_path / "ladder.yaml").write_text("name: ladder\ntargets:\n  - {at: 2R, close: 50%}\n  - {at: 1R, close: rest}\n")

    with pytest.raises(StrategyError) as caught:
        StrategyCatalog([tmp_path]).get("ladder")

    assert str(caught.value) == (f"{tmp_path / 'ladder.yaml'}: field 'targets[1].at': 1R is not beyond the previous "
                                 "target 2R: targets go from the nearest to the farthest")


# --- sizes, merges, blended R:R, risk left ----------------------------------------------------


def test_each_target_is_priced_on_the_tick_and_each_part_sized_by_its_share():
    # Entry 100, stop 95: one R is 5, so 105 / 110 / 115; 50 % / 25 % / the rest of 1.
    result = ladder()

    assert [(p.target, p.quantity, p.r_multiple) for p in result.parts] == [
        (D("105.00"), D("0.500"), D("1")), (D("110.00"), D("0.250"), D("2")), (D("115.00"), D("0.250"), D("3"))]
    assert result.blended_r == D("1.75")  # 0.5 × 1 + 0.25 × 2 + 0.25 × 3
    assert result.notes == ()


def test_parts_round_down_to_the_step_and_the_last_takes_the_remainder():
    # 0.7 × 33.33 % = 0.23331 → 0.233 twice; the rest is 0.7 − 0.466 = 0.234.
    result = ladder([{"at": "1R", "close": "33.33%"}, {"at": "2R", "close": "33.33%"}, {"at": "3R", "close": "rest"}],
                    quantity="0.7")

    assert [p.quantity for p in result.parts] == [D("0.233"), D("0.233"), D("0.234")]
    assert sum(p.quantity for p in result.parts) == D("0.7")


def test_r_targets_round_toward_the_entry():
    # Stop 97.03: one R is 2.97, 1.5R = 104.455 → 104.45 for a long (never further than asked).
    result = ladder([{"at": "1R", "close": "50%"}, {"at": "1.5R", "close": "rest"}], stop="97.03")

    assert [p.target for p in result.parts] == [D("102.97"), D("104.45")]


def test_percent_targets_sit_a_percent_of_the_entry_beyond_it():
    # 2 % and 4 % above 100 with a 5-point stop: 0.4R and 0.8R, blended 0.5 × 0.4 + 0.5 × 0.8 = 0.6.
    result = ladder([{"at": "2%", "close": "50%"}, {"at": "4%", "close": "rest"}])

    assert [(p.target, p.r_multiple) for p in result.parts] == [(D("102.00"), D("0.4")), (D("104.00"), D("0.8"))]
    assert result.blended_r == D("0.6")


def test_the_stop_after_each_target_and_the_risk_and_pnl_left():
    result = ladder()
    first, second, last = result.parts

    # Break-even plus fees: 100 × 1.001 / 0.999 = 100.2002… → 100.21 (on the tick, toward profit).
    assert (first.stop_after, first.risk_left) == (D("100.21"), D("0"))
    # Entry fee 0.1; part 1: 0.5 × 5 − 0.0525 fee; the rest 0.5 at 100.21: + 0.105 − 0.050105 fee.
    assert first.pnl_if_stopped == D("-0.1") + D("2.5") - D("0.0525") + D("0.105") - D("0.050105")
    # Previous target: 105; part 2: 0.25 × 10 − 0.0275; the rest 0.25 at 105: + 1.25 − 0.02625.
    assert (second.stop_after, second.risk_left) == (D("105.00"), D("0"))
    assert second.pnl_if_stopped == D("6.04375")
    # The last part leaves nothing: every target filled, 0.25 × 15 − 0.02875 more.
    assert (last.stop_after, last.risk_left, last.pnl_if_stopped) == (None, D("0"), D("8.54125"))


def test_a_kept_stop_leaves_the_rest_at_risk():
    # After 1R the stop stays at 95: the rest 0.5 risks 0.5 × 5 = 2.5; stopped there the trade nets
    # −0.1 + 2.5 − 0.0525 − 2.5 − 0.0475 = −0.2.
    first = ladder([{"at": "1R", "close": "50%"}, {"at": "2R", "close": "rest"}]).parts[0]

    assert (first.stop_after, first.risk_left, first.pnl_if_stopped) == (D("95"), D("2.5"), D("-0.2"))


def test_plain_break_even_is_the_entry_and_loses_only_the_fees():
    # −0.1 + 2.5 − 0.0525 + 0 − 100 × 0.5 × 0.001 = 2.2975.
    first = ladder([{"at": "1R", "close": "50%", "then_stop": "breakeven"}, {"at": "2R", "close": "rest"}]).parts[0]

    assert (first.stop_after, first.risk_left, first.pnl_if_stopped) == (D("100"), D("0"), D("2.2975"))


def test_a_short_ladder_is_the_mirror():
    # Entry 100, stop 105: 95 / 90 / 85. Break-even plus fees (100 − 0.1) / 1.001 = 99.8002 → 99.80.
    result = ladder(side=Side.SELL, stop="105")
    first = result.parts[0]

    assert [p.target for p in result.parts] == [D("95.00"), D("90.00"), D("85.00")]
    assert result.blended_r == D("1.75")
    # −0.1 + 0.5 × 5 − 0.0475 + 0.5 × 0.2 − 0.0499 = 2.4026.
    assert (first.stop_after, first.risk_left, first.pnl_if_stopped) == (D("99.80"), D("0"), D("2.4026"))


def test_a_part_worth_less_than_the_minimum_at_the_stop_merges_into_the_next():
    # 0.3 × 10 % = 0.03, worth 2.85 USDT at the stop 95 (< 10): it joins part 2 (0.12 + 0.03 = 0.15).
    result = ladder([{"at": "1R", "close": "10%", "then_stop": "breakeven"}, {"at": "2R", "close": "40%"},
                     {"at": "3R", "close": "rest"}], quantity="0.3")
    first, second, last = result.parts

    assert [p.quantity for p in result.parts] == [D("0"), D("0.150"), D("0.150")]
    assert (first.merged_into, first.stop_after, first.risk_left) == (2, None, None)
    assert result.notes == ("target 1 (1R, 10%): at the stop 95, 0.03 X is worth 2.85 USDT, below the minimum order "
                            "value of 10 USDT; merged into target 2, which closes 0.15 X",)
    # The merged target moves no stop: after target 2 it is still 95 (its own rule: keep).
    assert (second.stop_after, second.risk_left) == (D("95"), D("0.150") * 5)
    assert result.blended_r == D("2.5")  # 0.5 × 2 + 0.5 × 3


def test_a_part_that_rounds_to_nothing_merges_and_merges_chain_to_the_part_that_takes_them():
    # 0.005 × 10 % = 0.0005 → 0 on the step; 0.005 × 30 % = 0.0015 → 0.001, + 0 = 0.001, worth 0.095 at
    # the stop: it joins the rest too, which closes all 0.005 (worth 0.475: the whole position, so it stays).
    result = ladder([{"at": "1R", "close": "10%"}, {"at": "2R", "close": "30%"}, {"at": "3R", "close": "rest"}],
                    quantity="0.005")

    assert [p.quantity for p in result.parts] == [D("0"), D("0"), D("0.005")]
    assert [p.merged_into for p in result.parts] == [3, 3, None]
    assert result.notes[0] == ("target 1 (1R, 10%): 0 X is below the LOT_SIZE minimum of 0.001; merged into "
                               "target 3, which closes 0.005 X")
    assert result.final.number == 3 and result.blended_r == D("3")


def test_a_last_part_below_the_minimum_merges_into_the_part_before_it():
    # 0.3: 0.15 / 0.135 / rest 0.015 (worth 1.425 at the stop): target 2 closes 0.15 and ends the trade.
    result = ladder([{"at": "1R", "close": "50%"}, {"at": "2R", "close": "45%", "then_stop": "previous_target"},
                     {"at": "3R", "close": "rest"}], quantity="0.3")
    first, second, last = result.parts

    assert [p.quantity for p in result.parts] == [D("0.150"), D("0.150"), D("0")]
    assert (last.merged_into, result.final.number) == (2, 2)
    assert "target 3 (3R, rest): at the stop 95, 0.015 X is worth 1.42 USDT" in result.notes[0]
    assert "merged into target 2, which closes 0.15 X" in result.notes[0]
    assert (second.stop_after, second.risk_left) == (None, D("0"))  # nothing left after it
    assert result.blended_r == D("1.5")  # 0.5 × 1 + 0.5 × 2


def test_a_short_part_is_checked_at_its_target_the_lower_of_its_two_prices():
    # A short's target sits below its stop: 0.105 at 95 = 9.975 < 10, at the stop 105 it would be 11.025.
    result = ladder([{"at": "1R", "close": "50%"}, {"at": "2R", "close": "rest"}], side=Side.SELL, stop="105",
                    quantity="0.21")

    assert result.notes[0].startswith("target 1 (1R, 50%): at its target 95, 0.105 X is worth 9.98 USDT")


def test_a_break_even_stop_beyond_its_own_target_is_refused():
    # 0.1 % above 100 is 100.10, below the break-even plus fees of 100.21: that stop would fire at once.
    with pytest.raises(InvalidInput, match=r"target 1 \(0.1%\) at 100.1 is not beyond its stop afterwards, "
                                           r"break-even \+ fees at 100.21"):
        ladder([{"at": "0.1%", "close": "50%", "then_stop": "breakeven_plus_fees"}, {"at": "1%", "close": "rest"}])


def test_targets_that_round_onto_each_other_are_refused():
    # 1R = 105 and 1.001R = 105.005 → 105.00: the same price.
    with pytest.raises(InvalidInput, match="target 2 \\(1.001R\\) lands at 105, not beyond the target 1 at 105 for a buy"):
        ladder([{"at": "1R", "close": "50%"}, {"at": "1.001R", "close": "rest"}])


def test_a_short_percent_target_with_no_price_is_refused():
    with pytest.raises(InvalidInput, match="target 1 \\(100%\\) lands at 0, not beyond the entry 100 for a sell"):
        ladder([{"at": "100%", "close": "rest"}], side=Side.SELL, stop="105")


def test_a_stop_never_moves_backwards_and_never_onto_its_target():
    assert stop_after_target(D("101"), D("100.21"), Side.BUY, D("105")) == D("101")  # already tighter: kept
    assert stop_after_target(D("95"), D("105"), Side.BUY, D("105")) == D("95")  # at the target: not moved
    assert stop_after_target(D("95"), None, Side.BUY, D("105")) == D("95")  # keep
    assert stop_after_target(D("105"), D("99.80"), Side.SELL, D("95")) == D("99.80")
    assert stop_level(StopRule.PREVIOUS_TARGET, Side.BUY, entry=D("100"), quantity=D("1"), entry_fee=D("0.1"),
                      previous_target=D("105"), fee_rate=FEE, tick_size=D("0.01")) == D("105")


def test_the_ladder_reads_back_exactly_from_its_document():
    for result in (ladder(), ladder([{"at": "1R", "close": "10%"}, {"at": "2R", "close": "rest"}], quantity="0.3")):
        assert ladder_from_doc(ladder_doc(result)) == result


def test_a_damaged_ladder_document_is_a_clear_error():
    doc = ladder_doc(ladder())
    del doc["parts"][1]

    with pytest.raises(InvalidInput, match="a recorded ladder cannot be read"):
        ladder_from_doc(doc)


# --- the plan and the fill ------------------------------------------------------------------------


def scale_out(stop: StopSettings, rungs=THREE) -> Strategy:
    return Strategy(name="s", title="S", description="", entry="manual", timeframe="15m", risk_percent=D("1"),
                    max_risk_percent=D("1"), stop=stop, target=TargetRule(), targets=parse_ladder(rungs))


def planned(method: StopSettings, rungs=THREE, **given):
    return plan_trade(Side.BUY, X, scale_out(method, rungs), entry=D("100"), entry_source="given", candles=[],
                      capital=D("1000"), fee_rate=FEE, max_position_percent=D("100"), available_balance=None,
                      quantity=D("1"), **given)


def test_the_plan_of_a_ladder_strategy_carries_the_ladder_and_targets_where_the_last_part_closes():
    trade = planned(StopSettings(kind="fixed_percent", percent=D("5")))

    assert trade.ladder == ladder()
    assert (trade.target, trade.target_source) == (D("115.00"), "ladder of 3 targets from strategy")
    assert trade.reward_to_risk == D("1.75")
    assert trade.anchor == {"stop_percent": "5", "target_r": "3"}  # R targets on a percent stop follow the fill


def test_a_given_target_plans_without_the_ladder():
    trade = planned(StopSettings(kind="fixed_percent", percent=D("5")), target=D("107"))

    assert (trade.ladder, trade.target, trade.reward_to_risk) == (None, D("107"), D("1.4"))


def test_at_the_fill_r_targets_on_a_chart_stop_stay_and_the_parts_follow_the_quantity_filled():
    # Planned at 100 with the stop 95 (given); 0.8 filled at 100.5: the targets stay 105 / 110 / 115, the parts
    # are 0.4 / 0.2 / 0.2, one R is now 5.5, and break-even plus fees is 100.5 × 1.001 / 0.999 = 100.7012 → 100.71.
    plan = planned(StopSettings(), stop=D("95"))
    assert plan.anchor == {}

    filled = ladder_at_fill(plan.ladder, plan.anchor, fill=D("100.5"), stop=D("95"), quantity=D("0.8"), info=X,
                            fee_rate=FEE)

    assert [(p.target, p.quantity) for p in filled.parts] == [
        (D("105.00"), D("0.400")), (D("110.00"), D("0.200")), (D("115.00"), D("0.200"))]
    assert filled.parts[0].r_multiple == D("4.5") / D("5.5")
    assert filled.parts[0].stop_after == D("100.71")


def test_at_the_fill_percent_targets_follow_it():
    # 2 % and 4 % above the fill 101: 103.02 and 105.04.
    rungs = [{"at": "2%", "close": "50%"}, {"at": "4%", "close": "rest"}]
    plan = planned(StopSettings(), rungs, stop=D("95"))
    assert plan.anchor == {"target_percent": "4", "target_after_fees": "false"}

    filled = ladder_at_fill(plan.ladder, plan.anchor, fill=D("101"), stop=D("95"), quantity=D("1"), info=X,
                            fee_rate=FEE)

    assert [p.target for p in filled.parts] == [D("103.02"), D("105.04")]


# --- the candle walk ------------------------------------------------------------------------------

T0 = datetime(2021, 7, 1, tzinfo=UTC)
M15 = 15 * 60_000
SETTINGS = MonitorSettings(timeframe="15m", fee_rate=FEE, slippage_rate=D("0.0005"), tick_size=D("0.01"))


def operation(side=Side.BUY, stop="95", quantity="1", target=None, last_checked_at=None, current=None) -> Operation:
    # Entry 100 with its fee 0.1 (100 × 1 × 0.1 %).
    return Operation(id="op-1", intent_id="pl-1", symbol="XUSDT", side=side, status=OperationStatus.ACTIVE,
                     mode="paper", strategy="scale-out", quantity=D(quantity), entry_price=D("100"),
                     entry_fee=D("0.1") * D(quantity), initial_stop=D(stop), stop=D(current or stop),
                     target=D(target) if target else None, opened_at=T0, updated_at=T0,
                     last_checked_at=last_checked_at or T0)


def candle(index: int, open_: str, high: str, low: str, close: str) -> Candle:
    return Candle(datetime_to_ms(T0) + index * M15, D(open_), D(high), D(low), D(close), D("1"))


def close_of(index: int) -> datetime:
    return T0 + timedelta(minutes=15 * (index + 1))


def fills(walk) -> list[tuple]:
    return [(f.part, f.quantity, f.price, f.reason, f.candle_open_time, f.gapped) for f in walk.fills]


def test_the_stop_comes_first_when_one_candle_touches_the_stop_and_a_target():
    walk = walk_ladder(operation(), ladder(), [candle(0, "100", "106", "94", "100")], SETTINGS)

    # The whole position at 95 less 0.05 % slippage: 94.9525 → 94.95 (against the trader).
    assert fills(walk) == [(None, D("1"), D("94.95"), CloseReason.STOP, candle(0, *"1111").open_time, False)]
    assert walk.fills[0].fee == D("94.95") * FEE
    assert (walk.closed, walk.moves, walk.reached) == (True, (), 0)


def test_one_candle_takes_every_target_it_reaches_in_order_and_moves_the_stop_after_each():
    walk = walk_ladder(operation(), ladder(), [candle(0, "100", "111", "99", "108")], SETTINGS)

    t0 = candle(0, *"1111").open_time
    assert fills(walk) == [(1, D("0.500"), D("105.00"), CloseReason.TARGET, t0, False),
                           (2, D("0.250"), D("110.00"), CloseReason.TARGET, t0, False)]
    assert [f.fee for f in walk.fills] == [D("0.0525"), D("0.0275")]  # 105 × 0.5 and 110 × 0.25, × 0.1 %
    assert [f.at for f in walk.fills] == [close_of(0), close_of(0)]
    assert walk.moves == (StopMove(close_of(0), D("95"), D("100.21"), "breakeven_plus_fees", t0, D("105.00")),
                          StopMove(close_of(0), D("100.21"), D("105.00"), "previous_target", t0, D("110.00")))
    assert (walk.stop, walk.reached, walk.remaining, walk.closed) == (D("105.00"), 2, D("0.250"), False)


def test_a_moved_stop_protects_from_the_next_candle_on():
    # Candle 0 takes target 1 and dips to 99, under the new stop 100.21: not stopped in that candle.
    # Candle 1 touches 100.21: the rest 0.5 fills at 100.21 × 0.9995 = 100.159895 → 100.15.
    walk = walk_ladder(operation(), ladder(), [candle(0, "100", "105.5", "99", "104"),
                                               candle(1, "104", "104.5", "100", "101")], SETTINGS)

    assert fills(walk) == [(1, D("0.500"), D("105.00"), CloseReason.TARGET, candle(0, *"1111").open_time, False),
                           (None, D("0.500"), D("100.15"), CloseReason.STOP, candle(1, *"1111").open_time, False)]
    assert walk.closed and walk.last_checked_at == close_of(1)


def test_a_candle_opening_beyond_the_targets_fills_them_at_its_open():
    walk = walk_ladder(operation(), ladder(), [candle(0, "112", "113", "111", "112")], SETTINGS)

    t0 = candle(0, *"1111").open_time
    assert fills(walk) == [(1, D("0.500"), D("112"), CloseReason.TARGET, t0, True),
                           (2, D("0.250"), D("112"), CloseReason.TARGET, t0, True)]
    assert [f.trigger_price for f in walk.fills] == [D("112"), D("112")]
    assert [f.at for f in walk.fills] == [T0, T0]  # known at the open


def test_a_candle_opening_through_the_moved_stop_fills_the_rest_at_its_open():
    # After target 1 the stop is 100.21; candle 1 opens at 99: 99 × 0.9995 = 98.9505 → 98.95.
    walk = walk_ladder(operation(), ladder(), [candle(0, "100", "105", "101", "104"),
                                               candle(1, "99", "99.5", "98", "99")], SETTINGS)

    assert fills(walk)[1] == (None, D("0.500"), D("98.95"), CloseReason.STOP, candle(1, *"1111").open_time, True)
    assert walk.fills[1].at == close_of(0)  # the open of candle 1


def test_the_last_target_closes_the_position_and_moves_no_stop():
    walk = walk_ladder(operation(), ladder(), [candle(0, "100", "116", "99", "115"),
                                               candle(1, "115", "120", "90", "95")], SETTINGS)

    assert [(f.part, f.quantity, f.price) for f in walk.fills] == [
        (1, D("0.500"), D("105.00")), (2, D("0.250"), D("110.00")), (3, D("0.250"), D("115.00"))]
    assert (walk.closed, walk.reached, len(walk.moves)) == (True, 3, 2)
    assert walk.last_checked_at == close_of(0)  # nothing is left to watch after it


def test_a_later_walk_resumes_from_the_parts_already_taken():
    # Target 1 filled in an earlier walk: the stop is 100.21 and the last check candle 0's close.
    op = operation(current="100.21", last_checked_at=close_of(0))
    walk = walk_ladder(op, ladder(), [candle(0, "100", "105.5", "99", "104"), candle(1, "104", "110", "103", "109")],
                       SETTINGS, reached=1)

    assert [(f.part, f.price) for f in walk.fills] == [(2, D("110.00"))]  # candle 0 was seen already
    assert walk.moves == (StopMove(close_of(1), D("100.21"), D("105.00"), "previous_target",
                                   candle(1, *"1111").open_time, D("110.00")),)
    assert (walk.reached, walk.remaining) == (2, D("0.250"))


def test_a_merged_target_closes_nothing_and_moves_no_stop():
    # 10 % of 0.3 is too small and joined target 2: reaching 1R only does nothing.
    rungs = [{"at": "1R", "close": "10%", "then_stop": "breakeven"}, {"at": "2R", "close": "rest"}]
    walk = walk_ladder(operation(quantity="0.3"), ladder(rungs, quantity="0.3"), [candle(0, "100", "106", "99", "105")],
                       SETTINGS)

    assert (walk.fills, walk.moves, walk.stop, walk.reached, walk.remaining) == ((), (), D("95"), 1, D("0.3"))


def test_the_time_exit_closes_the_rest_at_the_close():
    # Two candles of 15m: target 1 in candle 0, the rest at candle 1's close 103 × 0.9995 = 102.9485 → 102.94.
    settings = dataclasses.replace(SETTINGS, time_exit=TimeExitRule(candles=2))
    walk = walk_ladder(operation(), ladder(), [candle(0, "100", "105", "101", "104"),
                                               candle(1, "104", "104.5", "102", "103")], settings)

    assert fills(walk)[1] == (None, D("0.500"), D("102.94"), CloseReason.TIME_EXIT, candle(1, *"1111").open_time, False)


def test_with_trailing_a_stop_trailed_beyond_the_ladder_rules_closes_as_trailing():
    # Rules: keep the stop after 1R. The candle's high 105.5 is one span: the hand span lifts the stop to
    # break-even plus fees (100.21); the next candle touches it: the rest closes as trailing.
    rungs = [{"at": "1R", "close": "50%"}, {"at": "2R", "close": "rest"}]
    settings = dataclasses.replace(SETTINGS, trailing=True)
    walk = walk_ladder(operation(), ladder(rungs), [candle(0, "100", "105.5", "101", "104"),
                                                   candle(1, "104", "104.5", "100", "101")], settings)

    assert [m.reason for m in walk.moves] == ["trailing"]
    assert fills(walk)[1][3] is CloseReason.TRAILING


def test_a_short_ladder_walks_the_mirror():
    # Entry 100, stop 105: targets 95 / 90 / 85; the candle's low 89 takes the first two.
    walk = walk_ladder(operation(side=Side.SELL, stop="105"), ladder(side=Side.SELL, stop="105"),
                       [candle(0, "100", "101", "89", "92"), candle(1, "92", "95.5", "91", "95")], SETTINGS)

    # Stops 105 → 99.80 → 95.00 (previous target); candle 1's high 95.5 touches 95: the rest buys back at
    # 95 × 1.0005 = 95.0475 → 95.05 (up, against the trader).
    assert [m.new_stop for m in walk.moves] == [D("99.80"), D("95.00")]
    assert [(f.part, f.price) for f in walk.fills] == [(1, D("95.00")), (2, D("90.00")), (None, D("95.05"))]


@pytest.mark.parametrize("candles", [
    [("100", "101", "99", "100"), ("100", "106", "99", "105")],  # the target
    [("100", "101", "94", "95")],  # the stop
    [("100", "106", "94", "100")],  # both: the stop
    [("107", "108", "106", "107")],  # a gap over the target
    [("93", "94", "92", "93")],  # a gap through the stop
    [("100", "101", "99", "100"), ("101", "102", "100", "101")],  # nothing
])
def test_a_one_target_ladder_walks_exactly_as_the_single_target_walk(candles):
    bars = [candle(i, *c) for i, c in enumerate(candles)]
    single = walk_candles(operation(target="105"), bars, SETTINGS)
    walk = walk_ladder(operation(), ladder([{"at": "1R", "close": "rest"}]), bars, SETTINGS)

    exit_ = single.exit
    assert [(f.quantity, f.price, f.trigger_price, f.fee, f.reason, f.at, f.candle_open_time, f.gapped)
            for f in walk.fills] == ([] if exit_ is None else [
                (D("1"), exit_.price, exit_.trigger_price, exit_.fee, exit_.reason, exit_.at, exit_.candle_open_time,
                 exit_.gapped)])
    assert (walk.stop, walk.last_checked_at) == (single.stop, single.last_checked_at)


def test_the_stop_after_a_part_filled_live_follows_the_rule_from_the_real_entry():
    # What live calls when an exchange reports a target filled: 95 → 100.21 after part 1, → 105 after part 2.
    op, plan = operation(), ladder()

    after_1 = stop_after_part(op, plan, plan.parts[0], op.stop, fee_rate=FEE, tick_size=D("0.01"))
    after_2 = stop_after_part(op, plan, plan.parts[1], after_1, fee_rate=FEE, tick_size=D("0.01"))

    assert (after_1, after_2) == (D("100.21"), D("105.00"))


def test_only_an_active_operation_with_its_own_ladder_is_walked():
    with pytest.raises(IllegalTransition, match="only ACTIVE"):
        walk_ladder(dataclasses.replace(operation(), status=OperationStatus.CLOSED), ladder(), [], SETTINGS)
    with pytest.raises(InvalidInput, match="the ladder is for BUY 1, the operation op-1 BUY 2"):
        walk_ladder(operation(quantity="2"), ladder(), [], SETTINGS)
    with pytest.raises(InvalidInput, match="reached must be between 0 and 2, got 3"):
        walk_ladder(operation(), ladder(), [], SETTINGS, reached=3)
