"""`robson plan` with a ladder of targets on the bundled sample market, every number worked by hand.

At 2021-06-09 05:45 UTC (the demo's plan) BTCUSDT's last price is 33566.91 and the stop below
SMA(9) is 32987.68: one R is 579.23. With 1000 USDT the size is capped at 50 % of capital: 0.01489 BTC.
BTCUSDT trades in 0.01 ticks and 0.00001 steps, 10 USDT at the least; the taker fee is 0.1 %.
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.cli.conftest import assert_user_error, dump_database, floats_in, parsed

AS_OF = "2021-06-09T05:45"
SCALE_OUT = """\
name: scale-out
title: Scale Out
timeframe: 15m
risk_percent: 1
stop: {method: moving_average, ma_period: 9, buffer_percent: 0.1}
targets:
  - {at: 1R, close: 50%, then_stop: breakeven_plus_fees}
  - {at: 2R, close: 25%, then_stop: previous_target}
  - {at: 3R, close: rest}
"""
SMALL_FIRST = SCALE_OUT.replace("name: scale-out", "name: small-first").replace(
    "{at: 1R, close: 50%, then_stop: breakeven_plus_fees}", "{at: 1R, close: 10%}").replace(
    "{at: 2R, close: 25%, then_stop: previous_target}", "{at: 2R, close: 40%, then_stop: breakeven_plus_fees}")
ENTRY, STOP, R = D("33566.91"), D("32987.68"), D("579.23")
FEE = D("0.001")


@pytest.fixture
def strategies(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "scale-out.yaml").write_text(SCALE_OUT)
    (folder / "small-first.yaml").write_text(SMALL_FIRST)
    return {"ROBSON_STRATEGIES_DIR": str(folder)}


def seed(robson) -> None:
    """Plan one trade, so that the database and the paper wallet exist before a refusal is compared."""
    parsed(robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--strategy", "rescue-forces", "--json"))


def plan(robson, env, *args):
    return robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", *args, env=env)


def test_the_plan_prices_each_target_sizes_each_part_and_blends_the_reward(robson, strategies):
    intent = parsed(plan(robson, strategies, "--strategy", "scale-out", "--json"))

    assert floats_in(intent) == []
    assert (intent["entry"], intent["stop"], intent["quantity"]) == (str(ENTRY), str(STOP), "0.01489")
    ladder = intent["ladder"]
    parts = ladder["parts"]
    # 1R, 2R, 3R above the entry: 34146.14, 34725.37, 35304.60; 0.01489 × 50 % = 0.007445 → 0.00744,
    # × 25 % = 0.0037225 → 0.00372, the rest 0.01489 − 0.01116 = 0.00373.
    assert [(p["at"], p["target"], p["quantity"], p["close"]) for p in parts] == [
        ("1R", "34146.14", "0.00744", "50%"), ("2R", "34725.37", "0.00372", "25%"), ("3R", "35304.6", "0.00373", "rest")]
    assert [D(p["target"]) for p in parts] == [ENTRY + R, ENTRY + 2 * R, ENTRY + 3 * R]
    # Blended: (0.00744 × 1 + 0.00372 × 2 + 0.00373 × 3) / 0.01489 = 0.02607 / 0.01489 = 1.7508…
    assert (intent["reward_to_risk"], ladder["blended_reward_to_risk"]) == ("1.75", "1.7508")
    # The single target an execution falls back on is where the last part closes.
    assert (intent["target"], intent["target_source"]) == ("35304.6", "ladder of 3 targets from strategy")
    assert ladder["notes"] == []


def test_the_plan_shows_the_stop_and_the_risk_left_after_each_target(robson, strategies):
    parts = parsed(plan(robson, strategies, "--strategy", "scale-out", "--json"))["ladder"]["parts"]

    # Break-even plus fees: 33566.91 × 1.001 / 0.999 = 33634.111… → 33634.12; then the previous target.
    assert [(p["then_stop"], p["stop_after"], p["risk_left"]) for p in parts] == [
        ("breakeven_plus_fees", "33634.12", "0"), ("previous_target", "34146.14", "0"), ("keep", None, "0")]
    entry_fee = ENTRY * D("0.01489") * FEE
    taken_1 = D("0.00744") * R - D("34146.14") * D("0.00744") * FEE
    rest_at_break_even = D("0.00745") * (D("33634.12") - ENTRY) - D("33634.12") * D("0.00745") * FEE
    assert D(parts[0]["pnl_if_stopped"]) == taken_1 + rest_at_break_even - entry_fee == D("3.8057529345")
    taken_2 = D("0.00372") * 2 * R - D("34725.37") * D("0.00372") * FEE
    rest_at_target_1 = D("0.00373") * R - D("34146.14") * D("0.00373") * FEE
    assert D(parts[1]["pnl_if_stopped"]) == taken_1 + taken_2 + rest_at_target_1 - entry_fee
    taken_3 = D("0.00373") * 3 * R - D("35304.60") * D("0.00373") * FEE
    assert D(parts[2]["pnl_if_stopped"]) == taken_1 + taken_2 + taken_3 - entry_fee


def test_the_plan_prints_the_ladder_for_a_person_and_plan_show_prints_it_again(robson, strategies):
    result = plan(robson, strategies, "--strategy", "scale-out")

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "targets         3 (below), the last part closing at 35304.6  blended R:R 1.75 (ladder of 3 targets from " \
           "strategy)" in out
    assert "Targets (blended R:R 1.75)" in out
    rows = [" ".join(cell.strip() for cell in line.split("│")[1:-1]) for line in out.splitlines() if line.startswith("│")]
    assert rows == [
        "1 1R 34146.14 0.00744 BTC (50%) 1.00 33634.12 (break-even + fees) 0.00 3.81",
        "2 2R 34725.37 0.00372 BTC (25%) 2.00 34146.14 (previous target) 0.00 9.77",
        "3 3R 35304.6 0.00373 BTC (rest) 3.00 - (all closed) 0.00 14.09 (every target filled)",
    ]
    intent_id = out.split()[1]
    shown = robson("plan", "show", intent_id, env=strategies)
    assert shown.exit_code == 0 and "Targets (blended R:R 1.75)" in shown.stdout
    assert parsed(robson("plan", "show", intent_id, "--json", env=strategies))["ladder"]["parts"][0]["target"] == \
        "34146.14"


def test_a_part_below_the_minimum_order_merges_into_the_next_and_the_plan_says_so(robson, strategies):
    # 100 USDT: the size is capped at 50 USDT, 50 / 33566.91 = 0.0014895… → 0.00148. Its 10 % is 0.000148 →
    # 0.00014, worth 0.00014 × 32987.68 = 4.618… at the stop (< 10): it joins 40 % (0.000592 → 0.00059),
    # which then closes 0.00073; the rest is 0.00148 − 0.00014 − 0.00059 = 0.00075.
    result = plan(robson, strategies, "--strategy", "small-first", "--capital", "100", "--json")

    intent = parsed(result)
    ladder = intent["ladder"]
    assert intent["quantity"] == "0.00148"
    assert [(p["quantity"], p["merged_into"]) for p in ladder["parts"]] == [("0", 2), ("0.00073", None),
                                                                            ("0.00075", None)]
    note = ("target 1 (1R, 10%): at the stop 32987.68, 0.00014 BTC is worth 4.62 USDT, below the minimum order value "
            "of 10 USDT; merged into target 2, which closes 0.00073 BTC")
    assert ladder["notes"] == [note]
    # (0.00073 × 2 + 0.00075 × 3) / 0.00148 = 0.00371 / 0.00148 = 2.5067…
    assert intent["reward_to_risk"] == "2.51"

    human = plan(robson, strategies, "--strategy", "small-first", "--capital", "100")
    assert "1 1R 34146.14 0 (merged into #2) 1.00 - - -" in " ".join(human.stdout.replace("│", " ").split())
    assert f"note: {note}" in " ".join(human.stdout.split())


def test_a_given_target_replaces_the_ladder(robson, strategies):
    intent = parsed(plan(robson, strategies, "--strategy", "scale-out", "--target", "35000", "--json"))

    assert (intent["target"], intent["target_source"], intent["ladder"]) == ("35000", "given", None)


def test_a_single_target_plan_has_no_ladder(robson):
    intent = parsed(robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--strategy", "rescue-forces", "--json"))

    assert (intent["target"], intent["reward_to_risk"], intent["ladder"]) == ("34725.37", "2.00", None)


def test_a_bad_ladder_is_refused_naming_the_file_and_field_and_nothing_is_written(robson, strategies, tmp_path,
                                                                                  db_path):
    (tmp_path / "mine" / "scale-out.yaml").write_text(SCALE_OUT.replace("close: 25%", "close: 60%"))
    seed(robson)
    before = dump_database(db_path)

    result = plan(robson, strategies, "--strategy", "scale-out")

    assert_user_error(result, 2, f"{tmp_path / 'mine' / 'scale-out.yaml'}: field 'targets': the parts before rest "
                                 "add up to 110% (50% + 60%): nothing is left for rest")
    assert dump_database(db_path) == before


def test_a_target_inside_its_own_break_even_stop_is_refused_at_plan_time(robson, strategies, tmp_path, db_path):
    # 0.1 % above 33566.91 is 33600.47, under the break-even plus fees of 33634.12.
    (tmp_path / "mine" / "tight.yaml").write_text(SCALE_OUT.replace("name: scale-out", "name: tight").replace(
        "at: 1R, close: 50%", "at: 0.1%, close: 50%").replace("at: 2R", "at: 1%").replace("at: 3R", "at: 2%"))
    seed(robson)
    before = dump_database(db_path)

    result = plan(robson, strategies, "--strategy", "tight")

    assert_user_error(result, 2, "target 1 (0.1%) at 33600.47 is not beyond its stop afterwards, break-even + fees "
                                 "at 33634.12: that stop would fire at once")
    assert dump_database(db_path) == before


def test_strategy_list_and_show_give_the_ladder(robson, strategies):
    doc = parsed(robson("strategy", "show", "scale-out", "--json", env=strategies))
    listed = robson("strategy", "list", env=strategies)
    shown = robson("strategy", "show", "scale-out", env=strategies)

    assert doc["targets"] == [{"at": "1R", "close": "50%", "then_stop": "breakeven_plus_fees"},
                              {"at": "2R", "close": "25%", "then_stop": "previous_target"},
                              {"at": "3R", "close": "rest", "then_stop": "keep"}]
    assert parsed(robson("strategy", "show", "all-in", "--json"))["targets"] is None
    assert "1R 50% → 2R 25% → 3R rest" in listed.stdout
    assert ("1R closes 50%, then stop → break-even + fees; 2R closes 25%, then stop → previous target; "
            "3R closes rest") in " ".join(shown.stdout.split())


def test_the_readme_shows_the_merge_example_as_robson_prints_it(robson, strategies):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    command = "$ robson --as-of 2021-06-09T05:45 plan buy BTCUSDT --strategy small-first --capital 100"
    block = readme[readme.index(command):].split("```")[0].splitlines()
    shown = block[block.index("…") + 1:]

    result = robson(*command.split()[2:], env=strategies)

    assert result.exit_code == 0, result.stderr
    printed = [line.rstrip() for line in result.stdout.splitlines()]
    start = next(i for i, line in enumerate(printed) if line.startswith("targets"))
    assert printed[start:start + len(shown)] == shown
