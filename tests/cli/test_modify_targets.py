"""`robson operation modify ID --targets SPEC`: the coming targets of a paper operation replaced by hand.

The position is tests/cli/test_scale_out.py's: a `scale-out` buy of 0.01489 BTCUSDT filled at
33583.70 at 2021-06-09 05:45 UTC, initial stop 32987.68 (1 R = 596.02), its ladder 1R 34146.14
(50 %, then break-even plus fees), 2R 34725.37 (25 %), 3R 35304.60 (rest). The 5m candles after
it, read off the sample market by hand, are listed with each test.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.cli.conftest import assert_user_error, dump_database, parsed
from tests.cli.test_scale_out import SCALE_OUT, opened
from tests.reliability.helpers import invariant_breaches


@pytest.fixture
def env(tmp_path):
    """The scale-out strategy in a user folder (tests/cli/test_scale_out.py's)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "scale-out.yaml").write_text(SCALE_OUT)
    return {"ROBSON_STRATEGIES_DIR": str(folder)}


def modify(robson, env, op_id: str, spec: str, as_of: str, *more: str):
    return robson("--as-of", as_of, "operation", "modify", op_id, "--targets", spec, *more, "--json", env=env)


def show(robson, env, op_id: str) -> dict:
    return parsed(robson("operation", "show", op_id, "--json", env=env))


def stop_order(shown: dict) -> dict:
    return next(o for o in shown["orders"] if o["client_order_id"] == f"rb-{shown['intent_id']}-S")


def test_replacing_the_whole_ladder_before_any_target_walks_the_new_one(robson, env, db_path):
    op_id = opened(robson, env)

    # At 06:00 the price is the 05:55 close, 33502.57. 1.5R = 33583.70 + 1.5 × 596.02 = 34477.73;
    # 2.5R = 33583.70 + 2.5 × 596.02 = 35073.75; 50 % of 0.01489 = 0.007445 → 0.00744, the rest 0.00745.
    doc = parsed(modify(robson, env, op_id, "1.5R:50%:breakeven, 2.5R:rest", "2021-06-09T06:00"))

    assert (doc["changed"], doc["price"], doc["operation"]["target"]) == (True, "33502.57", "35073.75")
    assert [(p["number"], p["at"], p["target"], p["quantity"], p["then_stop"]) for p in doc["ladder"]["parts"]] == [
        (1, "1.5R", "34477.73", "0.00744", "breakeven"), (2, "2.5R", "35073.75", "0.00745", "keep")]
    shown = show(robson, env, op_id)
    assert (stop_order(shown)["target_price"], stop_order(shown)["quantity"]) == ("35073.75", "0.01489")
    [event] = [e["data"] for e in shown["audit"] if e["kind"] == "target_moved"]
    assert (event["old_target"], event["new_target"], event["reason"]) == ("35304.6", "35073.75", "manual")
    assert [p["target"] for p in event["old_targets"]] == ["34146.14", "34725.37", "35304.6"]
    assert [(p["target"], p["quantity"]) for p in event["new_targets"]] == [("34477.73", "0.00744"),
                                                                            ("35073.75", "0.00745")]
    assert invariant_breaches(db_path) == []

    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)

    # The old 1R (34146.14, reached at 06:40) is gone. 07:05: high 34512.95 ≥ 34477.73 (no candle before
    # it reaches it, none goes down to the stop): 0.00744 at 34477.73 at its close, 07:10; the stop goes
    # to break-even, 33583.70 (no low after 07:10 reaches it: the lowest, 08:00, is 33808). 11:55 tops
    # at 35045.55; 12:00 (high 35352.63) takes the rest at 35073.75 at 12:05.
    op = show(robson, env, op_id)
    assert [(p["target"], p["quantity"], p["price"], p["at"]) for p in op["partial_exits"]] == [
        (1, "0.00744", "34477.73", "2021-06-09T07:10:00+00:00")]
    assert (op["status"], op["close_reason"], op["closed_at"]) == ("CLOSED", "target", "2021-06-09T12:05:00+00:00")
    assert [(e["data"]["old_stop"], e["data"]["new_stop"]) for e in op["audit"] if e["kind"] == "stop_moved"] == [
        ("32987.68", "33583.7")]
    fill, fee = D("33583.70"), D("0.001")
    parts = [(D("0.00744"), D("34477.73")), (D("0.00745"), D("35073.75"))]
    pnl = sum(((p - fill) * q - p * q * fee for q, p in parts), D(0)) - fill * D("0.01489") * fee
    assert D(op["realized_pnl"]) == pnl
    assert invariant_breaches(db_path) == []


