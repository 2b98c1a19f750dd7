"""Bad input: one `Error: …` line on stderr, exit 2, no traceback, and the database left as it was."""

import json

import pytest

from tests.cli.conftest import assert_user_error, count_rows, dump_database, parsed

NUMBER_OPTIONS = ("--capital", "--entry", "--stop", "--target")
BAD_NUMBERS = [
    ("-5", "must be greater than 0"),
    ("0", "must be greater than 0"),
    ("NaN", "must be a finite number"),
    ("inf", "must be a finite number"),
    ("-inf", "must be a finite number"),
    ("abc", "must be a number"),
]


@pytest.fixture
def seeded(robson, db_path):
    """A database with one PENDING intent (and a seeded paper wallet); returns its dump."""
    parsed(robson("plan", "buy", "BTCUSDT", "--json"))
    return dump_database(db_path)


@pytest.mark.parametrize(("value", "problem"), BAD_NUMBERS)
@pytest.mark.parametrize("option", NUMBER_OPTIONS)
def test_a_bad_number_option_is_refused_and_changes_nothing(robson, db_path, seeded, option, value, problem):
    result = robson("plan", "buy", "BTCUSDT", option, value)

    assert_user_error(result, 2, f"{option.lstrip('-')} {problem}", f"'{value}'")
    assert result.stdout == ""
    assert dump_database(db_path) == seeded


@pytest.mark.parametrize(("value", "problem"), BAD_NUMBERS)
def test_a_bad_quantity_is_refused_and_changes_nothing(robson, db_path, seeded, value, problem):
    result = robson("plan", "buy", "BTCUSDT", "--", value)

    assert_user_error(result, 2, f"quantity {problem}")
    assert result.stdout == ""
    assert dump_database(db_path) == seeded


@pytest.mark.parametrize(("args", "problem"), [
    (["plan", "buy", "BTCUSDT", "--stop", "40000"], "stop 40000 must be below entry 31706.33 for a buy"),
    (["plan", "sell", "BTCUSDT", "--stop", "30000"], "stop 30000 must be above entry 31706.33 for a sell"),
    (["plan", "buy", "BTCUSDT", "--entry", "30000", "--stop", "30000"], "stop distance would be zero"),
    (["plan", "buy", "BTCUSDT", "--target", "30000"], "target 30000 must be above entry 31706.33 for a buy"),
    (["plan", "sell", "BTCUSDT", "--target", "40000"], "target 40000 must be below entry 31706.33 for a sell"),
    (["plan", "buy", "BTCUSDT", "--entry", "30000", "--stop", "29000", "--target", "29500"],
     "target 29500 must be above entry 30000"),
    (["plan", "buy", "XRPUSDT"], "unknown symbol 'XRPUSDT' (known: BTCUSDT, ETHUSDT)"),
    (["plan", "buy", "BTC-USDT"], "symbol must be letters and digits"),
    (["plan", "buy", "BTCUSDT", "--strategy", "nope"], "unknown strategy 'nope' (known: all-in, bounce-back"),
    (["plan", "buy", "BTCUSDT", "--timeframe", "7m"], "unknown timeframe '7m' (known: 1m"),
    (["plan", "list", "--status", "NOPE"], "unknown status 'NOPE'"),
    (["operation", "list", "--status", "NOPE"], "unknown status 'NOPE'"),
    (["--as-of", "yesterday", "plan", "buy", "BTCUSDT"], "field 'as_of': must be an ISO time"),
    (["--market", "kraken", "plan", "list"], "field 'market': must be 'sample' or 'binance'"),
], ids=["buy-stop-above", "sell-stop-below", "stop-equals-entry", "buy-target-below", "sell-target-above",
        "target-between-stop-and-entry", "unknown-symbol", "malformed-symbol", "unknown-strategy",
        "unknown-timeframe", "unknown-intent-status", "unknown-operation-status", "bad-as-of", "unknown-market"])
def test_bad_plan_input_is_refused_and_changes_nothing(robson, db_path, seeded, args, problem):
    result = robson(*args)

    assert_user_error(result, 2, problem)
    assert result.stdout == ""
    assert dump_database(db_path) == seeded


# --- IDs ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["validate"], ["execute"], ["plan", "show"], ["plan", "cancel"]])
def test_an_unknown_intent_id_is_not_found(robson, db_path, seeded, command):
    result = robson(*command, "pl-00000000")

    assert_user_error(result, 2, "no intent matches 'pl-00000000'")
    assert dump_database(db_path) == seeded


@pytest.mark.parametrize("command", [["operation", "close"], ["operation", "status"]])
def test_an_unknown_operation_id_is_not_found(robson, seeded, command):
    assert_user_error(robson(*command, "op-00000000"), 2, "no operation matches 'op-00000000'")


@pytest.mark.parametrize("text", ["", "  "])  # 'pl-' alone is a prefix: tests/cli/test_reported_smaller.py
def test_an_empty_id_is_not_an_id(robson, seeded, text):
    assert_user_error(robson("validate", text), 2, "an intent ID is required")


