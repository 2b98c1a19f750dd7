"""Risk guards: each threshold of SPEC §2, with the numbers in the verdict."""

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from robson.domain import guards as g
from robson.domain.guards import GuardContext, OpenPosition, RiskLimits, Verdict, overall, run_guards
from robson.domain.intent import IntentSource, IntentStatus, TradingIntent
from robson.domain.market import Side, SymbolInfo

NOW = datetime(2021, 7, 17, 21, 10, tzinfo=UTC)
BTC = SymbolInfo(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size=D("0.01"), min_price=D("0.01"),
                 step_size=D("0.00001"), min_qty=D("0.00001"), max_qty=D("9000"), min_notional=D("10"))


def intent(**changes):
    base = TradingIntent(
        id="pl-00000001", symbol="BTCUSDT", side=Side.BUY, status=IntentStatus.PENDING, strategy="all-in",
        source=IntentSource.MANUAL, timeframe="15m", capital=D("100"), risk_percent=D("1"), entry=D("95432"),
        stop=D("93500"), stop_method="manual", quantity=D("0.00051"), target=None, created_at=NOW, updated_at=NOW,
    )
    return dataclasses.replace(base, **changes)


def context(**changes):
    base = GuardContext(
        intent=intent(), symbol_info=BTC, capital=D("100"), limits=RiskLimits(), fee_rate=D("0.001"),
        free_balances={"USDT": D("1000")}, realized_pnl_today=D("0"), realized_pnl_month=D("0"), open_positions=[],
        now=NOW, last_price_at=NOW, last_candle_close_at=NOW, last_stop_out_at=None,
    )
    return dataclasses.replace(base, **changes)


def test_worked_example_passes_every_guard_and_warns_that_fees_push_risk_past_1_percent():
    results = {r.guard: r.verdict for r in run_guards(context())}
    assert results.pop("risk per trade") is Verdict.WARN
    assert set(results.values()) == {Verdict.PASS}
    assert len(results) == 10


def test_validation_lists_all_verdicts_not_only_the_first_fail():
    results = run_guards(context(symbol_info=None, free_balances={}))
    assert len(results) == 11
    assert sum(r.verdict is Verdict.FAIL for r in results) >= 3


def test_symbol_tradable_fails_on_unknown_halted_or_non_spot():
    assert g.symbol_tradable(context(symbol_info=None)).verdict is Verdict.FAIL
    halted = dataclasses.replace(BTC, status="BREAK")
    assert "BREAK" in g.symbol_tradable(context(symbol_info=halted)).message
    no_spot = dataclasses.replace(BTC, spot_allowed=False)
    assert g.symbol_tradable(context(symbol_info=no_spot)).verdict is Verdict.FAIL


def test_exchange_filters_fail_off_step_off_tick_and_below_min_notional():
    r = g.exchange_filters(context(intent=intent(quantity=D("0.000515"))))
    assert r.verdict is Verdict.FAIL and "LOT_SIZE step" in r.message
    r = g.exchange_filters(context(intent=intent(entry=D("95432.005"))))
    assert r.verdict is Verdict.FAIL and "PRICE_FILTER" in r.message
    r = g.exchange_filters(context(intent=intent(quantity=D("0.0001"))))
    assert r.verdict is Verdict.FAIL and "MIN_NOTIONAL 10" in r.message


def test_balance_needs_notional_plus_fee_in_quote_for_a_buy():
    notional = D("0.00051") * D("95432")
    needed = notional * D("1.001")
    assert g.balance(context(free_balances={"USDT": needed})).verdict is Verdict.PASS
    r = g.balance(context(free_balances={"USDT": needed - D("0.01")}))
    assert r.verdict is Verdict.FAIL and "USDT" in r.message


def test_balance_needs_the_base_asset_for_a_spot_sell():
    short = intent(side=Side.SELL, entry=D("93500"), stop=D("95432"))
    assert g.balance(context(intent=short, free_balances={"USDT": D("1e6")})).verdict is Verdict.FAIL
    assert g.balance(context(intent=short, free_balances={"BTC": D("1")})).verdict is Verdict.PASS


