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


# --- a monitor killed between a target's fill and the move of the other parts ------------------------

# (step, where the process dies, whether Binance could still receive the OCO it was about to send)
MOVE_STEPS = [
    ("after target 1 is booked, before any OCO is moved", f"{EXCHANGE}.cancel_order:before", False),
    ("after part 2's OCO is cancelled, before its next one is sent", f"{EXCHANGE}.cancel_order:after", False),
    ("after part 2's next OCO is recorded as sent, before it goes out", f"{EXCHANGE}.place_stop_order:before", True),
    ("after part 2's next OCO is placed, before the store knows it", f"{EXCHANGE}.place_stop_order:after", False),
]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "kill_at", "send_pending"), MOVE_STEPS, ids=[s[0] for s in MOVE_STEPS])
def test_a_monitor_killed_while_following_a_target_fill_leaves_each_part_protected_once(
        ladder: Live, tmp_path: Path, step: str, kill_at: str, send_pending: bool) -> None:
    live = ladder
    op = executed(live)
    live.server.set_price("BTCUSDT", "31000")

    killed = killed_monitor(live, tmp_path, kill_at)
    assert killed.returncode == -signal.SIGKILL
    if send_pending:  # until Binance's recvWindow has passed, the recorded send is never sent again
        waiting = live.run_process("monitor", "--once", "--json")
        assert waiting.returncode == 1, waiting.stderr
        assert "could still be executed" in json.loads(waiting.stdout)["errors"][0]["message"]
        live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    again = live.run_process("monitor", "--once", "--json")

    assert again.returncode == 0, again.stderr
    stored = show(live, op["id"])
    [first] = stored["partial_exits"]
    assert (Decimal(first["quantity"]), Decimal(first["price"])) == (PARTS[0], TARGETS[1])
    assert Decimal(stored["stop"]) == BREAK_EVEN_PLUS_FEES
    assert part_ocos(live) == {f"P{i}S1": (PARTS[i - 1], BREAK_EVEN_PLUS_FEES, TARGETS[i]) for i in (2, 3)}
    assert_protected(live, op["id"])
    # No duplicate: the three first OCOs, then one next generation for each part still held.
    stops = sorted(o["clientOrderId"].split("-", 3)[3] for o in live.orders("STOP_LOSS_LIMIT"))
    assert stops == ["P1S", "P2S", "P2S1", "P3S", "P3S1"]
    assert [e["data"]["new_stop"] for e in stored["audit"] if e["kind"] == "stop_moved"] == ["30060.1"]
    again_ = monitor(live)  # a further check changes nothing
    assert again_["errors"] == [] and sorted(part_ocos(live)) == ["P2S1", "P3S1"]


# --- closing by hand ------------------------------------------------------------------------------------


def test_closing_all_of_a_laddered_operation_cancels_every_part_oco_then_sells_what_is_held(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    live.server.set_price("BTCUSDT", "31000")
    monitor(live)  # target 1 taken: parts 2 and 3 rest under their next OCOs

    closed = live.ok("operation", "close", op["id"])

    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "manual")
    assert live.server.open_orders() == []
    sells = [t for t in live.server.trades() if not t["isBuyer"]]
    assert [(Decimal(t["qty"]), Decimal(t["price"])) for t in sells] == [
        (PARTS[0], TARGETS[1]), (PARTS[1] + PARTS[2], Decimal("31000"))]


def hand_part_sizes() -> list[Decimal]:
    """50 % of the 0.03326 held sold by hand: the three coming parts re-sized pro rata to the 0.01663 left."""
    return [Decimal("0.00831"), Decimal("0.00415"), Decimal("0.00417")]  # 0.008315 ↓, 0.004155 ↓, the rest