def test_an_ambiguous_prefix_is_refused_listing_the_candidates(robson, db_path):
    # Plan until two IDs share their first hex digit (at most 17 plans: 16 digits).
    by_digit: dict[str, list[str]] = {}
    while not any(len(ids) > 1 for ids in by_digit.values()):
        intent = parsed(robson("plan", "buy", "BTCUSDT", "--entry", "30000", "--stop", "29000", "--json"))
        by_digit.setdefault(intent["id"][3], []).append(intent["id"])
    digit, twins = next((d, ids) for d, ids in by_digit.items() if len(ids) > 1)
    before = dump_database(db_path)

    for text in (f"pl-{digit}", digit, f"PL-{digit.upper()}"):
        result = robson("validate", text)

        stderr = assert_user_error(result, 2, f"ID prefix 'pl-{digit}' is ambiguous", "matches 2 records")
        assert all(intent_id in stderr for intent_id in twins)
        assert "type more characters" in stderr
        assert result.stdout == ""
    assert dump_database(db_path) == before
    assert parsed(robson("plan", "show", twins[0][:8], "--json"))["id"] == twins[0]  # a longer prefix is unique


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    ("capital: [1, 2\nrisk:\n  x: 1\n", "bad.yaml: not valid YAML at line 2"),
    ("\tcapital: 5\n", "bad.yaml: not valid YAML at line 1"),
    ("- a\n- b\n", "bad.yaml: must be a mapping of settings, got list"),
    ("capital: -5\n", "bad.yaml: field 'capital': must be greater than 0"),
    ("capital: abc\n", "bad.yaml: field 'capital': must be a number"),
    ("colour: blue\n", "bad.yaml: field 'colour': unknown setting"),
    ("risk:\n  max_risk_percent: 5\n", "field 'risk.max_risk_percent': 5% is above the hard ceiling of 2%"),
    ("execution:\n  live_trading_enabled: maybe\n", "field 'execution.live_trading_enabled': must be true or false"),
    ("paper:\n  balances: 5\n", "field 'paper.balances': must be a mapping"),
], ids=["unclosed-list", "tab", "not-a-mapping", "negative-capital", "text-capital", "unknown-field", "above-ceiling",
        "not-a-bool", "balances-not-a-mapping"])
def test_a_bad_config_file_is_one_error_line_and_changes_nothing(robson, tmp_path, db_path, seeded, text, problem):
    (tmp_path / "bad.yaml").write_text(text)

    for command in (["plan", "buy", "BTCUSDT"], ["config", "check"], ["config", "show", "--json"]):
        result = robson("--config", "bad.yaml", *command)

        assert_user_error(result, 2, problem)
        if "--json" in command:  # the error as one JSON document too
            assert json.loads(result.stdout)["error"]["code"] == 2
        else:
            assert result.stdout == ""
    assert dump_database(db_path) == seeded


def test_a_missing_config_file_is_named(robson, db_path, seeded):
    result = robson("--config", "nowhere.yaml", "plan", "buy", "BTCUSDT")

    assert_user_error(result, 2, "config file nowhere.yaml does not exist")
    assert count_rows(db_path, "intents") == 1


@pytest.mark.parametrize(("env", "problem"), [
    ({"ROBSON_CAPITAL": "abc"}, "environment ROBSON_CAPITAL: field 'capital': must be a number"),
    ({"ROBSON_NOPE": "1"}, "environment ROBSON_NOPE: unknown setting"),
])
def test_a_bad_environment_setting_is_named(robson, db_path, seeded, env, problem):
    result = robson("plan", "buy", "BTCUSDT", env=env)

    assert_user_error(result, 2, problem)
    assert dump_database(db_path) == seeded


def test_a_bad_cwd_config_is_found_and_refused(robson, tmp_path, seeded):
    (tmp_path / ".robson.yaml").write_text("capital: -1\n")

    assert_user_error(robson("plan", "list"), 2, ".robson.yaml: field 'capital'")


# --- known bugs -----------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["--capital", "1e100"],
    ["--entry", "1e30", "--stop", "1e29"],
    ["--", "1e999999"],
], ids=["capital-1e100", "entry-1e30", "quantity-1e999999"])
def test_an_absurdly_large_number_is_bad_input_not_an_internal_error(robson, db_path, seeded, args):
    result = robson("plan", "buy", "BTCUSDT", *args)

    assert_user_error(result, 2)
    assert "internal error" not in result.stderr
    assert dump_database(db_path) == seeded


def test_an_explicit_quantity_below_the_lot_step_names_the_quantity(robson, db_path, seeded):
    result = robson("plan", "buy", "BTCUSDT", "0.000001")

    assert result.exit_code in (2, 3)
    assert "quantity 0.000001" in result.stderr
    assert "risk budget" not in result.stderr
    assert dump_database(db_path) == seeded
