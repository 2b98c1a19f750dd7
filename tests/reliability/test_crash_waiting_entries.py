"""Entries that wait for their price, SIGKILLed between any two writes, then settled by `monitor --once` or `reconcile`.

The real `robson` process dies (the hook below) just before or just after one function: in
`execute` while it places the entry, in the `monitor` tick that fills it and protects it, in the
tick that cancels it on expiry, and in `plan cancel`. The next `monitor --once` (or, as its own
parametrization, `robson reconcile`) must leave exactly one entry order, exactly one open
protective order for an ACTIVE operation (none PENDING_NEW once filled, none open once the entry
is cancelled), the intent in the state it would have reached without the crash, the operation
as it would have opened, and the paper wallet holding exactly what its orders moved.

The market is the sample one, replayed with --as-of (hand-checked in tests/cli/test_waiting_entries.py):
a limit buy at 32500 placed at 06:01 fills in the 06:45 5m candle at 32500 (maker fee), its OCO
stop 32181.15 / target 33137.7 attached from the start; a stop buy at 32800 triggers in the 06:20
candle and fills at 32816.4 (taker fee), its stop placed by robson once filled; a limit buy at
32000 expiring at 07:00 never fills. Paper fills are whole: an entry is never partly filled here.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from tests.databases import Target
from tests.reliability.helpers import (
    Ledger,
    invariant_breaches,
    invoke,
    ledger_breaches,
    process_env,
    read_ledger,
    run_robson,
    runner_env,
    write_config,
)
from tests.reliability.test_crash_during_execute import KILL_HOOK

pytestmark = pytest.mark.slow

START_USDT = D(1000)  # the default paper wallet
PLANNED, PLACED = "2021-06-22T06:00", "2021-06-22T06:01"
FILL_TICK = "2021-06-22T07:00"  # after both fill candles (06:20 stop, 06:45 limit), before any stop is hit

PAPER = "robson.adapters.paper:PaperExchange"
SESSION = "robson.adapters.store.session:SqlSession"
EXECUTE = "robson.application.execute"

LIMIT = ("--entry", "32500", "--order", "limit", "--expires", "4h")
STOP = ("--entry", "32800", "--order", "stop")
EXPIRING = ("--entry", "32000", "--order", "limit", "--expires", "1h")  # placed 06:00 + 1 h: gone at 07:00

# What each plan becomes once filled and protected, exactly as without a crash (test_waiting_entries.py):
# opened in the candle that filled it (its stop checked from there), at the plan's levels.
FILLED = {
    LIMIT: {"quantity": D("0.01538"), "entry_price": D("32500"), "entry_fee": D("32500") * D("0.01538") * D("0.001"),
            "opened_at": datetime(2021, 6, 22, 6, 45, tzinfo=UTC), "stop": D("32181.15"), "target": D("33137.7")},
    STOP: {"quantity": D("0.01524"), "entry_price": D("32816.4"), "entry_fee": D("32816.4") * D("0.01524") * D("0.001"),
           "opened_at": datetime(2021, 6, 22, 6, 20, tzinfo=UTC)},
}


def as_value(text: str) -> D | datetime:
    """A stored number or time (both are text in the database) as a Decimal or an aware datetime."""
    try:
        return D(text)
    except ArithmeticError:
        return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Point:
    name: str
    plan: tuple[str, ...]
    killed: tuple[str, ...]  # the command that dies: "execute", "monitor" or "cancel", and its market time
    kill_at: str
    left: str  # the intent's status the dead process left
    left_orders: dict[str, str]  # its orders by client id suffix → status
    final: str  # the intent's status after the next monitor or reconcile
    final_orders: dict[str, str]
    recover_at: str = FILL_TICK
    operation: str | None = None  # the operation's status in the end, if one opened
    left_breach: str = ""  # the invariant the dead process left broken (tests.reliability.helpers), if any

    @property
    def id(self) -> str:
        return self.name


WAITING = {"E": "NEW", "S": "PENDING_NEW"}  # a limit entry resting with its protection attached
PROTECTED = {"E": "FILLED", "S": "NEW"}
WITHDRAWN = {"E": "CANCELED", "S": "CANCELED"}
NO_ENTRY = "{0} WORKING with 0 open entry orders"  # filled or cancelled, the intent not yet moved on
PENDING = "{0} EXECUTING with rb-{0}-S still PENDING_NEW"  # placed with its protection, WORKING not yet written

POINTS = [
    # --- execute, at 06:01 ---------------------------------------------------------------------------------------
    Point("execute: while writing EXECUTING", LIMIT, ("execute", PLACED), f"{SESSION}.update_intent:before",
          "VALIDATED", {}, "VALIDATED", {}),
    Point("execute: EXECUTING written, entry not placed", LIMIT, ("execute", PLACED),
          f"{PAPER}.place_entry_order:before", "EXECUTING", {}, "WORKING", WAITING, recover_at="2021-06-22T06:05"),
    Point("execute: entry not placed, recovered once its validation is stale", LIMIT, ("execute", PLACED),
          f"{PAPER}.place_entry_order:before", "EXECUTING", {}, "FAILED", {}),
    Point("execute: inside the entry's transaction", LIMIT, ("execute", PLACED), f"{SESSION}.add_order:after",
          "EXECUTING", {}, "WORKING", WAITING, recover_at="2021-06-22T06:05"),
    Point("execute: limit entry placed, WORKING not written", LIMIT, ("execute", PLACED),
          f"{PAPER}.place_entry_order:after", "EXECUTING", WAITING, "EXECUTED", PROTECTED, operation="ACTIVE",
          left_breach=PENDING),
    Point("execute: stop entry placed, WORKING not written", STOP, ("execute", PLACED),
          f"{PAPER}.place_entry_order:after", "EXECUTING", {"E": "NEW"}, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("execute: inside the WORKING transaction", LIMIT, ("execute", PLACED), f"{SESSION}.update_intent:after:2",
          "EXECUTING", WAITING, "EXECUTED", PROTECTED, operation="ACTIVE",
          left_breach=PENDING),
    Point("execute: WORKING written", LIMIT, ("execute", PLACED), f"{EXECUTE}:_working:after",
          "WORKING", WAITING, "EXECUTED", PROTECTED, operation="ACTIVE"),
    # --- the monitor tick that fills a limit entry, at 07:00 -----------------------------------------------------
    Point("fill: before the fill transaction", LIMIT, ("monitor", FILL_TICK), f"{PAPER}.fill_waiting:before",
          "WORKING", WAITING, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("fill: inside the fill transaction", LIMIT, ("monitor", FILL_TICK), f"{PAPER}.fill_waiting:after",
          "WORKING", WAITING, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("fill: filled, WORKING→EXECUTING not written", LIMIT, ("monitor", FILL_TICK),
          f"{SESSION}.update_intent:before", "WORKING", PROTECTED, "EXECUTED", PROTECTED, operation="ACTIVE",
          left_breach=NO_ENTRY),
    Point("fill: EXECUTING, stop not looked up", LIMIT, ("monitor", FILL_TICK), f"{EXECUTE}:carry_on:before",
          "EXECUTING", PROTECTED, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("fill: stop found, operation not written", LIMIT, ("monitor", FILL_TICK), f"{EXECUTE}:_finish:before",
          "EXECUTING", PROTECTED, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("fill: inside the operation transaction", LIMIT, ("monitor", FILL_TICK), f"{SESSION}.add_operation:before",
          "EXECUTING", PROTECTED, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("fill: operation written, not yet walked", LIMIT, ("monitor", FILL_TICK),
          "robson.application.monitor:monitor_once:before", "EXECUTED", PROTECTED, "EXECUTED", PROTECTED,
          operation="ACTIVE"),
    # --- the monitor tick that fills a stop entry (06:20 candle), at 07:00 ---------------------------------------
    Point("stop fill: inside the fill transaction", STOP, ("monitor", FILL_TICK), f"{PAPER}.fill_waiting:after",
          "WORKING", {"E": "NEW"}, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("stop fill: filled, WORKING→EXECUTING not written", STOP, ("monitor", FILL_TICK),
          f"{SESSION}.update_intent:before", "WORKING", {"E": "FILLED"}, "EXECUTED", PROTECTED, operation="ACTIVE",
          left_breach=NO_ENTRY),
    Point("stop fill: EXECUTING, stop not placed", STOP, ("monitor", FILL_TICK), f"{PAPER}.place_stop_order:before",
          "EXECUTING", {"E": "FILLED"}, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("stop fill: stop placed, operation not written", STOP, ("monitor", FILL_TICK),
          f"{PAPER}.place_stop_order:after", "EXECUTING", PROTECTED, "EXECUTED", PROTECTED, operation="ACTIVE"),
    Point("stop fill: inside the operation transaction", STOP, ("monitor", FILL_TICK),
          f"{SESSION}.add_operation:before", "EXECUTING", PROTECTED, "EXECUTED", PROTECTED, operation="ACTIVE"),
    # --- the monitor tick after the expiry, at 07:05 -------------------------------------------------------------
    Point("expiry: before the cancel", EXPIRING, ("monitor", "2021-06-22T07:05"), f"{PAPER}.cancel_order:before",
          "WORKING", WAITING, "EXPIRED", WITHDRAWN, recover_at="2021-06-22T07:05"),
    Point("expiry: cancelled, EXPIRED not written", EXPIRING, ("monitor", "2021-06-22T07:05"),
          f"{PAPER}.cancel_order:after", "WORKING", WITHDRAWN, "EXPIRED", WITHDRAWN, recover_at="2021-06-22T07:05",
          left_breach=NO_ENTRY),
    Point("expiry: inside the EXPIRED transaction", EXPIRING, ("monitor", "2021-06-22T07:05"),
          f"{SESSION}.update_intent:after", "WORKING", WITHDRAWN, "EXPIRED", WITHDRAWN,
          recover_at="2021-06-22T07:05", left_breach=NO_ENTRY),
    # --- plan cancel at 06:30, before the 06:45 candle would fill it; settled at 07:00, after it -----------------
    Point("cancel: nothing written", LIMIT, ("cancel", "2021-06-22T06:30"), f"{SESSION}.record:before",
          "WORKING", WAITING, "EXECUTED", PROTECTED, operation="ACTIVE"),  # no cancel ever reached the database
    Point("cancel: recorded, not sent", LIMIT, ("cancel", "2021-06-22T06:30"), f"{PAPER}.cancel_order:before",
          "WORKING", WAITING, "CANCELLED", WITHDRAWN),
    Point("cancel: cancelled, CANCELLED not written", LIMIT, ("cancel", "2021-06-22T06:30"),
          f"{PAPER}.cancel_order:after", "WORKING", WITHDRAWN, "CANCELLED", WITHDRAWN, left_breach=NO_ENTRY),
    Point("cancel: inside the CANCELLED transaction", LIMIT, ("cancel", "2021-06-22T06:30"),
          f"{SESSION}.update_intent:after", "WORKING", WITHDRAWN, "CANCELLED", WITHDRAWN, left_breach=NO_ENTRY),
]

RECOVERIES = ("monitor", "reconcile")


def recovery_args(recovery: str, at: str) -> list[str]:
    if recovery == "monitor":
        return ["--as-of", at, "monitor", "--once", "--json"]
    return ["--as-of", at, "reconcile", "--json"]


@dataclass
class Crash:
    point: Point
    recovery: str
    db: Target
    config: Path
    cwd: Path
    intent_id: str
    killed_returncode: int
    killed_stderr: str
    left: Ledger
    recovered_returncode: int
    recovered_stdout: str
    recovered_stderr: str

    def env(self) -> dict[str, str]:
        return process_env(ROBSON_DB=str(self.db), ROBSON_CONFIG=str(self.config))


def suffixes(ledger: Ledger, intent_id: str) -> dict[str, str]:
    """The intent's orders by client id suffix (E, S, S1, X…) → status."""
    return {cid.rsplit("-", 1)[1]: o["status"] for cid, o in ledger.orders_of(intent_id).items()}


