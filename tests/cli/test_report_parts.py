"""`robson report` counts a scaled-out operation as one trade and lists the parts it took.

The trade is tests/cli/test_scale_out.py's three-target ladder on the sample market: 0.00744 BTC
at 34146.14 (06:45), 0.00372 at 34725.37 (10:40), the rest 0.00373 at 35304.60 (12:05), entered
0.01489 at 33583.70 with the stop 32987.68 (1 R = 0.01489 × 596.02 = 8.8747378 USDT), fee 0.1 %.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.cli.conftest import floats_in, parsed
from tests.cli.test_scale_out import FEE, FILL, PARTS, QUANTITY, SCALE_OUT, opened


@pytest.fixture
def env(tmp_path):
    """The scale-out strategy in a user folder (tests/cli/test_scale_out.py's)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "scale-out.yaml").write_text(SCALE_OUT)
    return {"ROBSON_STRATEGIES_DIR": str(folder)}


def test_a_scaled_out_trade_counts_once_with_its_partial_exits(robson, env):
    op_id = opened(robson, env)
    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)

    doc = parsed(robson("report", "--json", env=env))

    assert floats_in(doc) == []
    pnl = sum(((price - FILL) * qty - price * qty * FEE for qty, price in PARTS), D(0)) - FILL * QUANTITY * FEE
    risk = QUANTITY * (FILL - D("32987.68"))
    assert doc["overall"]["trades"] == 1
    assert D(doc["overall"]["total_pnl"]) == pnl
    [trade] = doc["trades"]
    assert (trade["id"], D(trade["realized_pnl"]), trade["close_reason"]) == (op_id, pnl, "target")
    assert D(trade["realized_r"]) == (pnl / risk).quantize(D("0.0001"))
    assert [(p["number"], p["target"], p["at"], p["quantity"], p["price"], D(p["fee"]), p["reason"])
            for p in trade["partial_exits"]] == [
        (1, 1, "2021-06-09T06:45:00+00:00", "0.00744", "34146.14", D("0.00744") * D("34146.14") * FEE, "target"),
        (2, 2, "2021-06-09T10:40:00+00:00", "0.00372", "34725.37", D("0.00372") * D("34725.37") * FEE, "target")]


def test_the_human_report_lists_the_parts_under_their_trade(robson, env):
    op_id = opened(robson, env)
    robson("--as-of", "2021-06-09T13:00", "monitor", "--once", env=env)

    result = robson("report", env=env, )

    assert result.exit_code == 0, result.stderr
    assert "Partial exits" in result.stdout
    assert op_id in result.stdout
    for text in ("2021-06-09 06:45", "34146.14", "0.00744", "2021-06-09 10:40", "34725.37", "0.00372", "target 1"):
        assert text in result.stdout
