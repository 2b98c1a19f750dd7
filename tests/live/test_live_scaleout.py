"""A three-part ladder LIVE on the loopback Binance: one OCO per part, each target taken as a part, the rest moved.

The plan: buy BTCUSDT at 30000 (the server's price), stop 29000 (1R = 1000), the `scale-out` ladder
1R / 2R / 3R closing 50 % / 25 % / the rest, the stop to break-even plus fees after target 1 and to
target 1 after target 2. `execute --live` places three OCOs (`-P1S`, `-P2S`, `-P3S`), each for its
part at the position's stop and its own target; after each target fills, the monitor books the part
at Binance's price and commission and moves the other parts' OCOs (next generation, same target).
After every step the quantity held equals the quantity the open OCOs protect.
"""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import Live
from tests.live.test_live_monitor import PAST_RECV_WINDOW_MS, monitor, show
from tests.live.test_live_monitor_crash import EXCHANGE, killed_monitor

SCALE_OUT = """\
name: scale-out
title: Scale Out
timeframe: 15m
risk_percent: 1
stop: {method: fixed_percent, percent: 2}
targets:
  - {at: 1R, close: 50%, then_stop: breakeven_plus_fees}
  - {at: 2R, close: 25%, then_stop: previous_target}
  - {at: 3R, close: rest}
"""
TARGETS = {1: Decimal("31000"), 2: Decimal("32000"), 3: Decimal("33000")}
PARTS = [Decimal("0.01663"), Decimal("0.00831"), Decimal("0.00832")]  # 0.03326 BTC: 50 %, 25 % down to the step, rest
BREAK_EVEN_PLUS_FEES = Decimal("30060.10")  # (30000 + 0.999 entry fee / 0.03326) / 0.999 = 30060.096…, up to the tick


@pytest.fixture
def ladder(live: Live, tmp_path: Path) -> Live:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "scale-out.yaml").write_text(SCALE_OUT, encoding="utf-8")
    live.settings["ROBSON_STRATEGIES_DIR"] = str(folder)
    return live


def executed(live: Live) -> dict[str, Any]:
    planned = live.ok("plan", "buy", "BTCUSDT", "--strategy", "scale-out", "--stop", "29000")
    assert live.ok("validate", planned["id"])["verdict"] in ("PASS", "WARN")
    return live.ok("execute", planned["id"], "--live", "--acknowledge-risk")["operation"]


def part_ocos(live: Live) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """The open OCOs on the server by their stop leg's id: (quantity, stop, target)."""
    open_ = live.server.open_orders()
    makers = {o["orderListId"]: o for o in open_ if o["type"] == "LIMIT_MAKER"}
    return {o["clientOrderId"].split("-", 3)[3]: (Decimal(o["origQty"]), Decimal(o["stopPrice"]),
                                                  Decimal(makers[o["orderListId"]]["price"]))
            for o in open_ if o["type"] == "STOP_LOSS_LIMIT"}


def held(live: Live, op_id: str) -> Decimal:
    return Decimal(show(live, op_id)["held"])


def assert_protected(live: Live, op_id: str) -> None:
    """What the operation holds is what the open OCOs protect, and what the wallet holds."""
    protected = sum((q for q, _, _ in part_ocos(live).values()), Decimal(0))
    assert protected == held(live, op_id)


def test_a_three_part_ladder_is_protected_part_by_part_and_each_target_moves_the_rest(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    parts = PARTS
    assert sum(parts) == Decimal(op["quantity"])
    assert part_ocos(live) == {f"P{i}S": (parts[i - 1], Decimal("29000"), TARGETS[i]) for i in (1, 2, 3)}
    assert_protected(live, op["id"])

    live.server.set_price("BTCUSDT", "31000")  # target 1's LIMIT_MAKER fills; its stop leg expires
    monitor(live)
    after_1 = show(live, op["id"])
    trade = [t for t in live.server.trades() if not t["isBuyer"]][-1]
    assert after_1["status"] == "ACTIVE" and Decimal(after_1["stop"]) == BREAK_EVEN_PLUS_FEES
    [first] = after_1["partial_exits"]
    assert (Decimal(first["quantity"]), Decimal(first["price"]), Decimal(first["fee"])) == (
        parts[0], Decimal(trade["price"]), Decimal(trade["commission"]))
    assert part_ocos(live) == {f"P{i}S1": (parts[i - 1], BREAK_EVEN_PLUS_FEES, TARGETS[i]) for i in (2, 3)}
    assert_protected(live, op["id"])

    live.server.set_price("BTCUSDT", "32000")
    monitor(live)
    after_2 = show(live, op["id"])
    assert Decimal(after_2["stop"]) == TARGETS[1] and len(after_2["partial_exits"]) == 2
    assert part_ocos(live) == {"P3S2": (parts[2], TARGETS[1], TARGETS[3])}
    assert_protected(live, op["id"])

    live.server.set_price("BTCUSDT", "33000")
    monitor(live)
    closed = show(live, op["id"])
    sells = [t for t in live.server.trades() if not t["isBuyer"]]
    assert [Decimal(t["price"]) for t in sells] == [TARGETS[1], TARGETS[2], TARGETS[3]]
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "target")
    entry, entry_fee = Decimal(op["entry_price"]), Decimal(op["entry_fee"])
    expected = sum(((Decimal(t["price"]) - entry) * Decimal(t["qty"]) - Decimal(t["commission"]) for t in sells),
                   Decimal(0)) - entry_fee
    assert Decimal(closed["realized_pnl"]) == expected
    assert live.server.open_orders() == []