def waiting_intent(env: dict[str, str | None], plan: tuple[str, ...], *, execute: bool) -> str:
    """Plan and validate at 06:00 (and execute at 06:01) in this process; return the intent's ID."""
    planned = invoke(["--as-of", PLANNED, "plan", "buy", "BTCUSDT", *plan, "--json"], env)
    assert planned.exit_code == 0, planned.stderr
    intent_id: str = json.loads(planned.stdout)["id"]
    validated = invoke(["--as-of", PLANNED, "validate", intent_id, "--json"], env)
    assert validated.exit_code == 0, validated.stderr
    if execute:
        executed = invoke(["--as-of", PLACED, "execute", intent_id, "--json"], env)
        assert executed.exit_code == 0, executed.stderr
        assert json.loads(executed.stdout)["intent"]["status"] == "WORKING"
    return intent_id


def killed_args(point: Point, intent_id: str) -> list[str]:
    command, at = point.killed
    args = {"execute": ["execute", intent_id], "monitor": ["monitor", "--once"],
            "cancel": ["plan", "cancel", intent_id]}[command]
    return ["--as-of", at, *args, "--json"]


@pytest.fixture(scope="module", params=[(p, r) for p in POINTS for r in RECOVERIES],
                ids=[f"{p.id} / {r}" for p in POINTS for r in RECOVERIES])
