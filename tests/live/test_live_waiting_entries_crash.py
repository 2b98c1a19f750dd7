"""A real robson SIGKILLed at each step of a LIVE waiting entry, then the monitor: one entry, one protective order.

The steps: the entry being sent and placed (execute), a full fill being recorded, a part fill's rest
being cancelled and its own stop (-S1) being sent and placed, a stop entry's stop being placed. After the
kill, `monitor --once` (waiting out Binance's recvWindow where a send was recorded but may not have gone
out) must end with exactly one entry order, exactly one protective order live on Binance covering what
is held, and the intent EXECUTED (or WORKING while its order still waits).
"""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import Live
from tests.live.test_live_monitor import PAST_RECV_WINDOW_MS, open_protective
from tests.reliability.test_crash_during_execute import KILL_HOOK

pytestmark = pytest.mark.slow

EXCHANGE = "robson.adapters.binance.exchange:BinanceExchange"
SESSION = "robson.adapters.store.session:SqlSession"


def hooked(live: Live, tmp_path: Path, kill_at: str, *args: str) -> Any:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    return live.run_process(*args, PYTHONPATH=str(hook), KILL_AT=kill_at)


def intent_status(live: Live, intent_id: str) -> str:
    return live.ok("plan", "show", intent_id)["status"]


