"""Position sizing: SPEC §2's numbers are the test cases."""

from decimal import ROUND_DOWN
from decimal import Decimal as D

import pytest

from robson.domain.lifecycle import target_for
from robson.domain.market import Side, SymbolInfo
from robson.domain.sizing import (
    SizingRequest,
    reward_to_risk,
    risk_figures,
    size_position,
)
from robson.domain.strategy import TargetRule
from robson.errors import InvalidInput, SizingRefused

BTC = SymbolInfo(
    symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size=D("0.01"), min_price=D("0.01"),
    step_size=D("0.00001"), min_qty=D("0.00001"), max_qty=D("9000"), min_notional=D("10"),
)


def request(**overrides):
    values = dict(side=Side.BUY, capital=D("100"), risk_percent=D("1"), entry=D("95432"), stop=D("93500"),
                  fee_rate=D("0.001"), max_position_percent=D("100"))
    values.update(overrides)
    return SizingRequest(**values)


def test_worked_example_from_the_product_brief_gives_0_00051_btc_and_risk_0_99():
    sizing = size_position(request(), BTC)

    assert sizing.risk_budget == D("1.00")
    assert sizing.raw_quantity.quantize(D("0.000001"), rounding=ROUND_DOWN) == D("0.000517")
    assert sizing.quantity == D("0.00051")
    assert sizing.figures.risk_at_stop == D("0.98532")
    assert sizing.figures.risk_at_stop.quantize(D("0.01")) == D("0.99")


def test_real_risk_includes_taker_fee_on_entry_and_on_the_stop_exit():
    sizing = size_position(request(), BTC)

    expected_fees = D("0.00051") * D("95432") * D("0.001") + D("0.00051") * D("93500") * D("0.001")
    assert sizing.figures.fees == expected_fees
    assert sizing.figures.total_risk == D("0.98532") + expected_fees
    assert sizing.figures.total_risk_percent == (D("0.98532") + expected_fees)  # capital 100: percent == amount


def test_quantity_is_rounded_down_never_up():
    # 1 / 1000 = 0.001 exactly; 1 / 999 = 0.001001.. -> still 0.00100, never 0.00101
    assert size_position(request(entry=D("95000"), stop=D("94001")), BTC).quantity == D("0.00100")


def test_stop_is_rounded_away_from_entry_for_a_long():
    sizing = size_position(request(stop=D("93500.005")), BTC)
    assert sizing.figures.stop == D("93500.00")


def test_stop_is_rounded_away_from_entry_for_a_short():
    sizing = size_position(request(side=Side.SELL, entry=D("95432"), stop=D("97000.001")), BTC)
    assert sizing.figures.stop == D("97000.01")


def test_short_mirrors_the_long():
    sizing = size_position(request(side=Side.SELL, entry=D("93500"), stop=D("95432")), BTC)
    assert sizing.quantity == D("0.00051")


def test_notional_capped_by_max_position_share_reports_lower_risk():
    # 1 % risk with a 0.2 % stop would need 500 % of capital; cap at 50 %.
    sizing = size_position(request(capital=D("10000"), entry=D("50000"), stop=D("49900"),
                                   max_position_percent=D("50")), BTC)
    assert sizing.capped_by == "max position"
    assert sizing.quantity == D("0.1")
    assert sizing.figures.notional == D("5000.0")
    assert sizing.figures.risk_at_stop == D("10.0")  # 0.1 % of capital, below the 1 % budget
    assert sizing.figures.risk_percent < D("1")


def test_notional_capped_by_free_balance_keeps_room_for_the_fee():
    sizing = size_position(request(capital=D("10000"), entry=D("50000"), stop=D("49500"),
                                   available_balance=D("1000")), BTC)
    assert sizing.capped_by == "balance"
    assert sizing.figures.notional + sizing.figures.notional * D("0.001") <= D("1000")


def test_below_min_notional_is_refused_not_rounded_up():
    with pytest.raises(SizingRefused, match="MIN_NOTIONAL"):
        size_position(request(capital=D("10")), BTC)  # 0.1 risk -> 0.00005 BTC = 4.77 USDT < 10


def test_budget_smaller_than_one_step_is_refused():
    with pytest.raises(SizingRefused, match="LOT_SIZE"):
        size_position(request(capital=D("1"), entry=D("95432"), stop=D("50000")), BTC)


@pytest.mark.parametrize("stop", [D("95432"), D("96000")])
def test_stop_on_the_wrong_side_or_equal_to_entry_is_invalid_input(stop):
    with pytest.raises(InvalidInput):
        size_position(request(stop=stop), BTC)


def test_zero_or_negative_capital_is_invalid_input():
    with pytest.raises(InvalidInput):
        size_position(request(capital=D("0")), BTC)


def test_explicit_quantity_skips_the_risk_rule_but_is_still_put_on_the_step():
    sizing = size_position(request(quantity=D("0.0012345")), BTC)
    assert sizing.quantity == D("0.00123")
    assert sizing.explicit_quantity


def test_risk_figures_percentages():
    fig = risk_figures(D("0.1"), D("100"), D("90"), D("1000"), D("0"))
    assert fig.risk_at_stop == D("1.0")
    assert fig.risk_percent == D("0.1")
    assert fig.notional_percent == D("1")


def test_target_from_r_multiple_and_reward_to_risk():
    target = target_for(TargetRule(r_multiple=D("2")), Side.BUY, D("95432"), D("93500"), BTC, D("0.001"))
    assert target == D("99296.00")
    assert reward_to_risk(Side.BUY, D("95432"), D("93500"), target) == D("2")
    short_target = target_for(TargetRule(r_multiple=D("2")), Side.SELL, D("93500"), D("95432"), BTC, D("0.001"))
    assert short_target == D("89636.00")