def crash(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_factory: Any) -> Crash:
    """Kill the command at the point, keep what it left, then settle with monitor --once or reconcile."""
    point, recovery = request.param
    tmp_path = tmp_path_factory.mktemp("waiting-crash")
    db, config = database_factory(tmp_path), write_config(tmp_path / "robson.yaml", {})
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    intent_id = waiting_intent(runner_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config)), point.plan,
                               execute=point.killed[0] != "execute")
    env = process_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config))

    killed = run_robson(killed_args(point, intent_id), {**env, "PYTHONPATH": str(hook), "KILL_AT": point.kill_at},
                        cwd=tmp_path)
    left = read_ledger(db)
    recovered = run_robson(recovery_args(recovery, point.recover_at), env, cwd=tmp_path)
    return Crash(point, recovery, db, config, tmp_path, intent_id, killed.returncode, killed.stderr, left,
                 recovered.returncode, recovered.stdout, recovered.stderr)


def test_the_command_dies_exactly_at_the_chosen_point(crash: Crash) -> None:
    assert crash.killed_returncode == -signal.SIGKILL, crash.killed_stderr
    assert crash.left.intents[crash.intent_id]["status"] == crash.point.left
    assert suffixes(crash.left, crash.intent_id) == crash.point.left_orders


def test_the_invariants_see_what_the_dead_process_left_half_done(crash: Crash) -> None:
    expected = [crash.point.left_breach.format(crash.intent_id)] if crash.point.left_breach else []

    assert ledger_breaches(crash.left) == expected