def test_risk_per_trade_fails_above_the_strategy_max_with_the_numbers():
    r = g.risk_per_trade(context(intent=intent(quantity=D("0.00060"))))  # 1.159 % of 100
    assert r.verdict is Verdict.FAIL
    assert "risk 1.16% > max 1.00%" in r.message


def test_risk_per_trade_warns_when_fees_push_past_the_max():
    # 0.00051 BTC risks 0.985 % at the stop, 1.08 % with fees.
    r = g.risk_per_trade(context())
    assert r.verdict is Verdict.WARN
    assert r.message == "risk 0.99% ≤ max 1.00%, but 1.08% with fees"


def test_risk_per_trade_passes_when_fees_fit_too():
    r = g.risk_per_trade(context(intent=intent(quantity=D("0.00045"))))
    assert r.verdict is Verdict.PASS


def test_risk_with_fees_above_the_hard_ceiling_of_2_percent_fails_whatever_the_strategy_says():
    r = g.risk_per_trade(context(intent=intent(quantity=D("0.00105")),
                                 limits=RiskLimits(max_risk_percent=D("5"))))
    assert r.verdict is Verdict.FAIL
    assert "ceiling" in r.message or "max 2.00%" in r.message


@pytest.mark.parametrize(("stop", "verdict"), [
    (D("95432") * D("0.9995"), Verdict.FAIL),  # 0.05 % < 0.1 %
    (D("95432") * D("0.998"), Verdict.WARN),  # 0.2 % < 0.5 %
    (D("95432") * D("0.99"), Verdict.PASS),  # 1 %
    (D("95432") * D("0.9"), Verdict.PASS),  # exactly 10 %
    (D("95432") * D("0.89"), Verdict.FAIL),  # 11 % > 10 %
    (D("96000"), Verdict.FAIL),  # wrong side
])
def test_stop_distance_thresholds(stop, verdict):
    assert g.stop_distance_guard(context(intent=intent(stop=stop))).verdict is verdict


def test_daily_loss_fails_at_2_percent_of_capital():
    assert g.daily_loss(context(realized_pnl_today=D("-1.99"))).verdict is Verdict.PASS
    r = g.daily_loss(context(realized_pnl_today=D("-2")))
    assert r.verdict is Verdict.FAIL and "2.00% ≥ 2.00%" in r.message


def test_monthly_drawdown_halts_trading_at_4_percent():
    assert g.monthly_drawdown(context(realized_pnl_month=D("-3.99"))).verdict is Verdict.PASS
    r = g.monthly_drawdown(context(realized_pnl_month=D("-4")))
    assert r.verdict is Verdict.FAIL and "HALTED" in r.message


def test_profits_never_count_as_loss():
    assert g.daily_loss(context(realized_pnl_today=D("50"))).verdict is Verdict.PASS


def test_open_positions_limits():
    four = [OpenPosition("ETHUSDT", D("1"))] * 4
    assert g.open_positions(context(open_positions=four)).verdict is Verdict.PASS
    five = [OpenPosition("ETHUSDT", D("1"))] * 5
    assert "5 open operations ≥ max 5" in g.open_positions(context(open_positions=five)).message
    two_btc = [OpenPosition("BTCUSDT", D("1"))] * 2
    assert g.open_positions(context(open_positions=two_btc)).verdict is Verdict.FAIL
    one_btc = [OpenPosition("BTCUSDT", D("1"))]
    assert g.open_positions(context(open_positions=one_btc)).verdict is Verdict.PASS


def test_total_exposure_above_80_percent_of_capital_fails():
    # this intent is 48.67 % of capital; 31.33 more reaches 80 % exactly
    at_limit = [OpenPosition("ETHUSDT", D("80") - D("0.00051") * D("95432"))]
    assert g.open_positions(context(open_positions=at_limit)).verdict is Verdict.PASS
    over = [OpenPosition("ETHUSDT", D("32"))]
    assert "> max 80.00%" in g.open_positions(context(open_positions=over)).message


