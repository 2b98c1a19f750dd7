"""The account's arithmetic (robson/domain/account.py): valuation, risk to stop, losses against the limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from robson.domain.account import loss_against_limit, parse_asset, position_risk, value_holdings
from robson.domain.market import Side
from robson.domain.operation import Operation, OperationStatus
from robson.errors import InvalidInput

T = datetime(2021, 7, 1, tzinfo=UTC)


def long(stop: str) -> Operation:
    return Operation(id="op-1", intent_id="pl-1", symbol="BTCUSDT", side=Side.BUY, status=OperationStatus.ACTIVE,
                     mode="paper", strategy="all-in", quantity=D("2"), entry_price=D("100"), entry_fee=D("0.2"),
                     initial_stop=D("90"), stop=D(stop), target=None, opened_at=T, updated_at=T)


def test_equity_counts_priced_assets_and_lists_the_others():
    holdings, equity = value_holdings({"USDT": (D("10"), D("5")), "BTC": (D("1"), D("0")), "XYZ": (D("3"), D("0")),
                                       "BNB": (D("0"), D("0"))}, {"BTC": D("100")}, "USDT")

    assert equity == D("115")  # 15 USDT + 1 BTC × 100; XYZ has no price, BNB is empty
    assert [(h.asset, h.total, h.value) for h in holdings] == [("BTC", D("1"), D("100")), ("USDT", D("15"), D("15")),
                                                              ("XYZ", D("3"), None)]


def test_risk_to_stop_is_the_move_to_the_stop_plus_the_exit_fee():
    risk = position_risk(long("90"), D("110"), fee_rate=D("0.001"), equity=D("1000"))

    # 2 × (110 − 90) = 40, + 2 × 90 × 0.1 % = 0.18 → 40.18 = 4.018 % of 1000; at the stop −20 − 0.2 − 0.18.
    assert (risk.risk_to_stop, risk.risk_percent, risk.pnl_at_stop, risk.value) == (
        D("40.18"), D("4.018"), D("-20.38"), D("220"))


def test_a_stop_above_entry_locks_in_a_gain():
    risk = position_risk(long("105"), D("110"), fee_rate=D("0.001"), equity=D("1000"))

    assert risk.pnl_at_stop == D("10") - D("0.2") - D("0.21")


def test_a_price_already_through_the_stop_risks_only_the_exit_fee():
    risk = position_risk(long("90"), D("85"), fee_rate=D("0.001"), equity=D("1000"))

    assert risk.risk_to_stop == D("0.18")


def test_a_short_risks_the_move_up_to_its_stop():
    short = long("120").__class__(**{**{f: getattr(long("120"), f) for f in long("120").__slots__}, "side": Side.SELL})

    risk = position_risk(short, D("110"), fee_rate=D("0"), equity=D("1000"))

    assert risk.risk_to_stop == D("20")  # 2 × (120 − 110)


@pytest.mark.parametrize(("pnl", "loss_percent", "room", "reached"), [
    ("5", "0", "20", False), ("-19.99", "1.999", "0.01", False), ("-20", "2", "0", True), ("-30", "3", "0", True)])
def test_a_loss_is_measured_on_capital_as_the_guards_measure_it(pnl, loss_percent, room, reached):
    limit = loss_against_limit("today", D(pnl), capital=D("1000"), limit_percent=D("2"))

    assert (limit.loss_percent, limit.room, limit.reached) == (D(loss_percent), D(room), reached)


@pytest.mark.parametrize("text", ["", "U", "US-DT", "BTC USDT", "ＵＳＤＴ", "A" * 21])
def test_an_asset_is_letters_and_digits(text):
    with pytest.raises(InvalidInput, match="asset must be 2 to 20 letters or digits"):
        parse_asset(text)


def test_an_asset_is_upper_cased():
    assert (parse_asset(" usdt "), parse_asset("1inch")) == ("USDT", "1INCH")