def test_the_next_run_settles_the_intent_in_the_state_it_would_have_reached(crash: Crash) -> None:
    assert crash.recovered_returncode == 0, crash.recovered_stdout + crash.recovered_stderr
    ledger = read_ledger(crash.db)

    assert ledger.intents[crash.intent_id]["status"] == crash.point.final
    assert suffixes(ledger, crash.intent_id) == crash.point.final_orders


def test_one_entry_and_one_protective_order_for_an_active_operation(crash: Crash) -> None:
    ledger = read_ledger(crash.db)
    orders = ledger.orders_of(crash.intent_id)
    status = ledger.intents[crash.intent_id]["status"]
    entries = [cid for cid in orders if cid.endswith("-E")]
    protective = [o for cid, o in orders.items() if cid.rsplit("-", 1)[1].startswith("S")]
    operations = ledger.operations_of(crash.intent_id)

    assert len(entries) == (0 if status in ("VALIDATED", "FAILED") else 1)
    assert [op["status"] for op in operations] == ([crash.point.operation] if crash.point.operation else [])
    open_protective = [o for o in protective if o["status"] in ("NEW", "PARTIALLY_FILLED")]
    pending = [o for o in protective if o["status"] == "PENDING_NEW"]
    if crash.point.operation == "ACTIVE":
        assert len(open_protective) == 1 and pending == []
        [stop] = open_protective
        assert stop["quantity"] == operations[0]["quantity"] == orders[entries[0]]["filled_quantity"]
    else:
        assert open_protective == []
        assert len(pending) == (1 if status == "WORKING" and crash.point.plan != STOP else 0)


def test_the_operation_opens_as_it_would_have_without_the_crash(crash: Crash) -> None:
    operations = read_ledger(crash.db).operations_of(crash.intent_id)
    if crash.point.operation is None:
        assert operations == []
        return
    [operation] = operations
    expected = FILLED[crash.point.plan]

    assert {key: as_value(operation[key]) for key in expected} == expected


def test_the_wallet_holds_exactly_what_the_orders_moved(crash: Crash) -> None:
    ledger = read_ledger(crash.db)
    free = {"USDT": START_USDT, "BTC": D(0)}
    locked = {"USDT": D(0), "BTC": D(0)}
    for order in ledger.orders.values():
        filled, price = D(order["filled_quantity"] or 0), D(order["price"] or 0)
        fee = D(order["fee"] or 0)
        if filled:
            cost = D(order["average_price"]) * filled
            sign = 1 if order["side"] == "BUY" else -1
            free["USDT"] -= sign * cost + fee
            free["BTC"] += sign * filled
        if order["status"] in ("NEW", "PARTIALLY_FILLED"):  # an open order locks what it would spend or sell
            remaining = D(order["quantity"]) - filled
            asset, amount = ("USDT", remaining * price) if order["side"] == "BUY" else ("BTC", remaining)
            free[asset] -= amount
            locked[asset] += amount

    assert {asset: ledger.balances.get(asset, (D(0), D(0))) for asset in free} == {
        asset: (free[asset], locked[asset]) for asset in free}
    if crash.point.final in ("EXPIRED", "CANCELLED", "FAILED", "VALIDATED"):
        assert ledger.holding("USDT") == START_USDT and ledger.holding("BTC") == 0  # nothing spent, nothing locked


