"""`robson account` on a hand-computed paper book, replayed on the sample market at a known time."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from robson.application.ports import Balance
from robson.domain.intent import IntentStatus
from robson.domain.market import Side
from robson.domain.operation import CloseReason, Operation, OperationStatus
from tests import databases
from tests.cli.conftest import floats_in, parsed
from tests.integration.factories import make_intent

AS_OF = "2021-07-15T12:00"
# The sample market's last closes at 2021-07-15 12:00 UTC (the 5m candle closed then):
BTC_PRICE, ETH_PRICE = D("31880.5"), D("1912.97")
OPENED = datetime(2021, 7, 10, tzinfo=UTC)


def operation(op_id: str, symbol: str, quantity: str, entry: str, fee: str, stop: str, *, mode: str = "paper") -> Operation:
    return Operation(id=op_id, intent_id=f"pl-{op_id[3:]}", symbol=symbol, side=Side.BUY, status=OperationStatus.ACTIVE,
                     mode=mode, strategy="all-in", quantity=D(quantity), entry_price=D(entry), entry_fee=D(fee),
                     initial_stop=D(stop), stop=D(stop), target=None, opened_at=OPENED, updated_at=OPENED)


OPEN = [
    operation("op-btc", "BTCUSDT", "0.01", "30000", "0.3", "29000"),
    operation("op-eth", "ETHUSDT", "0.5", "1850", "0.925", "1800"),
    operation("op-live", "BTCUSDT", "1", "30000", "30", "29000", mode="live"),  # Binance's: not in the paper view
]
CLOSED = [  # (operation, exit price, exit fee, closed at): realized = (exit − entry) × qty − both fees
    (operation("op-c1", "BTCUSDT", "0.01", "30000", "0.3", "29000"), "29500", "0.295",
     datetime(2021, 7, 15, 9, tzinfo=UTC)),    # −5 − 0.595 = −5.595, today
    (operation("op-c2", "ETHUSDT", "1", "2000", "2", "1900"), "1995", "1.995",
     datetime(2021, 7, 15, 11, tzinfo=UTC)),   # −5 − 3.995 = −8.995, today
    (operation("op-c3", "BTCUSDT", "0.01", "33000", "0.33", "32000"), "32000", "0.32",
     datetime(2021, 7, 3, tzinfo=UTC)),        # −10 − 0.65 = −10.65, this month
    (operation("op-c4", "BTCUSDT", "0.1", "33000", "3.3", "32000"), "32000", "3.2",
     datetime(2021, 6, 30, 23, tzinfo=UTC)),   # −106.5 in June: not this month
    (operation("op-c5", "BTCUSDT", "0.1", "33000", "3.3", "32000"), "32000", "3.2",
     datetime(2021, 7, 15, 13, tzinfo=UTC)),   # −106.5 after the replayed time: not known yet
]


@pytest.fixture
def book(db_path):
    store = databases.open_store(db_path)
    with store.transaction() as tx:
        tx.set_balance("paper", Balance("USDT", D("500"), D("0")))
        tx.set_balance("paper", Balance("BTC", D("0"), D("0.01")))  # locked by op-btc's resting stop
        tx.set_balance("paper", Balance("ETH", D("0.5"), D("0")))
        tx.set_balance("paper", Balance("XYZ", D("3"), D("0")))  # no XYZUSDT on the market: shown, not valued
        tx.set_balance("paper", Balance("BNB", D("0"), D("0")))  # empty: not shown
        for op in OPEN:
            tx.add_intent(make_intent(op.intent_id, status=IntentStatus.EXECUTED, symbol=op.symbol))
            tx.add_operation(op)
        for op, exit_price, exit_fee, closed_at in CLOSED:
            tx.add_intent(make_intent(op.intent_id, status=IntentStatus.EXECUTED, symbol=op.symbol))
            tx.add_operation(op.close(exit_price=D(exit_price), exit_fee=D(exit_fee), reason=CloseReason.STOP,
                                      at=closed_at))
    store.close()


def test_account_figures_match_the_hand_computation(robson, book):
    result = robson("--as-of", AS_OF, "account", "--json")

    doc = parsed(result)
    assert result.stderr == "" and floats_in(doc) == []
    assert (doc["venue"], doc["at"], doc["quote_asset"]) == ("paper", "2021-07-15T12:00:00+00:00", "USDT")
    # Equity = 500 USDT + 0.01 BTC × 31880.5 + 0.5 ETH × 1912.97 = 500 + 318.805 + 956.485 = 1775.29 (XYZ unpriced).
    assert doc["equity"] == "1775.29"
    assert doc["unpriced_assets"] == ["XYZ"]
    assert [(b["asset"], b["free"], b["locked"], b["total"], b["price"], b["value"]) for b in doc["balances"]] == [
        ("BTC", "0", "0.01", "0.01", "31880.5", "318.805"),
        ("ETH", "0.5", "0", "0.5", "1912.97", "956.485"),
        ("USDT", "500", "0", "500", "1", "500"),
        ("XYZ", "3", "0", "3", None, None),
    ]
    # op-btc: (31880.5 − 29000) × 0.01 = 28.805 to the stop, + exit fee 0.01 × 29000 × 0.1 % = 0.29 → 29.095
    #         = 1.6389 % of 1775.29; at the stop it realizes (29000 − 30000) × 0.01 − 0.3 − 0.29 = −10.59.
    # op-eth: (1912.97 − 1800) × 0.5 = 56.485, + 0.5 × 1800 × 0.1 % = 0.9 → 57.385 = 3.2324 %;
    #         at the stop (1800 − 1850) × 0.5 − 0.925 − 0.9 = −26.825.
    positions = {p["operation"]: p for p in doc["positions"]}
    assert list(positions) == ["op-btc", "op-eth"]  # the live operation belongs to the Binance view
    assert (positions["op-btc"]["price"], positions["op-btc"]["value"]) == ("31880.5", "318.805")
    assert (positions["op-btc"]["risk_to_stop"], positions["op-btc"]["risk_percent_of_equity"],
            positions["op-btc"]["pnl_at_stop"]) == ("29.095", "1.6389", "-10.59")
    assert (positions["op-eth"]["risk_to_stop"], positions["op-eth"]["risk_percent_of_equity"],
            positions["op-eth"]["pnl_at_stop"]) == ("57.385", "3.2324", "-26.825")
    # Together 86.48 = 4.8713 % of equity; exposure 318.805 + 956.485 = 1275.29 = 71.8356 % of equity;
    # at entry 300 + 925 = 1225 = 122.5 % of the capital 1000 (the open-positions guard's measure, max 80 %).
    assert (doc["risk_to_stops"], doc["risk_to_stops_percent"]) == ("86.48", "4.8713")
    assert (doc["exposure"], doc["exposure_percent"]) == ("1275.29", "71.8356")
    assert (doc["exposure_at_entry"], doc["exposure_at_entry_percent_of_capital"]) == ("1225", "122.5000")
    assert doc["max_exposure_percent"] == "80"
    # Today: −5.595 − 8.995 = −14.59, a loss of 1.459 % of 1000 against 2 % (20): 5.41 left.
    # This month: −14.59 − 10.65 = −25.24 (June's and the 13:00 close do not count), 2.524 % of 4 % (40): 14.76 left.
    assert (doc["capital"], doc["capital_source"]) == ("1000", "config")
    today, month = doc["realized"]["today"], doc["realized"]["month"]
    assert (today["realized_pnl"], today["loss"], today["loss_percent"], today["limit_amount"], today["room"],
            today["reached"]) == ("-14.59", "14.59", "1.4590", "20", "5.41", False)
    assert (month["realized_pnl"], month["loss"], month["loss_percent"], month["limit_amount"], month["room"],
            month["reached"]) == ("-25.24", "25.24", "2.5240", "40", "14.76", False)


def test_account_says_when_a_loss_limit_is_reached(robson, book):
    # With capital 500 the month's 25.24 is 5.048 % ≥ 4 %: trading is HALTED; today's 14.59 is 2.918 % ≥ 2 %.
    result = robson("--as-of", AS_OF, "account", "--json", env={"ROBSON_CAPITAL": "500"})

    realized = parsed(result)["realized"]
    assert (realized["today"]["loss_percent"], realized["today"]["room"], realized["today"]["reached"]) == (
        "2.9180", "0", True)
    assert (realized["month"]["loss_percent"], realized["month"]["reached"]) == ("5.0480", True)


def test_account_human_output_shows_the_same_figures(robson, book):
    result = robson("--as-of", AS_OF, "account")

    assert result.exit_code == 0 and result.stderr == ""
    text = result.stdout
    assert "Paper account at 2021-07-15 12:00 UTC" in text
    assert "1775.29 USDT (no price for XYZ: not counted)" in text
    assert "86.48 USDT = 4.87% of equity" in text
    assert "-14.59 USDT; loss 1.46% of max 2.00% (20.00 USDT): 5.41 USDT left" in text
    assert "op-btc" in text and "op-eth" in text and "op-live" not in text


def test_a_fresh_account_is_the_starting_paper_wallet(robson):
    doc = parsed(robson("--as-of", AS_OF, "account", "--json"))

    assert (doc["equity"], doc["positions"], doc["risk_to_stops"]) == ("1000", [], "0")
    assert [(b["asset"], b["total"]) for b in doc["balances"]] == [("USDT", "1000")]
