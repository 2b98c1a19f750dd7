"""Cron's jobs on one SQLite file at once: scan, monitor --once, execute and operation close as separate processes.

Replays the demo morning (scripts/demo.sh) on the sample market: Rescue Forces detects on the
2021-06-09 05:15 BTCUSDT candle (scan 05:30) and confirms on the next (scan 05:45); a Rescue Forces
position entered at 05:45 trails at 06:50 and closes at its target on the 10:35 candle (by 10:45). Each round, while two scans
and two monitors run, another process executes a validated intent and another closes an operation by hand.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.databases import fetch
from tests.reliability.helpers import BIG_ACCOUNT, ROBSON, invoke, process_env, read_ledger, runner_env, write_config

pytestmark = pytest.mark.slow

ENTRY_AT = "2021-06-09T05:45"
# (scan time, monitor time) per round: detect, then confirm (and auto-enter) and close at target, then again.
ROUNDS = (("2021-06-09T05:30", "2021-06-09T07:00"), ("2021-06-09T05:45", "2021-06-09T10:45"),
          ("2021-06-09T05:45", "2021-06-09T10:45"))
FAR = ("--stop", "31000", "--target", "40000")  # neither is reached that morning: only a person closes it
START_USDT = Decimal(BIG_ACCOUNT["paper"]["balances"]["USDT"])
ZERO = Decimal(0)


def ok(env: dict[str, str | None], *args: str) -> dict[str, Any]:
    result = invoke([*args, "--json"], env)
    assert result.exit_code == 0, f"{args}: {result.stderr}"
    return json.loads(result.stdout)


def validated(env: dict[str, str | None], *plan_args: str) -> str:
    """Plan a BTCUSDT buy at the entry time and validate it; return the intent ID."""
    intent_id = ok(env, "--as-of", ENTRY_AT, "plan", "buy", "BTCUSDT", *plan_args)["id"]
    assert ok(env, "--as-of", ENTRY_AT, "validate", intent_id)["verdict"] in ("PASS", "WARN")
    return intent_id


def executed(env: dict[str, str | None], *plan_args: str) -> str:
    """Plan, validate and execute (paper) at the entry time; return the operation ID."""
    intent_id = validated(env, *plan_args)
    return str(ok(env, "--as-of", ENTRY_AT, "execute", intent_id)["operation"]["id"])


def together(commands: list[tuple[str, list[str]]], env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    """Start every (job, args) as its own robson process at once; return each job's exit code and output."""
    children = [(job, args, subprocess.Popen([str(ROBSON), *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)) for job, args in commands]
    finished = []
    for job, args, child in children:
        stdout, stderr = child.communicate(timeout=120)
        finished.append({"job": job, "args": args, "exit": child.returncode, "stdout": stdout, "stderr": stderr})
    return finished


@pytest.fixture(scope="module")
def morning(tmp_path_factory: pytest.TempPathFactory, database_factory: Any) -> dict[str, Any]:
    """Run the rounds once; return every job's result, what each round set up, and the database."""
    tmp = tmp_path_factory.mktemp("cron")
    db, config = database_factory(tmp), write_config(tmp / "robson.yaml", BIG_ACCOUNT)
    env_in = runner_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config))
    env_out = process_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config), NO_COLOR="1")
    runs: list[dict[str, Any]] = []
    setups: list[dict[str, str]] = []
    for scan_at, monitor_at in ROUNDS:
        setup = {"watched": executed(env_in, "--strategy", "rescue-forces"),  # the monitors close it at 07:15
                 "to_execute": validated(env_in, *FAR), "to_close": executed(env_in, *FAR)}
        setups.append(setup)
        scan = ["--as-of", scan_at, "scan", "--strategy", "rescue-forces", "--symbols", "BTCUSDT", "--json"]
        monitor = ["--as-of", monitor_at, "monitor", "--once", "--json"]
        runs += together([
            ("scan", scan), ("monitor", monitor), ("execute", ["--as-of", ENTRY_AT, "execute", setup["to_execute"]]),
            ("close", ["--as-of", monitor_at, "operation", "close", setup["to_close"]]),
            ("scan", scan), ("monitor", monitor),
        ], env_out, tmp)
    return {"db": db, "runs": runs, "setups": setups}


def protective(orders: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in orders.values() if o["side"] == "SELL" and o["type"] != "MARKET"]