def test_price_older_than_5_minutes_fails():
    assert g.data_freshness(context(last_price_at=NOW - timedelta(minutes=5))).verdict is Verdict.PASS
    stale = g.data_freshness(context(last_price_at=NOW - timedelta(minutes=5, seconds=1)))
    assert stale.verdict is Verdict.FAIL and "price 5m01s old" in stale.message
    assert g.data_freshness(context(last_price_at=None)).verdict is Verdict.FAIL


def test_candles_must_include_the_latest_closed_candle_within_5_minutes():
    # 15m candles at 21:10: the latest candle to have closed is the 20:45 one, closing at 21:00.
    expected = datetime(2021, 7, 17, 21, 0, tzinfo=UTC)
    fresh = context(last_candle_close_at=expected, expected_candle_close_at=expected)
    assert g.data_freshness(fresh).verdict is Verdict.PASS
    late = context(last_candle_close_at=expected - timedelta(minutes=15), expected_candle_close_at=expected)
    assert g.data_freshness(late).verdict is Verdict.FAIL


def test_cooldown_after_a_stop_out_on_the_same_symbol():
    r = g.cooldown(context(last_stop_out_at=NOW - timedelta(minutes=14)))
    assert r.verdict is Verdict.FAIL and "wait 1m00s" in (r.fix or "")
    assert g.cooldown(context(last_stop_out_at=NOW - timedelta(minutes=15))).verdict is Verdict.PASS


def test_overall_is_warn_when_only_warnings():
    results = [g.GuardResult("a", Verdict.PASS, ""), g.GuardResult("b", Verdict.WARN, "")]
    assert overall(results) is Verdict.WARN


@pytest.mark.parametrize(("age", "shown"), [
    (timedelta(minutes=5, seconds=1), "price 5m01s old"),
    (timedelta(minutes=59, seconds=59), "price 59m59s old"),
    (timedelta(hours=3, minutes=5), "price 3h 05m old"),
    (timedelta(minutes=240645), "price 167d 2h old"),
    (timedelta(days=1500, hours=23, minutes=59), "price 1,500d 23h old"),
])
def test_a_stale_price_says_how_old_in_readable_units(age, shown):
    stale = g.data_freshness(context(last_price_at=NOW - age))

    assert stale.verdict is Verdict.FAIL
    assert shown in stale.message
    assert "240645m" not in stale.message


def test_a_cooldown_of_days_waits_in_days_and_hours():
    limits = dataclasses.replace(RiskLimits(), cooldown_minutes=3 * 24 * 60)
    r = g.cooldown(context(limits=limits, last_stop_out_at=NOW - timedelta(hours=1)))

    assert r.verdict is Verdict.FAIL and "stopped out 1h 00m ago" in r.message and r.fix == "wait 2d 23h before re-entering"


def test_a_position_past_the_max_position_share_fails_however_it_was_sized():
    # 0.00063 × 95432 = 60.12 of capital 100: a quantity given by hand skips the sizing caps, not this guard.
    big = g.open_positions(context(intent=intent(quantity=D("0.00063"))))

    assert big.verdict is Verdict.FAIL
    assert "this position's notional 60.12% of capital > max 50.00% per position" in big.message
    assert g.open_positions(context()).verdict is Verdict.PASS  # 48.67 %


def test_a_planned_entry_far_from_the_market_warns_that_execute_fills_at_market():
    far = g.entry_price(context(intent=intent(entry=D("33100")), market_price=D("33483")))
    near = g.entry_price(context(intent=intent(entry=D("33483")), market_price=D("33500")))

    assert far.verdict is Verdict.WARN
    assert far.message == "entry 33100 is 1.14% from the market 33483: execute fills at market, not at the planned entry"
    assert near.verdict is Verdict.PASS
    assert g.entry_price(context(market_price=None)).verdict is Verdict.PASS


def test_only_the_portfolio_guards_are_run_again_at_execute():
    names = {r.guard for r in run_guards(context(), skip=frozenset(g.GUARD_NAMES) - g.PORTFOLIO_GUARDS)}

    assert names == {"balance", "daily loss", "monthly drawdown", "open positions", "cooldown"}