def test_the_books_hold_every_invariant(crash: Crash) -> None:
    assert invariant_breaches(crash.db) == []


def test_settling_again_changes_nothing(crash: Crash) -> None:
    before = read_ledger(crash.db)

    again = run_robson(recovery_args(crash.recovery, crash.point.recover_at), crash.env(), cwd=crash.cwd)

    assert again.returncode == 0, again.stdout + again.stderr
    assert read_ledger(crash.db) == before


# --- what a crash must not change later: the stop or target the monitor then takes ---------------------------

TARGET_IN_FILL_CANDLE = ("--entry", "32500", "--order", "limit", "--stop", "32400", "--target", "32600")


@dataclass(frozen=True)
class Later:
    name: str
    plan: tuple[str, ...]
    kill_at: str  # in the 07:00 tick that fills the entry
    at: str  # when the next runs settle it: `monitor --once`, or `reconcile` then `monitor --once`


LATER = [
    # Filled at 06:45 in the killed tick; its stop 32181.15 is hit in the 08:15 candle, before the next run.
    Later("filled, then stopped out before the next run (killed before WORKING→EXECUTING)", LIMIT,
          f"{SESSION}.update_intent:before", "2021-06-22T08:30"),
    Later("filled, then stopped out before the next run (killed before the stop is looked up)", LIMIT,
          f"{EXECUTE}:carry_on:before", "2021-06-22T08:30"),
    # The 06:45 fill candle's high 32636.04 reaches the target 32600, maybe before the fill: taken from 06:50 on.
    Later("target reached in the fill candle (killed before the tick walked the operation)", TARGET_IN_FILL_CANDLE,
          "robson.application.monitor:monitor_once:before", FILL_TICK),
]


def settled_books(db: Target, intent_id: str) -> dict[str, Any]:
    """What the trade left, without its ids: the operation, the orders by suffix, the paper wallet."""
    ledger = read_ledger(db)
    [operation] = ledger.operations_of(intent_id)
    orders = {cid.rsplit("-", 1)[1]: {k: o[k] for k in ("status", "type", "quantity", "price", "stop_price",
                                                      "target_price", "filled_quantity", "average_price", "fee")}
              for cid, o in ledger.orders_of(intent_id).items()}
    return {"operation": {k: v for k, v in operation.items() if k not in ("id", "intent_id", "updated_at")},
            "orders": orders, "wallet": ledger.balances}


@pytest.mark.parametrize("recovery", RECOVERIES)
@pytest.mark.parametrize("later", LATER, ids=lambda later: later.name)
def test_after_the_crash_the_monitor_closes_the_operation_exactly_as_without_it(
        later: Later, recovery: str, tmp_path: Path, database_factory: Any) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    books = {}
    for run in ("reference", "crash"):
        directory = tmp_path / run
        directory.mkdir()
        db, config = database_factory(directory), write_config(directory / "robson.yaml", {})
        intent_id = waiting_intent(runner_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config)), later.plan,
                                   execute=True)
        env = process_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config))
        if run == "crash":
            killed = run_robson(["--as-of", FILL_TICK, "monitor", "--once"],
                                {**env, "PYTHONPATH": str(hook), "KILL_AT": later.kill_at}, cwd=directory)
            assert killed.returncode == -signal.SIGKILL, killed.stderr
            assert read_ledger(db).orders_of(intent_id)[f"rb-{intent_id}-E"]["status"] == "FILLED"
            if recovery == "reconcile":
                settled = run_robson(recovery_args("reconcile", later.at), env, cwd=directory)
                assert settled.returncode == 0, settled.stdout + settled.stderr
        ticked = run_robson(recovery_args("monitor", later.at), env, cwd=directory)
        assert ticked.returncode == 0, ticked.stdout + ticked.stderr
        books[run] = settled_books(db, intent_id)
        assert invariant_breaches(db) == []

    assert books["reference"]["operation"]["status"] == "CLOSED"
    assert books["crash"] == books["reference"]
