"""A real `robson monitor --once` SIGKILLed at each step of a live stop replace, then rerun: one stop order."""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from pathlib import Path

import pytest

from tests.live.conftest import Live
from tests.live.test_live_monitor import (
    PAST_RECV_WINDOW_MS,
    executed,
    open_protective,
    opened_ms,
    show,
    trailing_candles,
)
from tests.reliability.test_crash_during_execute import KILL_HOOK

pytestmark = pytest.mark.slow

EXCHANGE = "robson.adapters.binance.exchange:BinanceExchange"

# (step, where the process dies, whether Binance could still receive the order it was about to send)
REPLACE_STEPS = [
    ("after the move is written, before the old stop is cancelled", f"{EXCHANGE}.cancel_order:before", False),
    ("after the old stop is cancelled, before the new one is sent", f"{EXCHANGE}.cancel_order:after", False),
    ("after the new stop's send is recorded, before it goes out", f"{EXCHANGE}.place_stop_order:before", True),
    ("after the new stop is placed, before the store knows it", f"{EXCHANGE}.place_stop_order:after", False),
]


def killed_monitor(live: Live, tmp_path: Path, kill_at: str):
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    return live.run_process("monitor", "--once", "--json", PYTHONPATH=str(hook), KILL_AT=kill_at)


def run_again(live: Live, send_pending: bool):
    if send_pending:
        # The send was recorded: until Binance's recvWindow has passed the monitor refuses to send it again.
        waiting = live.run_process("monitor", "--once", "--json")
        assert waiting.returncode == 1, waiting.stderr
        [error] = json.loads(waiting.stdout)["errors"]
        assert "could still be executed" in error["message"]
        assert open_protective(live) == []
        live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    return live.run_process("monitor", "--once", "--json")


@pytest.mark.parametrize(("step", "kill_at", "send_pending"), REPLACE_STEPS, ids=[s[0] for s in REPLACE_STEPS])
def test_a_monitor_killed_while_moving_a_live_stop_leaves_exactly_one_protective_order(
        live: Live, tmp_path: Path, step: str, kill_at: str, send_pending: bool) -> None:
    op = executed(live, "--strategy", "rescue-forces")
    trailing_candles(live, opened_ms(op), Decimal("32100"))
    live.server.set_price("BTCUSDT", "31200")

    killed = killed_monitor(live, tmp_path, kill_at)
    again = run_again(live, send_pending)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    [stop] = open_protective(live)
    assert (stop["clientOrderId"], Decimal(stop["stopPrice"])) == (f"rb-{op['intent_id']}-S1", Decimal("31000"))
    assert len([o for o in live.server.orders() if o["type"] == "STOP_LOSS_LIMIT"]) == 2  # S cancelled, S1 open
    stored = show(live, op["id"])
    assert (stored["status"], Decimal(stored["stop"])) == ("ACTIVE", Decimal("31000"))
    assert [e["data"]["new_stop"] for e in stored["audit"] if e["kind"] == "stop_moved"] == ["31000"]
    assert {o["client_order_id"]: o["status"] for o in stored["orders"] if "-S" in o["client_order_id"]} == {
        f"rb-{op['intent_id']}-S": "CANCELED", f"rb-{op['intent_id']}-S1": "NEW"}


def test_a_monitor_killed_after_replacing_a_stop_cancelled_by_hand_adopts_it_on_restart(live: Live,
                                                                                     tmp_path: Path) -> None:
    op = executed(live)
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-S")

    killed = killed_monitor(live, tmp_path, f"{EXCHANGE}.place_stop_order:after")
    again = run_again(live, send_pending=False)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    [stop] = open_protective(live)
    assert stop["clientOrderId"] == f"rb-{op['intent_id']}-S1"
    assert len([e for e in show(live, op["id"])["audit"] if e["kind"] == "stop_placed"]) == 2  # S, then S1


def test_a_monitor_killed_after_the_exit_at_market_closes_the_operation_once_on_restart(live: Live,
                                                                                      tmp_path: Path) -> None:
    op = executed(live)
    live.server.cancel_by_hand(f"rb-{op['intent_id']}-S")
    live.server.set_price("BTCUSDT", "28900")  # through the stop: the monitor must exit at market

    killed = killed_monitor(live, tmp_path, f"{EXCHANGE}.place_market_order:after")
    again = run_again(live, send_pending=False)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert len(live.orders("MARKET")) == 2  # the entry and one exit
    closed = show(live, op["id"])
    assert (closed["status"], closed["close_reason"], Decimal(closed["exit_price"])) == (
        "CLOSED", "stop", Decimal("28900"))
    assert live.server.open_orders() == []