def test_closing_a_part_by_hand_reduces_each_part_oco_in_place_then_sells_it_at_market(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    live.server.set_price("BTCUSDT", "30500")

    after = live.ok("operation", "close", op["id"], "--part", "50%")

    assert after["status"] == "ACTIVE" and Decimal(after["held"]) == Decimal("0.01663")
    [part] = after["partial_exits"]
    sell = [t for t in live.server.trades() if not t["isBuyer"]][-1]
    assert (Decimal(part["quantity"]), Decimal(part["price"]), Decimal(part["fee"])) == (
        Decimal("0.01663"), Decimal("30500"), Decimal(sell["commission"]))
    # Reduced where they rest (keepPriority): the same ids, the same stop and targets, smaller.
    assert part_ocos(live) == {f"P{i}S": (size, Decimal("29000"), TARGETS[i])
                               for i, size in zip((1, 2, 3), hand_part_sizes(), strict=True)}
    assert_protected(live, op["id"])
    assert monitor(live)["errors"] == [] and sorted(part_ocos(live)) == ["P1S", "P2S", "P3S"]

    live.server.set_price("BTCUSDT", "31000")  # target 1 takes its re-sized part
    monitor(live)
    assert Decimal(show(live, op["id"])["held"]) == Decimal("0.00832")
    assert_protected(live, op["id"])


HAND_STEPS = [
    ("after part 1's OCO is reduced, before the others", f"{EXCHANGE}.reduce_order:after"),
    ("after the part is sold, before it is booked", f"{EXCHANGE}.place_market_order:after"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "kill_at"), HAND_STEPS, ids=[s[0] for s in HAND_STEPS])
def test_a_close_part_killed_half_way_leaves_every_part_protected_after_the_next_check(
        ladder: Live, tmp_path: Path, step: str, kill_at: str) -> None:
    live = ladder
    op = executed(live)
    live.server.set_price("BTCUSDT", "30500")
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    from tests.reliability.test_crash_during_execute import KILL_HOOK

    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    killed = live.run_process("operation", "close", op["id"], "--part", "50%", PYTHONPATH=str(hook), KILL_AT=kill_at)
    again = live.run_process("monitor", "--once", "--json")

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert_protected(live, op["id"])
    sold = [t for t in live.server.trades() if not t["isBuyer"]]
    stored = show(live, op["id"])
    assert [Decimal(p["quantity"]) for p in stored["partial_exits"]] == [Decimal(t["qty"]) for t in sold]
    assert len(live.orders("MARKET")) == 1 + len(sold)  # the entry, and the part sold once if it was sent


# --- stops, vanished OCOs, refusals -----------------------------------------------------------------


def test_the_stop_taking_every_part_closes_the_operation_as_stop_summing_the_parts(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    live.server.set_price("BTCUSDT", "28990")  # every part's stop leg triggers and fills at its limit or better

    monitor(live)

    closed = show(live, op["id"])
    sells = [t for t in live.server.trades() if not t["isBuyer"]]
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "stop")
    assert sum((Decimal(t["qty"]) for t in sells), Decimal(0)) == Decimal(op["quantity"])
    expected = sum(((Decimal(t["price"]) - Decimal(op["entry_price"])) * Decimal(t["qty"]) - Decimal(t["commission"])
                    for t in sells), Decimal(0)) - Decimal(op["entry_fee"])
    assert Decimal(closed["realized_pnl"]) == expected
    assert live.server.open_orders() == []


def test_a_part_oco_cancelled_by_hand_is_placed_again_under_its_next_id(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-P2S")

    report = monitor(live)

    assert report["errors"] == []
    assert part_ocos(live) == {"P1S": (PARTS[0], Decimal("29000"), TARGETS[1]),
                               "P2S1": (PARTS[1], Decimal("29000"), TARGETS[2]),
                               "P3S": (PARTS[2], Decimal("29000"), TARGETS[3])}
    assert_protected(live, op["id"])


def test_a_part_oco_refused_at_execute_cancels_the_parts_placed_and_exits_at_market(ladder: Live) -> None:
    from tests.live.binance_server import Fault

    live = ladder
    planned = live.ok("plan", "buy", "BTCUSDT", "--strategy", "scale-out", "--stop", "29000")
    live.ok("validate", planned["id"])
    oco = "/api/v3/orderList/oco"
    refuse = Fault.error(-2010, "Order would trigger immediately.")
    live.server.inject(Fault.first(lambda: live.server.inject(refuse, "POST", oco)), "POST", oco)

    result = live.run("execute", planned["id"], "--live", "--acknowledge-risk")

    assert result.exit_code == 1 and "closed at market" in result.stderr, result.stderr
    assert live.server.open_orders() == []
    [operation] = live.ok("operation", "list")["operations"]
    closed = show(live, operation["id"])
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "stop_placement_failed")
    [sell] = [t for t in live.server.trades() if not t["isBuyer"]]
    assert Decimal(sell["qty"]) == Decimal(closed["quantity"])


def test_moving_the_stop_of_a_laddered_live_operation_by_hand_is_refused(ladder: Live) -> None:
    live = ladder
    op = executed(live)

    result = live.run("operation", "modify", op["id"], "--stop", "29500")

    assert result.exit_code != 0 and "part by part" in result.stderr
    assert sorted(part_ocos(live)) == ["P1S", "P2S", "P3S"]


def test_a_part_target_filled_in_part_books_it_and_gives_the_rest_of_that_part_an_oco_of_its_own(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    # Binance expires the OCO's stop leg at the take-profit's first fill: the rest of part 1 has no stop under it.
    live.server.fill_partly(f"rb-{op['intent_id']}-P1T", Decimal("0.01"), "31000")
    live.server.set_price("BTCUSDT", "30000")

    assert monitor(live)["errors"] == []

    stored = show(live, op["id"])
    assert [(Decimal(p["quantity"]), Decimal(p["price"])) for p in stored["partial_exits"]] == [
        (Decimal("0.01"), TARGETS[1])]
    assert Decimal(stored["stop"]) == Decimal("29000")  # target 1 is not done until all its part is taken
    assert part_ocos(live) == {"P1S1": (PARTS[0] - Decimal("0.01"), Decimal("29000"), TARGETS[1]),
                               "P2S": (PARTS[1], Decimal("29000"), TARGETS[2]),
                               "P3S": (PARTS[2], Decimal("29000"), TARGETS[3])}
    assert_protected(live, op["id"])


def test_the_rest_of_a_part_whose_oco_vanished_beyond_its_target_is_sold_as_that_targets_fill(ladder: Live) -> None:
    live = ladder
    op = executed(live)
    live.server.fill_partly(f"rb-{op['intent_id']}-P1T", Decimal("0.01"), "31000")
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-P1T")  # the rest of part 1 is left without its OCO
    live.server.set_price("BTCUSDT", "31050")  # an OCO for the rest could not rest its take-profit there

    assert monitor(live)["errors"] == []

    stored = show(live, op["id"])
    assert [(Decimal(p["quantity"]), p["reason"]) for p in stored["partial_exits"]] == [
        (Decimal("0.01"), "target"), (PARTS[0] - Decimal("0.01"), "target")]
    assert stored["partial_exits"][1]["client_order_id"] == f"rb-{op['intent_id']}-P1X"
    assert Decimal(stored["stop"]) == BREAK_EVEN_PLUS_FEES
    assert part_ocos(live) == {f"P{i}S1": (PARTS[i - 1], BREAK_EVEN_PLUS_FEES, TARGETS[i]) for i in (2, 3)}
    assert_protected(live, op["id"])


# --- trailing and time exits apply to every part -----------------------------------------------------------


def with_rule(live: Live, rule: str) -> None:
    folder = Path(live.settings["ROBSON_STRATEGIES_DIR"])
    (folder / "scale-out.yaml").write_text(SCALE_OUT + rule, encoding="utf-8")


def test_a_trailed_stop_moves_every_parts_oco(ladder: Live) -> None:
    from tests.live.test_live_monitor import opened_ms, trailing_candles

    live = ladder
    with_rule(live, "trailing: hand_span\n")
    op = executed(live)
    trailing_candles(live, opened_ms(op), Decimal("31100"))  # one span (1000) of profit: break-even plus fees
    # (the candle's high passes target 1 on the chart, but only Binance's fill takes a part live)
    live.server.set_price("BTCUSDT", "30500")
    monitor(live)

    stop = Decimal(show(live, op["id"])["stop"])
    assert Decimal("30000") < stop < Decimal("30500")
    assert part_ocos(live) == {f"P{i}S1": (PARTS[i - 1], stop, TARGETS[i]) for i in (1, 2, 3)}
    assert_protected(live, op["id"])


def test_a_time_exit_cancels_every_parts_oco_and_sells_what_is_held(ladder: Live) -> None:
    live = ladder
    with_rule(live, "time_exit: {candles: 2}\n")
    op = executed(live)
    live.server.set_price("BTCUSDT", "31000")
    monitor(live)  # target 1 taken
    live.server.clock_offset_ms += 3_600_000  # four 15m candles later
    live.server.set_price("BTCUSDT", "30700")

    monitor(live)

    closed = show(live, op["id"])
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "time_exit")
    assert live.server.open_orders() == []
    sells = [t for t in live.server.trades() if not t["isBuyer"]]
    assert [(Decimal(t["qty"]), Decimal(t["price"])) for t in sells] == [
        (PARTS[0], TARGETS[1]), (PARTS[1] + PARTS[2], Decimal("30700"))]