def test_after_a_target_filled_percent_targets_replace_the_rest_and_keep_the_part_taken(robson, env, db_path):
    op_id = opened(robson, env)
    robson("--as-of", "2021-06-09T07:00", "monitor", "--once", env=env)  # target 1: 0.00744 at 34146.14, 06:45

    # Price at 07:00: the 06:55 close, 34203.9. 3 % of 33583.70 = 34591.211 → 34591.21 (toward the entry);
    # 5 % → 35262.885 → 35262.88. Shares of the 0.00745 held: 0.003725 → 0.00372, the rest 0.00373.
    doc = parsed(modify(robson, env, op_id, "3%:50%,5%:rest", "2021-06-09T07:00"))

    assert [(p["number"], p["target"], p["quantity"]) for p in doc["ladder"]["parts"]] == [
        (1, "34146.14", "0.00744"), (2, "34591.21", "0.00372"), (3, "35262.88", "0.00373")]
    assert (doc["operation"]["targets_reached"], doc["operation"]["stop"], doc["operation"]["held"]) == (
        1, "33650.94", "0.00745")
    assert invariant_breaches(db_path) == []

    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)

    # 10:35 (high 34730.00) is the first to reach 34591.21 (07:05 tops at 34512.95): 0.00372 at 10:40;
    # 12:00 (high 35352.63) takes the rest at 35262.88 at 12:05; the stop (33650.94, kept) is never touched.
    op = show(robson, env, op_id)
    assert [(p["target"], p["quantity"], p["price"], p["at"]) for p in op["partial_exits"]] == [
        (1, "0.00744", "34146.14", "2021-06-09T06:45:00+00:00"), (2, "0.00372", "34591.21", "2021-06-09T10:40:00+00:00")]
    assert (op["status"], op["close_reason"], op["closed_at"]) == ("CLOSED", "target", "2021-06-09T12:05:00+00:00")
    assert invariant_breaches(db_path) == []


def test_the_human_output_lists_the_new_targets(robson, env):
    op_id = opened(robson, env)

    result = robson("--as-of", "2021-06-09T06:00", "operation", "modify", op_id, "--targets", "1.5R:50%,2.5R:rest",
                    env=env)

    assert result.exit_code == 0, result.stderr
    assert f"Targets of {op_id} replaced (price 33502.57); 0.01489 BTC held" in result.stdout
    assert "34477.73" in result.stdout and "35073.75" in result.stdout


def test_a_stop_and_targets_change_together(robson, env, db_path):
    op_id = opened(robson, env)

    doc = parsed(modify(robson, env, op_id, "1.5R:50%,2.5R:rest", "2021-06-09T06:00", "--stop", "33200"))

    assert (doc["operation"]["stop"], doc["operation"]["target"]) == ("33200", "35073.75")
    shown = show(robson, env, op_id)
    assert (stop_order(shown)["stop_price"], stop_order(shown)["target_price"]) == ("33200", "35073.75")
    assert sorted(e["kind"] for e in shown["audit"] if e["kind"] in ("stop_moved", "target_moved")) == [
        "stop_moved", "target_moved"]
    assert invariant_breaches(db_path) == []


@pytest.mark.parametrize(("spec", "fragments"), [
    ("1R:50%,2R:40%", ("--targets", "add up to 90%")),
    ("2R:50%,1R:rest", ("--targets", "is not beyond the previous target 2R")),
    ("0.5R:50%,3R:rest", ("target 1 (0.5R) at 33881.71 is not above the price now 34203.9",)),
    ("1R:50%:moon,2R:rest", ("--targets", "then_stop", "must be one of keep")),
    ("1R-50%", ("--targets", "must be AT:CLOSE")),
    ("1R:50%,", ("--targets", "must be AT:CLOSE")),
    ("abc:50%,2R:rest", ("--targets", "must be an R multiple")),
    ("1R:rest,2R:50%", ("--targets", "rest closes what is left")),
    ("1R:50%:previous_target,2R:rest", ("--targets", "no previous target")),
    ("1R:50%,2%:rest", ("--targets", "mixes R and percent")),
])
def test_a_bad_ladder_is_refused_with_one_line_and_nothing_written(robson, env, db_path, spec, fragments):
    op_id = opened(robson, env)
    robson("--as-of", "2021-06-09T07:00", "monitor", "--once", env=env)
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-09T07:00", "operation", "modify", op_id, "--targets", spec, env=env)

    assert_user_error(result, 2, *fragments)
    assert dump_database(db_path) == before


def test_target_and_targets_together_are_refused(robson, env, db_path):
    op_id = opened(robson, env)
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-09T06:00", "operation", "modify", op_id, "--target", "35000",
                    "--targets", "1R:50%,2R:rest", env=env)

    assert_user_error(result, 2, "not both")
    assert dump_database(db_path) == before


def test_a_closed_operation_cannot_have_its_targets_replaced(robson, env, db_path):
    op_id = opened(robson, env)
    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-09T13:00", "operation", "modify", op_id, "--targets", "4R:rest", env=env)

    assert_user_error(result, 2, "CLOSED")
    assert dump_database(db_path) == before
