"""State errors and guard refusals: wrong state exits 2, a guard or gate refusal exits 3."""

import json
from decimal import Decimal

from tests.cli.conftest import assert_user_error, count_rows, floats_in, parsed

T = "2021-06-01T12:00"
T_PLUS_16 = "2021-06-01T12:16"


def intent_status(robson, intent_id: str) -> str:
    return parsed(robson("plan", "show", intent_id, "--json"))["status"]


def test_validating_an_executed_intent_is_refused_with_exit_2(robson, plan_id):
    intent_id = plan_id()
    parsed(robson("validate", intent_id, "--json"))
    parsed(robson("execute", intent_id, "--json"))

    result = robson("validate", intent_id)

    assert_user_error(result, 2, f"intent {intent_id} is EXECUTED", "only PENDING or VALIDATED intents can be validated")
    assert intent_status(robson, intent_id) == "EXECUTED"


def test_validating_a_cancelled_intent_is_refused_with_exit_2(robson, plan_id):
    intent_id = plan_id()
    parsed(robson("plan", "cancel", intent_id, "--json"))

    result = robson("validate", intent_id)

    assert_user_error(result, 2, f"intent {intent_id} is CANCELLED")
    assert intent_status(robson, intent_id) == "CANCELLED"


def test_executing_a_pending_intent_is_refused_with_a_hint_to_validate(robson, db_path, plan_id):
    intent_id = plan_id()

    result = robson("execute", intent_id)

    stderr = assert_user_error(result, 3, f"intent {intent_id} is PENDING", "only VALIDATED intents execute")
    assert f"Hint: run: robson validate {intent_id}" in stderr
    assert result.stdout == ""
    assert count_rows(db_path, "orders") == 0
    assert intent_status(robson, intent_id) == "PENDING"


def test_executing_a_stale_validation_is_refused(robson, db_path, plan_id):
    intent_id = plan_id(as_of=T)
    parsed(robson("--as-of", T, "validate", intent_id, "--json"))

    result = robson("--as-of", T_PLUS_16, "execute", intent_id)

    stderr = assert_user_error(result, 3, f"validation of {intent_id} is 16 min old > 15 min")
    assert f"robson validate {intent_id}" in stderr
    assert count_rows(db_path, "orders") == 0
    assert intent_status(robson, intent_id) == "VALIDATED"


def test_executing_within_the_validation_window_works(robson, plan_id):
    intent_id = plan_id("--stop", "35800", as_of=T)
    parsed(robson("--as-of", T, "validate", intent_id, "--json"))

    result = robson("--as-of", "2021-06-01T12:15", "execute", intent_id, "--json")

    assert parsed(result)["intent"]["status"] == "EXECUTED"
    assert result.stderr == ""


def test_executing_after_the_price_ran_away_from_the_stop_is_refused(robson, db_path, plan_id):
    # 13:20 → 13:30 on 2021-06-01 BTC rose from 35893.59 (the 13:15 close) to 36543.57 (the 13:25 close, +1.8 %):
    # the 0.01393 BTC sized at 13:20 now risks 0.01393 × (36543.57 − 35200) = 18.72 = 1.87 % of 1000.
    intent_id = plan_id("--stop", "35200", as_of="2021-06-01T13:20")
    parsed(robson("--as-of", "2021-06-01T13:20", "validate", intent_id, "--json"))

    result = robson("--as-of", "2021-06-01T13:30", "execute", intent_id)

    stderr = assert_user_error(result, 3, "price moved to 36543.57: risk 1.87%", "> max 1.00%")
    assert "plan again" in stderr
    assert count_rows(db_path, "orders") == 0
    assert intent_status(robson, intent_id) == "VALIDATED"


def test_executing_when_the_market_is_far_above_the_planned_entry_is_refused(robson, db_path, plan_id):
    intent_id = plan_id("--entry", "35000", "--stop", "34300", as_of=T)  # market is 36596.62 (the 11:55 close)
    parsed(robson("--as-of", T, "validate", intent_id, "--json"))

    result = robson("--as-of", T, "execute", intent_id)

    assert_user_error(result, 3, "price moved to 36596.62", "> max 1.00%")
    assert count_rows(db_path, "orders") == 0


