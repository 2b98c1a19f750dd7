"""`robson account` on a live account (market: binance and keys) against the loopback Binance server."""

from __future__ import annotations

import json
from decimal import Decimal

from tests.cli.conftest import floats_in
from tests.live.conftest import Live


def test_the_binance_account_shows_its_balances_valued_at_binance_prices(live: Live):
    live.server.set_balance("BTC", "0.5", "0.1")  # 0.1 locked by an order
    live.server.set_balance("ETH", "2")
    live.server.set_price("ETHUSDT", Decimal("2000"))
    live.server.set_balance("XYZ", "5")  # no XYZUSDT on the exchange: listed, not valued

    doc = live.ok("account")

    assert floats_in(doc) == []
    assert doc["venue"] == "binance"
    # USDT 10000 + BTC 0.6 × 30000 = 18000 + ETH 2 × 2000 = 4000 → equity 32000; zero balances are left out.
    assert [(b["asset"], b["free"], b["locked"], b["total"], b["price"], b["value"]) for b in doc["balances"]] == [
        ("BTC", "0.5", "0.1", "0.6", "30000", "18000"),
        ("ETH", "2", "0", "2", "2000", "4000"),
        ("USDT", "10000", "0", "10000", "1", "10000"),
        ("XYZ", "5", "0", "5", None, None),
    ]
    assert (doc["equity"], doc["unpriced_assets"], doc["positions"]) == ("32000", ["XYZ"], [])
    # The loss limits are of the configured capital (10000 in the fixture): 2 % = 200 a day, 4 % = 400 a month.
    assert (doc["realized"]["today"]["limit_amount"], doc["realized"]["month"]["limit_amount"]) == ("200", "400")
    assert any(r.path == "/api/v3/account" for r in live.server.requests)


def test_capital_equity_on_a_live_account_sizes_from_the_binance_wallet(live: Live):
    live.server.set_balance("USDT", "2000")
    live.server.set_balance("BTC", "0.01")  # equity 2000 + 0.01 × 30000 = 2300

    result = live.run("plan", "buy", "BTCUSDT", "--stop", "29000", "--target", "31500", "--json", ROBSON_CAPITAL="equity")

    assert result.exit_code == 0, result.stderr
    intent = json.loads(result.stdout)

    # 1 % of 2300 = 23 over the 1000 from the market price 30000 to the stop: 0.023 BTC (notional 690, under
    # 50 % of 2300 and under the 1000 USDT the plan's balance cap reads: plan sizes against the paper wallet's free
    # quote even on a live account, as before this change).
    assert (intent["capital"], intent["capital_source"], intent["quantity"]) == ("2300", "equity", "0.023")


def test_a_live_operation_shows_its_risk_to_stop_from_the_binance_price(live: Live):
    from tests.live.test_live_monitor import executed

    op = executed(live, "0.01")  # BUY 0.01 BTC at market (30000), stop 29000, target 31500
    live.server.set_ticker_price("BTCUSDT", "30500")

    doc = live.ok("account")

    [position] = doc["positions"]
    assert (position["operation"], position["quantity"], position["stop"], position["price"]) == (
        op["id"], op["quantity"], "29000", "30500")
    quantity = Decimal(op["quantity"])  # the fill less Binance's commission taken in BTC, on the step
    # Risk to stop = quantity × (30500 − 29000) + the exit fee quantity × 29000 × 0.1 %; value = quantity × 30500.
    assert Decimal(position["risk_to_stop"]) == quantity * 1500 + quantity * 29000 * Decimal("0.001")
    assert Decimal(position["value"]) == quantity * 30500 == Decimal(doc["exposure"])
