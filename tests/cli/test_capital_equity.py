"""`capital: equity`: the risk percentages apply to the account's equity at current prices, and the plan says so."""

from __future__ import annotations

from tests.cli.conftest import assert_user_error, dump_database, parsed

AS_OF = "2021-07-15T12:00"  # BTCUSDT's last close then: 31880.5
EQUITY = {"ROBSON_CAPITAL": "equity"}


def plan(robson, *args: str, env: dict | None = None) -> dict:
    return parsed(robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--entry", "31000", "--stop", "30000", *args,
                         "--json", env=env))


def test_equity_capital_sizes_from_the_wallet_at_current_prices(robson):
    parsed(robson("--as-of", AS_OF, "paper", "deposit", "BTC", "0.01", "--json"))

    intent = plan(robson, env=EQUITY)

    # Equity = 1000 USDT + 0.01 BTC × 31880.5 = 1318.805. All In risks 1 %: 13.18805; the stop is 1000 away,
    # so 0.01318805 BTC, rounded down to the 0.00001 step: 0.01318 (notional 408.58 < 50 % of equity, < free USDT).
    assert (intent["capital"], intent["capital_source"]) == ("1318.805", "equity")
    assert intent["quantity"] == "0.01318"
    assert intent["risk"] == "13.18"  # 0.01318 × 1000


def test_a_fixed_capital_sizes_from_the_number_whatever_the_wallet_holds(robson):
    parsed(robson("--as-of", AS_OF, "paper", "deposit", "BTC", "0.01", "--json"))

    intent = plan(robson)

    # 1 % of 1000 = 10 over a distance of 1000: 0.01 BTC.
    assert (intent["capital"], intent["capital_source"], intent["quantity"]) == ("1000", "config", "0.01")


def test_equity_compounds_a_withdrawal_shrinks_the_next_size(robson):
    parsed(robson("--as-of", AS_OF, "paper", "withdraw", "USDT", "400", "--json"))

    intent = plan(robson, env=EQUITY)

    # Equity 600: 1 % = 6 over 1000 → 0.006 BTC.
    assert (intent["capital"], intent["quantity"]) == ("600", "0.006")


def test_capital_given_on_the_command_line_wins_and_is_named(robson):
    intent = plan(robson, "--capital", "500", env=EQUITY)

    assert (intent["capital"], intent["capital_source"], intent["quantity"]) == ("500", "given", "0.005")


def test_the_plan_shows_which_capital_it_used(robson):
    result = robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--entry", "31000", "--stop", "30000", env=EQUITY)

    assert result.exit_code == 0, result.stderr
    assert "capital         1000 USDT (capital: equity, the account's equity at market prices)" in result.stdout


def test_an_empty_account_has_nothing_to_risk(robson, db_path):
    parsed(robson("--as-of", AS_OF, "paper", "withdraw", "USDT", "1000", "--json"))
    before = dump_database(db_path)

    result = robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--entry", "31000", "--stop", "30000", env=EQUITY)

    assert_user_error(result, 2, "capital must be greater than 0, got 0 (equity)")
    assert dump_database(db_path) == before


def test_account_reports_equity_as_the_capital_of_the_loss_limits(robson):
    doc = parsed(robson("--as-of", AS_OF, "account", "--json", env=EQUITY))

    assert (doc["capital"], doc["capital_source"], doc["realized"]["today"]["limit_amount"]) == ("1000", "equity", "20")


def test_a_capital_that_is_neither_a_number_nor_equity_is_refused(robson):
    result = robson("account", env={"ROBSON_CAPITAL": "lots"})

    assert_user_error(result, 2, "field 'capital': must be a number greater than 0 or 'equity', got 'lots'")