def test_every_job_exits_0_or_4_when_its_twin_is_already_running(morning: dict[str, Any]) -> None:
    for run in morning["runs"]:
        allowed = (0, 4) if run["job"] in ("scan", "monitor") else (0,)
        assert run["exit"] in allowed, run
        if run["exit"] == 4:
            assert f"robson {run['job']} is already running" in run["stderr"], run
            assert json.loads(run["stdout"])["error"]["code"] == 4, run  # under --json a refusal is a document too
    assert len(morning["runs"]) == 6 * len(ROUNDS)
    monitors = [json.loads(r["stdout"]) for r in morning["runs"] if r["job"] == "monitor" and r["exit"] == 0]
    assert [doc["errors"] for doc in monitors] == [[]] * len(monitors)
    assert all(any(r["exit"] == 0 for r in morning["runs"][i:i + 6] if r["job"] == job)
               for i in range(0, len(morning["runs"]), 6) for job in ("scan", "monitor"))


def test_no_job_ever_sees_database_is_locked_or_a_traceback(morning: dict[str, Any]) -> None:
    for run in morning["runs"]:
        assert "locked" not in run["stderr"].lower(), run
        assert "Traceback" not in run["stderr"] and "internal error" not in run["stderr"], run


def test_each_operation_ends_where_its_job_put_it(morning: dict[str, Any]) -> None:
    ledger = read_ledger(morning["db"])
    status = {op_id: (op["status"], op["close_reason"]) for op_id, op in ledger.operations.items()}

    for setup in morning["setups"]:
        assert status[setup["watched"]] == ("CLOSED", "target")
        assert status[setup["to_close"]] == ("CLOSED", "manual")
        [operation] = ledger.operations_of(setup["to_execute"])
        assert status[operation["id"]] == ("ACTIVE", None)
    assert len(ledger.operations) == 3 * len(ROUNDS)


def test_closed_operations_have_one_filled_exit_and_active_ones_one_open_stop(morning: dict[str, Any]) -> None:
    ledger = read_ledger(morning["db"])

    for operation in ledger.operations.values():
        orders = ledger.orders_of(operation["intent_id"])
        [entry] = [o for o in orders.values() if o["side"] == "BUY"]
        assert (entry["type"], entry["status"]) == ("MARKET", "FILLED")
        exits = [o for o in orders.values() if o["side"] == "SELL" and o["status"] == "FILLED"]
        still_open = [o for o in orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]
        if operation["status"] == "CLOSED":
            assert len(exits) == 1 and still_open == [], orders
            assert exits[0]["filled_quantity"] == entry["filled_quantity"]
        else:
            assert exits == [] and len(still_open) == 1 and len(protective(orders)) == 1, orders
            assert still_open[0]["quantity"] == entry["filled_quantity"]


def test_the_signal_is_recorded_once_and_entered_once(morning: dict[str, Any]) -> None:
    signals = [tuple(row.values()) for row in fetch(
        morning["db"], "SELECT strategy, pattern, symbol, timeframe, candle_open_time, status, intent_id FROM signals")]
    ledger = read_ledger(morning["db"])
    from_scans = [i for i in ledger.intents.values() if i["source"] == "pattern"]

    [(strategy, pattern, symbol, timeframe, _, status, intent_id)] = signals
    assert (strategy, pattern, symbol, timeframe, status) == (
        "rescue-forces", "ma4-crosses-above-ma9", "BTCUSDT", "15m", "CONFIRMED")
    assert [i["id"] for i in from_scans] == [intent_id]
    assert from_scans[0]["status"] == "VALIDATED"  # a scan never executes
    detected = [s for r in morning["runs"] if r["job"] == "scan" and r["exit"] == 0
                for s in json.loads(r["stdout"])["detected"]]
    assert len(detected) == 1


def test_paper_balances_account_for_every_fill_exactly(morning: dict[str, Any]) -> None:
    ledger = read_ledger(morning["db"])
    usdt, btc, locked = START_USDT, ZERO, ZERO
    for order in ledger.orders.values():
        if order["status"] in ("NEW", "PARTIALLY_FILLED"):
            locked += Decimal(order["quantity"])
        if order["status"] != "FILLED":
            continue
        assert order["fee_asset"] == "USDT"
        quantity = Decimal(order["filled_quantity"])
        notional = quantity * Decimal(order["average_price"])
        if order["side"] == "BUY":
            usdt, btc = usdt - notional - Decimal(order["fee"]), btc + quantity
        else:
            usdt, btc = usdt + notional - Decimal(order["fee"]), btc - quantity

    assert ledger.holding("USDT") == usdt
    assert ledger.holding("BTC") == btc
    assert ledger.balances["BTC"][1] == locked  # every coin still held is locked by its stop