def monitor_until_settled(live: Live, send_pending: bool) -> dict[str, Any]:
    """Run the monitor; if a send was recorded before the kill, it must refuse to resend until recvWindow passed."""
    if send_pending:
        waiting = live.run_process("monitor", "--once", "--json")
        assert waiting.returncode == 1, waiting.stderr
        assert "could still be executed" in waiting.stdout + waiting.stderr
        live.server.clock_offset_ms += PAST_RECV_WINDOW_MS
    again = live.run_process("monitor", "--once", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    return json.loads(again.stdout)


def entries_on_server(live: Live, intent_id: str) -> list[dict[str, Any]]:
    return [o for o in live.server.orders() if o["clientOrderId"] == f"rb-{intent_id}-E"]


def live_protection(live: Live, intent_id: str) -> list[dict[str, Any]]:
    return [o for o in open_protective(live) if o["status"] != "PENDING_NEW"
            and o["clientOrderId"].startswith(f"rb-{intent_id}-S")]


def assert_one_entry_and_one_protective_order(live: Live, intent_id: str) -> None:
    assert len(entries_on_server(live, intent_id)) == 1
    [stop] = live_protection(live, intent_id)
    btc = live.server.balances()["BTC"]
    held = btc.free + btc.locked
    assert Decimal(0) <= held - Decimal(stop["origQty"]) < Decimal("0.00001")  # all of it, down to the lot step
    assert intent_status(live, intent_id) == "EXECUTED"


def placed(live: Live, *plan_args: str) -> str:
    planned = live.planned_and_validated("--entry", "29800", "--order", "limit", *plan_args)
    live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    return planned["id"]


EXECUTE_STEPS = [
    ("entry send recorded, not sent", f"{EXCHANGE}.place_entry_order:before", True),
    ("entry placed on Binance, WORKING not written", f"{EXCHANGE}.place_entry_order:after", False),
]


@pytest.mark.parametrize(("step", "kill_at", "send_pending"), EXECUTE_STEPS, ids=[s[0] for s in EXECUTE_STEPS])
def test_execute_killed_while_placing_a_waiting_entry_leaves_it_placed_once(live: Live, tmp_path: Path, step: str,
                                                                           kill_at: str, send_pending: bool) -> None:
    planned = live.planned_and_validated("--entry", "29800", "--order", "limit")

    killed = hooked(live, tmp_path, kill_at, "execute", planned["id"], "--live", "--acknowledge-risk", "--json")
    assert killed.returncode == -signal.SIGKILL
    assert intent_status(live, planned["id"]) == "EXECUTING"
    monitor_until_settled(live, send_pending)

    assert intent_status(live, planned["id"]) == "WORKING"
    assert len(entries_on_server(live, planned["id"])) == 1
    live.server.set_price("BTCUSDT", "29700")
    live.ok("monitor", "--once")
    assert_one_entry_and_one_protective_order(live, planned["id"])


FILL_STEPS = [
    # Inside the transaction writing WORKING → EXECUTING: rolled back, the fill is seen again.
    ("inside the fill's transaction", f"{SESSION}.update_intent:after", "WORKING"),
    # Its first audit write comes after that transaction committed: EXECUTING, nothing protected by robson yet.
    ("EXECUTING written, the fill not yet recorded", f"{SESSION}.record:before", "EXECUTING"),
]


@pytest.mark.parametrize(("step", "kill_at", "left"), FILL_STEPS, ids=[s[0] for s in FILL_STEPS])
def test_a_monitor_killed_after_a_full_fill_was_seen_finishes_with_the_otoco_protection(
        live: Live, tmp_path: Path, step: str, kill_at: str, left: str) -> None:
    intent_id = placed(live)
    live.server.set_price("BTCUSDT", "29700")

    killed = hooked(live, tmp_path, kill_at, "monitor", "--once", "--json")
    assert killed.returncode == -signal.SIGKILL
    assert intent_status(live, intent_id) == left
    monitor_until_settled(live, send_pending=False)

    assert_one_entry_and_one_protective_order(live, intent_id)
    assert live_protection(live, intent_id)[0]["clientOrderId"] == f"rb-{intent_id}-S"  # the OTOCO's own


PART_STEPS = [
    ("the rest cancelled, nothing written", f"{EXCHANGE}.cancel_order:after", False),
    ("the part's stop send recorded, not sent", f"{EXCHANGE}.place_stop_order:before", True),
    ("the part's stop placed, not stored", f"{EXCHANGE}.place_stop_order:after", False),
]


@pytest.mark.parametrize(("step", "kill_at", "send_pending"), PART_STEPS, ids=[s[0] for s in PART_STEPS])
def test_a_monitor_killed_while_protecting_a_part_fill_ends_with_one_stop_for_the_part(
        live: Live, tmp_path: Path, step: str, kill_at: str, send_pending: bool) -> None:
    intent_id = placed(live)
    live.server.fill_partly(f"rb-{intent_id}-E", "0.1")

    killed = hooked(live, tmp_path, kill_at, "monitor", "--once", "--json")
    assert killed.returncode == -signal.SIGKILL
    monitor_until_settled(live, send_pending)

    assert_one_entry_and_one_protective_order(live, intent_id)
    [stop] = live_protection(live, intent_id)
    assert (stop["clientOrderId"], Decimal(stop["origQty"])) == (f"rb-{intent_id}-S1", Decimal("0.0999"))
    assert len([o for o in live.server.orders() if o["clientOrderId"] == f"rb-{intent_id}-S1"]) == 1


def test_a_monitor_killed_after_placing_a_stop_entrys_stop_adopts_it(live: Live, tmp_path: Path) -> None:
    planned = live.planned_and_validated("--entry", "30500", "--order", "stop")
    live.ok("execute", planned["id"], "--live", "--acknowledge-risk")
    live.server.set_price("BTCUSDT", "30600")

    killed = hooked(live, tmp_path, f"{EXCHANGE}.place_stop_order:after", "monitor", "--once", "--json")
    assert killed.returncode == -signal.SIGKILL
    monitor_until_settled(live, send_pending=False)

    assert_one_entry_and_one_protective_order(live, planned["id"])
    assert len([o for o in live.server.orders() if o["clientOrderId"] == f"rb-{planned['id']}-S"]) == 1


CANCEL_STEPS = [
    ("expiry: the cancel recorded, not sent", f"{EXCHANGE}.cancel_order:before", "EXPIRED"),
    ("expiry: cancelled on Binance, not written", f"{EXCHANGE}.cancel_order:after", "EXPIRED"),
]


@pytest.mark.parametrize(("step", "kill_at", "ends"), CANCEL_STEPS, ids=[s[0] for s in CANCEL_STEPS])
def test_a_monitor_killed_while_cancelling_an_expired_entry_ends_it_expired_with_nothing_left(
        live: Live, tmp_path: Path, step: str, kill_at: str, ends: str) -> None:
    intent_id = placed(live, "--expires", "1h")
    live.server.clock_offset_ms += 61 * 60_000

    killed = hooked(live, tmp_path, kill_at, "monitor", "--once", "--json")
    assert killed.returncode == -signal.SIGKILL
    assert intent_status(live, intent_id) == "WORKING"
    monitor_until_settled(live, send_pending=False)

    assert intent_status(live, intent_id) == ends
    assert live.server.open_orders() == []
    assert live.server.balances()["USDT"].locked == 0
    assert len(entries_on_server(live, intent_id)) == 1
