"""Scale-out exits on paper: a three-target ladder replayed on the bundled sample market, checked by hand.

The demo's trade: at 2021-06-09 05:45 UTC a `scale-out` buy of BTCUSDT (stop below SMA(9) at
32987.68, 1000 USDT capped at 50 %: 0.01489 BTC) fills at 33583.70 (the 33566.91 close plus the
0.05 % paper slippage, up to the 0.01 tick); fee 0.1 %. The plan's targets stay where it put them
(an R target over a chart stop does not follow the fill): 1R 34146.14, 2R 34725.37, 3R 35304.60,
closing 0.00744, 0.00372 and the rest 0.00373 BTC.

The 5m candles after it (BTCUSDT, the sample market), read off the data by hand:

- 06:40: high 34149.48 ≥ 34146.14, low 33725.39 above the stop: target 1 fills at 34146.14 at the
  candle's close, 06:45; the stop moves to break-even plus fees, 33583.70 × 1.001 / 0.999 =
  33650.93… → 33650.94, from the next candle on;
- no candle until 10:35 reaches 34725.37 nor goes down to 33650.94;
- 10:35: high 34730.00 ≥ 34725.37: target 2 fills at 34725.37 at 10:40; the stop moves to the
  previous target, 34146.14; the 10:35 low 34357.27 is above it;
- 12:00: high 35352.63 ≥ 35304.60: target 3 takes the rest at 35304.60 at 12:05; the operation
  closes as `target`.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.cli.conftest import assert_user_error, dump_database, parsed
from tests.cli.test_plan_ladder import AS_OF, SCALE_OUT
from tests.reliability.helpers import invariant_breaches

FEE = D("0.001")
FILL, QUANTITY = D("33583.70"), D("0.01489")
PARTS = [(D("0.00744"), D("34146.14")), (D("0.00372"), D("34725.37")), (D("0.00373"), D("35304.60"))]


@pytest.fixture
def env(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "scale-out.yaml").write_text(SCALE_OUT)
    return {"ROBSON_STRATEGIES_DIR": str(folder)}


def opened(robson, env) -> str:
    intent = parsed(robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--strategy", "scale-out", "--json", env=env))
    assert robson("--as-of", AS_OF, "validate", intent["id"], env=env).exit_code == 0
    executed = parsed(robson("--as-of", AS_OF, "execute", intent["id"], "--json", env=env))
    return executed["operation"]["id"]


def show(robson, env, op_id: str) -> dict:
    return {"operation": parsed(robson("operation", "show", op_id, "--json", env=env))}


def test_a_three_target_ladder_takes_each_part_at_its_candle_and_moves_the_stop(robson, env, db_path):
    op_id = opened(robson, env)

    first = parsed(robson("--as-of", "2021-06-09T07:00", "monitor", "--once", "--json", env=env))
    op = show(robson, env, op_id)["operation"]
    assert first["operations"][0]["partial_exits"][0]["price"] == "34146.14"
    assert (op["status"], op["held"], op["stop"]) == ("ACTIVE", "0.00745", "33650.94")
    assert [(p["quantity"], p["price"], p["at"]) for p in op["partial_exits"]] == [
        ("0.00744", "34146.14", "2021-06-09T06:45:00+00:00")]
    assert invariant_breaches(db_path) == []  # the paper stop covers the 0.00745 held

    robson("--as-of", "2021-06-09T11:00", "monitor", "--once", env=env)
    op = show(robson, env, op_id)["operation"]
    assert (op["held"], op["stop"], op["targets_reached"]) == ("0.00373", "34146.14", 2)
    assert invariant_breaches(db_path) == []

    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)
    op = show(robson, env, op_id)["operation"]
    assert (op["status"], op["close_reason"], op["closed_at"]) == ("CLOSED", "target", "2021-06-09T12:05:00+00:00")
    assert [(p["target"], p["quantity"], p["price"], p["at"]) for p in op["partial_exits"]] == [
        (1, "0.00744", "34146.14", "2021-06-09T06:45:00+00:00"), (2, "0.00372", "34725.37", "2021-06-09T10:40:00+00:00")]
    # One trade: P&L = every part's gain less its own fee, less the entry fee; the exit is the weighted average.
    entry_fee = FILL * QUANTITY * FEE
    pnl = sum(((price - FILL) * qty - price * qty * FEE for qty, price in PARTS), D(0)) - entry_fee
    assert D(op["realized_pnl"]) == pnl
    assert D(op["exit_price"]) == (sum((q * p for q, p in PARTS), D(0)) / QUANTITY).quantize(D("1E-8"))
    assert D(op["exit_fee"]) == sum((p * q * FEE for q, p in PARTS), D(0))
    assert invariant_breaches(db_path) == []


def test_one_monitor_run_over_the_whole_window_gives_the_same_fills(robson, env, db_path):
    op_id = opened(robson, env)

    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)

    op = show(robson, env, op_id)["operation"]
    assert [(p["quantity"], p["price"], p["at"]) for p in op["partial_exits"]] == [
        ("0.00744", "34146.14", "2021-06-09T06:45:00+00:00"), ("0.00372", "34725.37", "2021-06-09T10:40:00+00:00")]
    assert (op["status"], op["closed_at"]) == ("CLOSED", "2021-06-09T12:05:00+00:00")
    assert invariant_breaches(db_path) == []


def test_a_part_closed_by_hand_shrinks_the_stop_and_resizes_the_coming_targets(robson, env, db_path):
    op_id = opened(robson, env)

    closed = parsed(robson("--as-of", "2021-06-09T06:00", "operation", "close", op_id, "--part", "20%", "--json",
                           env=env))

    # 20 % of 0.01489 = 0.002978 → 0.00297 down to the step; 0.01192 still held under the stop.
    assert (closed["held"], closed["partial_exits"][0]["quantity"], closed["partial_exits"][0]["reason"]) == (
        "0.01192", "0.00297", "manual")
    assert invariant_breaches(db_path) == []
    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)
    op = show(robson, env, op_id)["operation"]
    # The coming parts keep their shares of what is held: 0.01192 × 0.00744 / 0.01489 = 0.005956… → 0.00595, …
    assert [(p["target"], p["quantity"]) for p in op["partial_exits"]] == [(None, "0.00297"), (1, "0.00595"),
                                                                             (2, "0.00297")]
    assert op["status"] == "CLOSED"
    assert invariant_breaches(db_path) == []


@pytest.mark.parametrize(("part", "fragment"), [
    ("150%", "must be above 0% and below 100%"),
    ("0%", "must be above 0% and below 100%"),
    ("abc", "--part must be a number"),
    ("0.00001", "below the minimum order value"),
    ("0.02", "not less than the 0.01489 held"),
    ("0.0148", "would leave"),
])
def test_a_bad_part_is_refused_with_one_line_and_nothing_written(robson, env, db_path, part, fragment):
    op_id = opened(robson, env)
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-09T06:00", "operation", "close", op_id, "--part", part, env=env)

    assert_user_error(result, 2, fragment)
    assert dump_database(db_path) == before
