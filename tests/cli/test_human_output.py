"""Human output (no --json): tables with the IDs and key words, no colour codes with NO_COLOR."""

import re

import pytest

from tests.cli.conftest import parsed

ANSI = re.compile(r"\x1b\[")
NO_COLOR = {"NO_COLOR": "1"}


@pytest.fixture
def journey(robson):
    """Run plan → validate → execute → status in human form; return the intent ID and each result."""
    planned = robson("plan", "buy", "BTCUSDT", env=NO_COLOR)
    intent_id = parsed(robson("plan", "list", "--json"))["intents"][0]["id"]
    validated = robson("validate", intent_id, env=NO_COLOR)
    executed = robson("execute", intent_id, env=NO_COLOR)
    status = robson("operation", "status", env=NO_COLOR)
    return intent_id, {"plan": planned, "validate": validated, "execute": executed, "status": status}


def test_every_step_succeeds_quietly_on_stderr(journey):
    _, results = journey

    for name, result in results.items():
        assert result.exit_code == 0, (name, result.stderr)
        assert result.stderr == "", name


def test_plan_prints_the_intent_and_the_next_step(journey):
    intent_id, results = journey

    out = results["plan"].stdout
    assert f"Plan {intent_id}" in out and "PENDING" in out
    for word in ("entry", "stop", "quantity", "risk", "target", "BTCUSDT", "2nd support"):
        assert word in out
    assert f"Next: robson validate {intent_id}" in out


def test_validate_prints_every_guard_verdict(journey):
    intent_id, results = journey

    out = results["validate"].stdout
    assert "Validation PASS" in out
    for guard in ("symbol tradable", "exchange filters", "balance", "risk per trade", "stop distance", "daily loss",
                  "monthly drawdown", "open positions", "data freshness", "cooldown"):
        assert guard in out
    assert f"{intent_id} is VALIDATED" in out
    assert f"Next: robson execute {intent_id}" in out


def test_execute_prints_the_dry_run_and_both_orders(journey):
    intent_id, results = journey

    out = results["execute"].stdout
    assert "DRY-RUN" in out and "EXECUTED" in out and "ACTIVE" in out
    assert f"rb-{intent_id}-E" in out and f"rb-{intent_id}-S" in out
    assert "MARKET" in out and "FILLED" in out and "OCO" in out and "NEW" in out
    assert "Next: robson operation status op-" in out


def test_status_prints_the_active_operation(journey):
    _, results = journey

    out = results["status"].stdout
    assert "Active operations (1)" in out
    assert "op-" in out and "ACTIVE" in out and "BUY BTCUSDT" in out


def test_no_colour_codes_with_no_color(journey):
    _, results = journey

    for name, result in results.items():
        assert not ANSI.search(result.stdout), name
        assert not ANSI.search(result.stderr), name


def test_a_human_error_has_no_colour_codes_either(robson):
    result = robson("plan", "show", "pl-00000000", env=NO_COLOR)

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no intent matches")
    assert not ANSI.search(result.stderr)


def test_human_lists_show_the_ids(robson, plan_id):
    intent_id = plan_id()

    listed = robson("plan", "list", env=NO_COLOR)
    shown = robson("plan", "show", intent_id, env=NO_COLOR)

    assert listed.exit_code == 0 and intent_id in listed.stdout and "Intents (1)" in listed.stdout
    assert shown.exit_code == 0 and f"Intent {intent_id}" in shown.stdout and "planned" in shown.stdout
    assert not ANSI.search(listed.stdout + shown.stdout)


def test_a_note_with_square_brackets_is_printed_verbatim(robson, db_path):
    note = "[/oops] buy the dip [red]now"

    result = robson("plan", "buy", "BTCUSDT", "--note", note, env=NO_COLOR)

    assert result.exit_code == 0, result.stderr
    assert note in result.stdout


def test_a_note_that_looks_like_markup_keeps_its_brackets(robson):
    result = robson("plan", "buy", "BTCUSDT", "--note", "[bold]strong[/bold] support", env=NO_COLOR)

    assert result.exit_code == 0
    assert "[bold]strong[/bold] support" in result.stdout


def test_config_show_prints_a_database_path_with_brackets(robson, tmp_path):
    path = str(tmp_path / "[/x].db")

    result = robson("config", "show", env={"ROBSON_DB": path, "COLUMNS": "300"})

    assert result.exit_code == 0, result.stderr
    assert path in result.stdout
