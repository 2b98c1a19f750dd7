"""A real `robson execute --live` process SIGKILLed at each step, then reconcile or execute again: one entry, at most one stop."""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from pathlib import Path

import pytest

from tests.live.conftest import Live
from tests.reliability.test_crash_during_execute import KILL_HOOK

pytestmark = pytest.mark.slow

EXCHANGE = "robson.adapters.binance.exchange:BinanceExchange"
PAST_RECV_WINDOW_MS = 70_000

# (step, where the process dies, whether Binance can still receive the order it was about to send)
STEPS = [
    ("before the entry is sent", f"{EXCHANGE}.place_market_order:before", True),
    ("after the entry is sent, before its answer is stored", f"{EXCHANGE}.place_market_order:after", False),
    ("after the fill, before the stop is sent", f"{EXCHANGE}.place_stop_order:before", True),
    ("after the stop is sent, before the operation exists", f"{EXCHANGE}.place_stop_order:after", False),
]


@pytest.mark.parametrize("rerun", ["reconcile", "execute"])
@pytest.mark.parametrize(("step", "kill_at", "send_pending"), STEPS, ids=[s[0] for s in STEPS])
def test_a_killed_live_execution_ends_with_exactly_one_entry_and_one_stop(live: Live, tmp_path: Path, step: str,
                                                                          kill_at: str, send_pending: bool,
                                                                          rerun: str) -> None:
    planned = live.planned_and_validated()
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")

    killed = live.run_process("execute", planned["id"], "--live", "--acknowledge-risk", "--json",
                              PYTHONPATH=str(hook), KILL_AT=kill_at)
    if send_pending:
        # robson recorded the send; until Binance's recvWindow has passed it refuses to send again.
        waiting = live.run_process("reconcile", "--json")
        assert waiting.returncode == 1, waiting.stderr
        assert json.loads(waiting.stdout)["settled"][0]["outcome"] == "waiting"
        live.server.clock_offset_ms = PAST_RECV_WINDOW_MS
    args = ["reconcile", "--json"] if rerun == "reconcile" else ["execute", planned["id"], "--live",
                                                                  "--acknowledge-risk", "--json"]
    again = live.run_process(*args)

    assert killed.returncode == -signal.SIGKILL
    assert again.returncode == 0, again.stderr
    assert len(live.orders("MARKET")) == 1
    assert len(live.orders("STOP_LOSS_LIMIT")) == 1
    [entry] = live.orders("MARKET")
    show = live.ok("plan", "show", planned["id"])
    assert show["status"] == "EXECUTED"
    [operation] = live.ok("operation", "list")["operations"]
    assert operation["status"] == "ACTIVE"
    assert Decimal(operation["entry_price"]) == Decimal(entry["cummulativeQuoteQty"]) / Decimal(entry["executedQty"])
