"""Entries that wait for their price: where a candle fills them, and the checks on their price and expiry."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.domain.intent import EntryOrder, entry_side_problem, parse_entry_order, parse_expiry
from robson.domain.lifecycle import waiting_fill
from robson.domain.market import Candle, Side, SymbolInfo
from robson.errors import InvalidInput

INFO = SymbolInfo(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", status="TRADING", tick_size=D("0.01"),
                  step_size=D("0.00001"), min_qty=D("0.00001"), min_notional=D("10"))
MAKER, TAKER, SLIP = D("0.0002"), D("0.001"), D("0.0005")
NOW = datetime(2021, 6, 22, 6, 0, tzinfo=UTC)


def candle(o: str, h: str, low: str, c: str) -> Candle:
    return Candle(open_time=1624341600000, open=D(o), high=D(h), low=D(low), close=D(c), volume=D("1"))


def fill(order: str, side: Side, entry: str, c: Candle):
    return waiting_fill(order, side, D(entry), D("0.5"), c, INFO, maker_fee_rate=MAKER, taker_fee_rate=TAKER,
                        slippage_rate=SLIP)


# --- limit: at the entry or better, maker fee ---------------------------------------------------------


def test_a_limit_buy_fills_at_its_price_when_the_low_trades_through_it():
    f = fill("limit", Side.BUY, "100", candle("103", "104", "99", "101"))
    assert (f.price, f.trigger_price, f.fee, f.maker, f.gapped) == (D("100"), D("100"), D("0.0100"), True, False)


def test_a_limit_buy_fills_when_the_low_only_touches_its_price():
    assert fill("limit", Side.BUY, "100", candle("103", "104", "100", "101")).price == D("100")


def test_a_limit_buy_waits_while_the_low_stays_above_it():
    assert fill("limit", Side.BUY, "100", candle("103", "104", "100.01", "101")) is None


def test_a_limit_buy_that_the_candle_opens_below_fills_at_the_better_open():
    f = fill("limit", Side.BUY, "100", candle("97", "98", "96", "97.5"))
    assert (f.price, f.gapped, f.fee) == (D("97"), True, D("97") * D("0.5") * MAKER)


def test_a_limit_sell_mirrors_it_at_the_high():
    assert fill("limit", Side.SELL, "100", candle("97", "100.5", "96", "99")).price == D("100")
    assert fill("limit", Side.SELL, "100", candle("103", "104", "102", "103")).price == D("103")  # gap: better
    assert fill("limit", Side.SELL, "100", candle("97", "99.99", "96", "99")) is None


# --- stop: at the entry or worse (gap), like a market order: slippage and taker fee ---------------------


def test_a_stop_buy_triggers_when_the_high_reaches_it_and_fills_with_slippage_on_the_tick():
    f = fill("stop", Side.BUY, "100", candle("98", "100", "97", "99"))
    # 100 × 1.0005 = 100.05; taker fee 100.05 × 0.5 × 0.001 = 0.050025
    assert (f.price, f.trigger_price, f.fee, f.maker, f.gapped) == (D("100.05"), D("100"), D("0.050025"), False, False)


def test_a_stop_buy_gapping_above_it_fills_at_the_worse_open():
    f = fill("stop", Side.BUY, "100", candle("102", "103", "101", "102"))
    assert (f.trigger_price, f.price, f.gapped) == (D("102"), D("102.06"), True)  # 102.051 rounded up to the tick


def test_a_stop_buy_waits_below_it():
    assert fill("stop", Side.BUY, "100", candle("98", "99.99", "97", "99")) is None


def test_a_stop_sell_mirrors_it_at_the_low_rounded_down():
    f = fill("stop", Side.SELL, "100", candle("101", "102", "99", "100"))
    assert (f.trigger_price, f.price) == (D("100"), D("99.95"))
    assert fill("stop", Side.SELL, "100", candle("98", "99", "97", "98")).price == D("97.95")  # 98 × 0.9995 = 97.951


# --- the entry's side of the market ----------------------------------------------------------------


@pytest.mark.parametrize(("side", "order", "entry"), [
    (Side.BUY, EntryOrder.LIMIT, "99"), (Side.BUY, EntryOrder.STOP, "101"),
    (Side.SELL, EntryOrder.LIMIT, "101"), (Side.SELL, EntryOrder.STOP, "99"),
])
def test_an_entry_waits_on_its_own_side_of_the_market(side, order, entry):
    assert entry_side_problem(side, order, D(entry), D("100")) is None


@pytest.mark.parametrize(("side", "order", "entry", "words"), [
    (Side.BUY, EntryOrder.STOP, "99", "a stop buy entry must be above the market"),
    (Side.BUY, EntryOrder.STOP, "100", "100 is at the market 100"),
    (Side.BUY, EntryOrder.LIMIT, "101", "a limit buy entry must be below the market"),
    (Side.SELL, EntryOrder.STOP, "101", "a stop sell entry must be below the market"),
    (Side.SELL, EntryOrder.LIMIT, "99", "a limit sell entry must be above the market"),
])
def test_an_entry_on_the_wrong_side_would_fill_at_once(side, order, entry, words):
    problem = entry_side_problem(side, order, D(entry), D("100"))
    assert problem is not None and words in problem and "would fill at once" in problem


def test_a_market_entry_has_no_side_to_wait_on():
    assert entry_side_problem(Side.BUY, EntryOrder.MARKET, D("150"), D("100")) is None


# --- --order and --expires ------------------------------------------------------------------------


def test_order_kinds_parse_and_an_unknown_one_is_refused_with_the_choices():
    assert parse_entry_order(" Limit ") is EntryOrder.LIMIT
    with pytest.raises(InvalidInput, match="order must be one of market, limit, stop, got 'oco'"):
        parse_entry_order("oco")


@pytest.mark.parametrize(("text", "after"), [("90m", timedelta(minutes=90)), ("4h", timedelta(hours=4)),
                                             ("2d", timedelta(days=2)), ("1w", timedelta(weeks=1))])
def test_an_expiry_may_be_a_duration_from_now(text, after):
    assert parse_expiry(text, NOW) == NOW + after


@pytest.mark.parametrize(("text", "moment"), [
    ("2021-06-22T18:00", datetime(2021, 6, 22, 18, tzinfo=UTC)),
    ("2021-06-22 18:30Z", datetime(2021, 6, 22, 18, 30, tzinfo=UTC)),
    ("2021-06-22T20:00+02:00", datetime(2021, 6, 22, 18, tzinfo=UTC)),
    ("2021-06-23", datetime(2021, 6, 23, tzinfo=UTC)),
])
def test_an_expiry_may_be_a_utc_time(text, moment):
    assert parse_expiry(text, NOW) == moment


@pytest.mark.parametrize("text", ["2021-06-22T06:00", "2021-06-21", "2020-01-01T00:00"])
def test_an_expiry_that_is_not_after_now_is_refused(text):
    with pytest.raises(InvalidInput, match="is not after now"):
        parse_expiry(text, NOW)


@pytest.mark.parametrize("text", ["0h", "-4h", "tomorrow", "4 hours", "2021-13-01"])
def test_a_malformed_expiry_is_refused_naming_the_forms(text):
    with pytest.raises(InvalidInput, match="expires must be"):
        parse_expiry(text, NOW)
