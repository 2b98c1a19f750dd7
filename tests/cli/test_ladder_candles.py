"""The paper monitor's ladder walk through `monitor --once`, on crafted candles imported after the sample market.

The bundled BTCUSDT data ends with the candle closing at 2021-07-17 21:10 UTC; these tests import
5m candles from there (`robson data import`). 21:10 opens, trades and closes at 31700: a plan at
21:15 buys 0.01 BTC with the stop at 31400 (1 R = 300 from the planned 31700), the `ladder`
strategy's targets 1R 32000 (50 %: 0.005, then break-even plus fees), 2R 32300 (25 %: 0.0025,
then the previous target) and 3R 32600 (the rest, 0.0025). Execute at 21:15 fills at the 21:15
open plus the 0.05 % paper slippage: 31700 × 1.0005 = 31715.85; fee 0.1 %. Break-even plus fees:
31715.85 × 1.001 / 0.999 = 31779.3472… → 31779.35 (up to the tick, so the rest nets at least zero).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from tests.cli.conftest import parsed
from tests.reliability.helpers import invariant_breaches

LADDER = """\
name: ladder
title: Ladder (tests)
timeframe: 5m
risk_percent: 1
stop: {method: fixed_percent, percent: 1}
targets:
  - {at: 1R, close: 50%, then_stop: breakeven_plus_fees}
  - {at: 2R, close: 25%, then_stop: previous_target}
  - {at: 3R, close: rest}
"""
START = datetime(2021, 7, 17, 21, 10, tzinfo=UTC)
FLAT = (31700, 31700, 31700, 31700)  # the 21:10 candle: the price the plan reads at 21:15


def ms(minutes_after_start: int) -> int:
    return int(START.timestamp() * 1000) + minutes_after_start * 60_000


@pytest.fixture
def env(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "ladder.yaml").write_text(LADDER)
    return {"ROBSON_STRATEGIES_DIR": str(folder)}


def opened_on(robson, env, tmp_path, *candles: tuple[float, float, float, float]) -> str:
    """Import FLAT then candles (open, high, low, close) every 5m from 21:10; open the position at 21:15."""
    rows = [[ms(5 * i), *c, 10] for i, c in enumerate((FLAT, *candles))]
    (tmp_path / "crafted.json").write_text(json.dumps(rows))
    parsed(robson("data", "import", "crafted.json", "--symbol", "BTCUSDT", "--timeframe", "5m", "--json", env=env))
    intent = parsed(robson("--as-of", "2021-07-17T21:15", "plan", "buy", "BTCUSDT", "0.01", "--stop", "31400",
                           "--strategy", "ladder", "--json", env=env))
    assert [p["target"] for p in intent["ladder"]["parts"]] == ["32000", "32300", "32600"]
    assert robson("--as-of", "2021-07-17T21:15", "validate", intent["id"], env=env).exit_code == 0
    op = parsed(robson("--as-of", "2021-07-17T21:15", "execute", intent["id"], "--json", env=env))["operation"]
    assert (op["entry_price"], op["quantity"], op["stop"]) == ("31715.85", "0.01", "31400")
    return op["id"]


def show(robson, env, op_id: str) -> dict:
    return parsed(robson("operation", "show", op_id, "--json", env=env))


def test_a_candle_touching_the_stop_and_a_target_closes_at_the_stop(robson, env, tmp_path, db_path):
    # 21:15: high 32050 reaches target 1 (32000), low 31350 the stop (31400): the stop first, all of it,
    # at 31400 less the 0.05 % slippage = 31384.30, at the candle's close, 21:20; no part taken.
    op_id = opened_on(robson, env, tmp_path, (31700, 32050, 31350, 31700))

    robson("--as-of", "2021-07-17T21:30", "monitor", "--once", env=env)

    op = show(robson, env, op_id)
    assert (op["status"], op["close_reason"], op["exit_price"], op["closed_at"]) == (
        "CLOSED", "stop", "31384.3", "2021-07-17T21:20:00+00:00")
    assert op["partial_exits"] == []
    fill, exit_ = D("31715.85"), D("31384.30")
    assert D(op["realized_pnl"]) == (exit_ - fill) * D("0.01") - fill * D("0.01") * D("0.001") - \
        exit_ * D("0.01") * D("0.001")
    assert invariant_breaches(db_path) == []


def test_one_candle_takes_two_targets_and_moves_the_stop_by_both_rules(robson, env, tmp_path, db_path):
    # 21:15: low 31650 above the stop; high 32350 reaches 32000 and 32300: 0.005 at 32000 and 0.0025 at
    # 32300, both at 21:20; the stop goes to break-even plus fees (31779.35) then the previous target (32000).
    op_id = opened_on(robson, env, tmp_path, (31700, 32350, 31650, 32300))

    doc = parsed(robson("--as-of", "2021-07-17T21:20", "monitor", "--once", "--json", env=env))

    assert [(p["target"], p["quantity"], p["price"]) for p in doc["operations"][0]["partial_exits"]] == [
        (1, "0.005", "32000"), (2, "0.0025", "32300")]
    op = show(robson, env, op_id)
    assert (op["status"], op["held"], op["stop"], op["targets_reached"]) == ("ACTIVE", "0.0025", "32000", 2)
    assert [p["at"] for p in op["partial_exits"]] == ["2021-07-17T21:20:00+00:00"] * 2
    assert [(e["data"]["old_stop"], e["data"]["new_stop"]) for e in op["audit"] if e["kind"] == "stop_moved"] == [
        ("31400", "31779.35"), ("31779.35", "32000")]
    assert invariant_breaches(db_path) == []  # the paper stop covers the 0.0025 held, at 32000


def test_a_break_even_move_protects_from_the_next_candle_on(robson, env, tmp_path, db_path):
    # 21:15: high 32050 takes target 1 (0.005 at 32000, 21:20); its low 31650 is below the new stop
    # (31779.35), but that stop protects from the next candle: 21:15 does not stop out. 21:20: low 31700
    # ≤ 31779.35: the rest, 0.005, at 31779.35 less the 0.05 % slippage = 31763.4603… → 31763.46, at 21:25.
    op_id = opened_on(robson, env, tmp_path, (31700, 32050, 31650, 32000), (31900, 31950, 31700, 31750))

    first = parsed(robson("--as-of", "2021-07-17T21:20", "monitor", "--once", "--json", env=env))
    assert (show(robson, env, op_id)["status"], first["operations"][0]["partial_exits"][0]["price"]) == (
        "ACTIVE", "32000")
    robson("--as-of", "2021-07-17T21:30", "monitor", "--once", env=env)

    op = show(robson, env, op_id)
    assert (op["status"], op["close_reason"], op["closed_at"]) == ("CLOSED", "stop", "2021-07-17T21:25:00+00:00")
    assert [(p["target"], p["quantity"], p["price"]) for p in op["partial_exits"]] == [(1, "0.005", "32000")]
    fill, fee, rest = D("31715.85"), D("0.001"), D("31763.46")
    pnl = (D("32000") - fill) * D("0.005") - D("32000") * D("0.005") * fee \
        + (rest - fill) * D("0.005") - rest * D("0.005") * fee - fill * D("0.01") * fee
    assert D(op["realized_pnl"]) == pnl
    assert invariant_breaches(db_path) == []