def test_cancelling_twice_is_refused_the_second_time(robson, plan_id):
    intent_id = plan_id()
    first = robson("plan", "cancel", intent_id, "--json")
    assert parsed(first)["status"] == "CANCELLED"

    result = robson("plan", "cancel", intent_id)

    assert_user_error(result, 2, "CANCELLED")
    assert result.stdout == ""


def test_cancelling_a_validated_intent_works_and_it_can_no_longer_execute(robson, db_path, plan_id):
    intent_id = plan_id()
    parsed(robson("validate", intent_id, "--json"))

    cancelled = robson("plan", "cancel", intent_id)

    assert cancelled.exit_code == 0 and cancelled.stderr == ""
    assert f"Cancelled {intent_id} (was VALIDATED)" in cancelled.stdout
    assert_user_error(robson("execute", intent_id), 3, "is CANCELLED")
    assert count_rows(db_path, "orders") == 0


def test_a_failed_validation_exits_3_marks_the_intent_failed_and_stores_the_report(robson, db_path, plan_id):
    intent_id = plan_id("1")  # 1 BTC ≈ 31,700 USDT against a 1,000 USDT wallet

    result = robson("validate", intent_id, "--json")

    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert floats_in(report) == []
    assert report["verdict"] == "FAIL"
    failed = {r["guard"] for r in report["results"] if r["verdict"] == "FAIL"}
    assert {"balance", "risk per trade"} <= failed
    assert_user_error(result, 3, "validation FAILED on", "balance: free USDT 1000.00 < needed")
    shown = parsed(robson("plan", "show", intent_id, "--json"))
    assert shown["status"] == "FAILED"
    assert shown["validation"]["verdict"] == "FAIL"
    assert len(shown["validation"]["results"]) == 11
    assert "validation_failed" in [e["kind"] for e in shown["audit"]]
    assert_user_error(robson("execute", intent_id), 3, "is FAILED")
    assert_user_error(robson("validate", intent_id), 2, "is FAILED")
    assert count_rows(db_path, "orders") == 0


def test_the_daily_loss_guard_fails_validation_after_a_losing_trade(robson, plan_id):
    # A manual close at once loses slippage and fees (~1.5 USDT): over 2 % of a 50 USDT capital.
    first = plan_id()
    parsed(robson("validate", first, "--json"))
    operation_id = parsed(robson("execute", first, "--json"))["operation"]["id"]
    loss = -Decimal(parsed(robson("operation", "close", operation_id, "--json"))["realized_pnl"])
    second = plan_id("--capital", "50")

    result = robson("validate", second, "--json")

    assert result.exit_code == 3
    (daily,) = [r for r in json.loads(result.stdout)["results"] if r["guard"] == "daily loss"]
    assert daily["verdict"] == "FAIL"
    assert Decimal(daily["numbers"]["loss_percent"]) == (loss / 50 * 100).quantize(Decimal("0.0001"))
    assert_user_error(result, 3, "daily loss")
    assert intent_status(robson, second) == "FAILED"


def test_validating_past_the_end_of_the_data_fails_on_freshness(robson, plan_id):
    later = "2021-09-01T00:00"
    intent_id = plan_id(as_of=later)

    result = robson("--as-of", later, "validate", intent_id, "--json")

    assert result.exit_code == 3
    (freshness,) = [r for r in json.loads(result.stdout)["results"] if r["guard"] == "data freshness"]
    assert freshness["verdict"] == "FAIL"
    assert_user_error(result, 3, "data freshness: market data is stale")
    assert intent_status(robson, intent_id) == "FAILED"


def test_executing_after_the_price_fell_through_the_stop_is_refused(robson, db_path, plan_id):
    # 12:00 → 12:15 on 2021-06-01 BTC fell from 36596.62 (the 11:55 close) to 36216.93 (the 12:10 close),
    # below a stop at 36300.
    intent_id = plan_id("--stop", "36300", as_of=T)
    parsed(robson("--as-of", T, "validate", intent_id, "--json"))

    result = robson("--as-of", "2021-06-01T12:15", "execute", intent_id)

    assert_user_error(result, 3, "price 36216.93 is already through the stop 36300")
    assert count_rows(db_path, "orders") == 0
    assert intent_status(robson, intent_id) == "VALIDATED"
