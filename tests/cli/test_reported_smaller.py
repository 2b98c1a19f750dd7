"""The smaller things a new trader reported: ID prefixes, FAILED intents, unknown names, order, help, colour."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.cli.conftest import assert_user_error, dump_database, parsed

AS_OF = ["--as-of", "2021-06-09T05:45"]


def plan(robson, *args: str) -> str:
    return parsed(robson(*AS_OF, "plan", "buy", "BTCUSDT", *args, "--json"))["id"]


# --- the type prefix alone -----------------------------------------------------------------


@pytest.mark.parametrize("text", ["pl-", "pl", "PL", " pl- "])
def test_the_type_prefix_alone_is_a_prefix_of_every_intent_id(robson, text):
    only = plan(robson)

    assert parsed(robson("plan", "show", text, "--json"))["id"] == only
    second = plan(robson)
    stderr = assert_user_error(robson("plan", "show", text), 2, "ID prefix 'pl-' is ambiguous", "matches 2 records")
    assert only in stderr and second in stderr


@pytest.mark.parametrize(("command", "text", "noun"), [
    (["plan", "show"], "pl", "intent"), (["operation", "show"], "op", "operation"), (["signals", "show"], "sg", "signal"),
])
def test_the_type_prefix_alone_with_nothing_stored_is_not_found(robson, command, text, noun):
    assert_user_error(robson(*command, text), 2, f"no {noun} matches '{text}-'")


def test_the_type_prefix_without_its_dash_is_still_the_type_prefix(robson):
    intent = plan(robson)

    assert parsed(robson("plan", "show", f"pl{intent[3:7]}", "--json"))["id"] == intent
    assert parsed(robson("plan", "show", intent.replace("-", "").upper(), "--json"))["id"] == intent


# --- FAILED intents --------------------------------------------------------------------------


@pytest.fixture
def failed(robson, db_path) -> str:
    """A FAILED intent (its stop is far too close to pass validation)."""
    intent = plan(robson, "--entry", "30000", "--stop", "29990")
    result = robson(*AS_OF, "validate", intent)
    assert result.exit_code == 3
    assert parsed(robson("plan", "show", intent, "--json"))["status"] == "FAILED"
    return intent


def test_a_failed_validation_says_to_plan_again(robson, plan_id):
    intent = plan(robson, "--entry", "30000", "--stop", "29990")

    result = robson(*AS_OF, "validate", intent)

    stderr = assert_user_error(result, 3, "validation FAILED")
    assert f"Hint: {intent} is FAILED, which is final" in stderr
    assert "then plan again: robson plan buy BTCUSDT --strategy all-in" in stderr


@pytest.mark.parametrize(("command", "code"), [(["plan", "cancel"], 2), (["validate"], 2), (["execute"], 3),
                                               (["execute", "--live", "--acknowledge-risk"], 3)],
                         ids=["cancel", "validate-again", "execute", "execute-live"])
def test_a_failed_intent_refused_again_says_it_is_final_and_to_plan_again(robson, db_path, failed, command, code):
    before = dump_database(db_path)

    result = robson(*AS_OF, *command, failed, env={"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s",
                                                   "ROBSON_LIVE_TRADING": "true"})

    stderr = assert_user_error(result, code, "FAILED")
    assert "plan again" in stderr
    assert "FAILED -> cancel" not in stderr
    assert dump_database(db_path) == before


def test_cancelling_a_failed_intent_says_why_in_plain_words(robson, failed):
    result = robson("plan", "cancel", failed)

    assert_user_error(result, 2, f"intent {failed} is FAILED and cannot be cancelled: it failed and is final")


def test_cancelling_an_executed_intent_points_to_closing_its_operation(robson, db_path):
    intent = plan(robson, "--strategy", "rescue-forces")
    parsed(robson(*AS_OF, "validate", intent, "--json"))
    operation = parsed(robson(*AS_OF, "execute", intent, "--json"))["operation"]["id"]
    before = dump_database(db_path)

    result = robson(*AS_OF, "plan", "cancel", intent)

    stderr = assert_user_error(result, 2, f"intent {intent} is EXECUTED and cannot be cancelled")
    assert f"Hint: close the position with: robson operation close {operation}" in stderr
    assert dump_database(db_path) == before


# --- unknown names exit 2 everywhere -------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["signals", "list", "--strategy", "nope"],
    ["signals", "list", "--symbol", "NOPE"],
    ["signals", "list", "--status", "CONFIRMED", "--strategy", "nope"],
    ["report", "--strategy", "nope"],
    ["scan", "--strategy", "nope", "--no-entry"],
    ["strategy", "show", "nope"],
    ["plan", "buy", "BTCUSDT", "--strategy", "nope"],
], ids=lambda a: " ".join(a[:3]))
def test_an_unknown_strategy_or_symbol_name_exits_2_everywhere(robson, db_path, args):
    plan(robson)
    before = dump_database(db_path)

    result = robson(*args)

    assert_user_error(result, 2, "unknown")
    assert dump_database(db_path) == before


def test_a_known_strategy_without_signals_lists_nothing_and_exits_0(robson):
    assert parsed(robson("signals", "list", "--strategy", "rescue-forces", "--json")) == {"signals": []}


# --- plan list order ---------------------------------------------------------------------------


def test_plans_made_at_the_same_market_time_are_listed_in_the_order_they_were_made(robson):
    made = [plan(robson) for _ in range(8)]  # random ids: sorted by id they would come out shuffled

    listed = [i["id"] for i in parsed(robson("plan", "list", "--json"))["intents"]]

    assert listed == made


def test_plans_of_different_times_are_listed_oldest_first_whatever_order_they_were_made_in(robson):
    later = parsed(robson("--as-of", "2021-06-09T06:00", "plan", "buy", "BTCUSDT", "--json"))["id"]
    earlier = parsed(robson("--as-of", "2021-06-09T05:00", "plan", "buy", "BTCUSDT", "--json"))["id"]

    assert [i["id"] for i in parsed(robson("plan", "list", "--json"))["intents"]] == [earlier, later]


# --- report --help tells what R is -----------------------------------------------------------------


def test_report_help_says_r_is_over_the_risk_at_the_fill_and_the_report_computes_exactly_that(robson):
    help_text = robson("report", "--help").stdout
    intent = plan(robson, "--strategy", "rescue-forces")
    parsed(robson(*AS_OF, "validate", intent, "--json"))
    operation = parsed(robson(*AS_OF, "execute", intent, "--json"))["operation"]
    closed = parsed(robson("--as-of", "2021-06-09T06:00", "operation", "close", operation["id"], "--json"))

    report = parsed(robson("report", "--json"))

    assert "entry fill" in help_text and "planned risk" not in help_text
    fill_risk = Decimal(closed["quantity"]) * abs(Decimal(closed["entry_price"]) - Decimal(closed["initial_stop"]))
    assert Decimal(report["overall"]["average_r"]) == pytest.approx(Decimal(closed["realized_pnl"]) / fill_risk,
                                                                  abs=Decimal("0.0001"))


# --- NO_COLOR ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["plan", "show", "pl-"], ["plan", "list"], ["strategy", "show", "all-in"]],
                         ids=["key-values", "table", "strategy"])
def test_no_color_means_no_escape_codes_at_all_not_even_bold(robson, command):
    plan(robson)

    coloured = robson(*command, env={"FORCE_COLOR": "1"})
    plain = robson(*command, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})

    assert "\x1b[" in coloured.stdout  # a terminal gets styles (so the test can see them)
    assert plain.exit_code == 0 and "\x1b[" not in plain.stdout + plain.stderr
