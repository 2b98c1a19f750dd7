"""Eight processes plan, validate and execute on one database (SQLite file or PostgreSQL) at once; one intent is
executed twice at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.databases import Target, is_postgresql
from tests.reliability.helpers import (
    BIG_ACCOUNT,
    SCRUBBED_PREFIXES,
    entry_cost,
    planned_and_validated,
    read_ledger,
    runner_env,
    write_config,
)

pytestmark = pytest.mark.slow

WORKERS = 8
JOURNEYS = 25
OBSERVERS = (0, 3)  # these workers also read status and the queue while the others write
START_USDT = Decimal(BIG_ACCOUNT["paper"]["balances"]["USDT"])
WAIT = 60  # seconds a child waits for its siblings before giving up


def use_database(db: str, config: str) -> None:
    """In a child process: point robson at the shared database and config, nothing inherited."""
    for key in [k for k in os.environ if k.startswith(SCRUBBED_PREFIXES)]:
        del os.environ[key]
    os.environ.update({"ROBSON_DB": db, "ROBSON_CONFIG": config})


def journeys(worker: int, db: str, config: str, start_together: Any, reports: Any) -> None:
    """In a child process: JOURNEYS × (plan -> validate -> execute) through the real CLI, reporting every run."""
    try:
        use_database(db, config)
        from typer.testing import CliRunner

        from robson.cli.app import app

        runner = CliRunner()
        runs: list[dict[str, Any]] = []
        executed: list[dict[str, str]] = []

        def run(*args: str) -> Any:
            result = runner.invoke(app, list(args))
            runs.append({"worker": worker, "args": args, "exit": result.exit_code, "stderr": result.stderr,
                         "stdout": "" if result.exit_code == 0 else result.stdout[-500:]})
            return result

        start_together.wait(timeout=WAIT)
        for _ in range(JOURNEYS):
            planned = run("plan", "buy", "BTCUSDT", "--json")
            if planned.exit_code != 0:
                continue
            intent_id = json.loads(planned.stdout)["id"]
            if run("validate", intent_id, "--json").exit_code != 0:
                continue
            done = run("execute", intent_id, "--json")
            if done.exit_code == 0:
                doc = json.loads(done.stdout)
                executed.append({"intent": intent_id, "operation": doc["operation"]["id"],
                                 "already_executed": doc["already_executed"]})
            if worker in OBSERVERS:
                run("operation", "status", "--json")
                run("plan", "list", "--json")
        reports.put({"worker": worker, "runs": runs, "executed": executed})
    except BaseException as e:  # the parent asserts every worker reported cleanly
        reports.put({"worker": worker, "error": f"{type(e).__name__}: {e}"})
        raise


def start(target: Any, argument_lists: list[tuple[Any, ...]], context: Any) -> list[Any]:
    """Start one spawned process per argument tuple."""
    processes = [context.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    return processes


def collect(processes: list[Any], reports: Any) -> list[dict[str, Any]]:
    """Collect one report from each process, then join them; return the reports by worker."""
    # Drain before joining: a child cannot exit while its report is stuck in the pipe.
    collected = [reports.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    return sorted(collected, key=lambda r: r["worker"])


class ConnectionCounter:
    """Samples how many connections the PostgreSQL server has open on one database, on a thread, until stopped."""

    def __init__(self, server: Any, database: str) -> None:
        self.most = 0
        self._server, self._database = server, database
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.most

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.most = max(self.most, self._server.connections(self._database))


@pytest.fixture(scope="module")
def stampede(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_factory: Any) -> dict[str, Any]:
    """Run the eight concurrent workers once; return their reports, the database and (PostgreSQL) the most
    connections the server had open on it at once."""
    tmp = tmp_path_factory.mktemp("stampede")
    db, config = database_factory(tmp), write_config(tmp / "robson.yaml", BIG_ACCOUNT)
    counter = None
    if is_postgresql(db):
        counter = ConnectionCounter(request.getfixturevalue("pg_server"), str(db).rsplit("/", 1)[1])
    context = multiprocessing.get_context("spawn")
    start_together, reports = context.Barrier(WORKERS), context.Queue()
    workers = start(journeys, [(w, str(db), str(config), start_together, reports) for w in range(WORKERS)], context)
    collected = collect(workers, reports)
    return {"db": db, "reports": collected, "most_connections": None if counter is None else counter.stop()}


def test_every_worker_finishes_its_journeys_without_crashing(stampede: dict[str, Any]) -> None:
    errors = [r["error"] for r in stampede["reports"] if "error" in r]
    assert errors == []
    assert len(stampede["reports"]) == WORKERS


def test_every_command_of_every_worker_exits_zero(stampede: dict[str, Any]) -> None:
    runs = [run for report in stampede["reports"] for run in report["runs"]]
    failed = [run for run in runs if run["exit"] != 0]
    assert failed == []
    observers = len(OBSERVERS) * JOURNEYS * 2
    assert len(runs) == WORKERS * JOURNEYS * 3 + observers


@pytest.mark.postgresql_only("counts the server's connections (pg_stat_activity)")
def test_eight_workers_running_commands_in_process_stay_within_20_connections(stampede: dict[str, Any]) -> None:
    # Each command closes its store (engine disposed) when it ends: a worker holds one connection at a time,
    # not one more per command it ran (issue 12: 140 of 366 commands failed on max_connections=100).
    assert 0 < stampede["most_connections"] <= 20


def test_no_command_ever_reports_database_is_locked(stampede: dict[str, Any]) -> None:
    locked = [run for report in stampede["reports"] for run in report["runs"] if "locked" in run["stderr"].lower()]
    assert locked == []


def test_every_intent_is_executed_once_into_its_own_active_operation(stampede: dict[str, Any]) -> None:
    ledger = read_ledger(stampede["db"])
    reported = [e for report in stampede["reports"] for e in report["executed"]]

    assert len(ledger.intents) == WORKERS * JOURNEYS
    assert {i["status"] for i in ledger.intents.values()} == {"EXECUTED"}
    assert len(ledger.operations) == WORKERS * JOURNEYS
    assert {op["status"] for op in ledger.operations.values()} == {"ACTIVE"}
    assert sorted(op["intent_id"] for op in ledger.operations.values()) == sorted(ledger.intents)
    assert all(ledger.intents[op["intent_id"]]["operation_id"] == op_id for op_id, op in ledger.operations.items())
    assert {(e["intent"], e["operation"]) for e in reported} == {
        (op["intent_id"], op_id) for op_id, op in ledger.operations.items()
    }
    assert not any(e["already_executed"] for e in reported)


def test_every_intent_has_exactly_one_entry_and_one_stop_order(stampede: dict[str, Any]) -> None:
    ledger = read_ledger(stampede["db"])

    assert len(ledger.orders) == 2 * WORKERS * JOURNEYS
    for intent_id in ledger.intents:
        orders = ledger.orders_of(intent_id)
        assert sorted(orders) == [f"rb-{intent_id}-E", f"rb-{intent_id}-S"]
        entry, stop = orders[f"rb-{intent_id}-E"], orders[f"rb-{intent_id}-S"]
        assert (entry["type"], entry["side"], entry["status"]) == ("MARKET", "BUY", "FILLED")
        assert (stop["type"], stop["side"], stop["status"]) == ("OCO", "SELL", "NEW")
        assert stop["quantity"] == entry["filled_quantity"]


def test_balances_account_for_every_fill_exactly(stampede: dict[str, Any]) -> None:
    ledger = read_ledger(stampede["db"])
    entries = [o for o in ledger.orders.values() if o["type"] == "MARKET"]
    bought = sum((Decimal(o["filled_quantity"]) for o in entries), Decimal(0))

    assert ledger.holding("USDT") == START_USDT - sum((entry_cost(o) for o in entries), Decimal(0))
    assert ledger.holding("BTC") == bought
    assert ledger.balances["BTC"] == (Decimal(0), bought)  # every bought coin is locked by its stop


# --- one intent, two processes executing it at the same moment ----------------------------


def execute_once(worker: int, db: str, config: str, intent_id: str, pause: str, start_together: Any,
                 entered: Any, reports: Any) -> None:
    """In a child process: `robson execute ID --json`, optionally meeting the sibling at a chosen step first."""
    try:
        use_database(db, config)
        from typer.testing import CliRunner

        import robson.application.execute as execution
        from robson.cli.app import app

        if pause == "after-reading-validated":
            # Both processes have read the intent as VALIDATED; both now try VALIDATED -> EXECUTING.
            checks = execution.pre_execution_checks

            def checked_then_meet(*args: Any, **kwargs: Any) -> Any:
                price = checks(*args, **kwargs)
                start_together.wait(timeout=WAIT)
                return price

            execution.pre_execution_checks = checked_then_meet
        elif pause == "before-finishing" and worker == 0:
            # The first run holds the entry and stop and is about to create the operation; it goes on only
            # once the second run is waiting for the intent's execution lock.
            finish = execution._finish

            def meet_then_finish(*args: Any, **kwargs: Any) -> Any:
                entered.set()
                start_together.wait(timeout=WAIT)
                return finish(*args, **kwargs)

            execution._finish = meet_then_finish
        elif pause == "before-finishing":
            import robson.adapters.store.locks as locks

            try_lock, told = locks.try_lock, []

            def try_then_tell(*args: Any, **kwargs: Any) -> Any:
                holder = try_lock(*args, **kwargs)
                if holder is not None and str(args[1]).startswith("execute:") and not told:
                    told.append(True)
                    start_together.wait(timeout=WAIT)  # let the first run finish while this one waits
                return holder

            locks.try_lock = try_then_tell
        else:
            start_together.wait(timeout=WAIT)
        result = CliRunner().invoke(app, ["execute", intent_id, "--json"])
        reports.put({"worker": worker, "exit": result.exit_code, "stdout": result.stdout, "stderr": result.stderr})
    except BaseException as e:
        reports.put({"worker": worker, "exit": None, "stdout": "", "stderr": f"{type(e).__name__}: {e}"})
        raise


def execute_twice(tmp_path: Path, db: Target, pause: str) -> tuple[list[dict[str, Any]], Target, str]:
    """Plan and validate one intent, then execute it from two processes at once; return reports, db and ID."""
    config = write_config(tmp_path / "robson.yaml", {})
    intent_id = planned_and_validated(runner_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config)))
    context = multiprocessing.get_context("spawn")
    start_together, entered, reports = context.Barrier(2), context.Event(), context.Queue()
    args = [(w, str(db), str(config), intent_id, pause, start_together, entered, reports) for w in range(2)]
    if pause != "before-finishing":
        return collect(start(execute_once, args, context), reports), db, intent_id
    # The second run starts only once the first is inside the execution: it finds the intent EXECUTING.
    [first] = start(execute_once, args[:1], context)
    assert entered.wait(timeout=WAIT)
    [second] = start(execute_once, args[1:], context)
    return collect([first, second], reports), db, intent_id


def assert_executed_exactly_once(db: Target, intent_id: str) -> str:
    """Assert one entry, one stop, one operation and USDT spent once; return the operation ID."""
    ledger = read_ledger(db)
    assert sorted(ledger.orders) == [f"rb-{intent_id}-E", f"rb-{intent_id}-S"]
    [operation] = ledger.operations_of(intent_id)
    assert ledger.intents[intent_id]["status"] == "EXECUTED"
    assert ledger.intents[intent_id]["operation_id"] == operation["id"]
    assert ledger.holding("USDT") == Decimal(1000) - entry_cost(ledger.orders[f"rb-{intent_id}-E"])
    return str(operation["id"])


def test_two_processes_executing_one_intent_place_one_entry_and_open_one_operation(tmp_path: Path, robson_db: Target) -> None:
    reports, db, intent_id = execute_twice(tmp_path, robson_db, pause="start-together")

    operation_id = assert_executed_exactly_once(db, intent_id)
    for report in reports:
        if report["exit"] == 0:
            assert json.loads(report["stdout"])["operation"]["id"] == operation_id
        else:  # losing the race may be refused, but cleanly: no traceback, no internal error
            assert report["exit"] == 2, report["stderr"]
            assert report["stderr"].startswith("Error: ")
            assert "internal error" not in report["stderr"] and "Traceback" not in report["stderr"]
    assert any(report["exit"] == 0 for report in reports)


def test_losing_the_race_to_start_an_execution_still_reports_the_one_operation(tmp_path: Path, robson_db: Target) -> None:
    reports, db, intent_id = execute_twice(tmp_path, robson_db, pause="after-reading-validated")

    operation_id = assert_executed_exactly_once(db, intent_id)
    assert [r["exit"] for r in reports] == [0, 0], [r["stderr"] for r in reports]
    assert {json.loads(r["stdout"])["operation"]["id"] for r in reports} == {operation_id}


def test_rerunning_an_execution_still_in_progress_reports_the_one_operation(tmp_path: Path, robson_db: Target) -> None:
    reports, db, intent_id = execute_twice(tmp_path, robson_db, pause="before-finishing")

    operation_id = assert_executed_exactly_once(db, intent_id)
    assert [r["exit"] for r in reports] == [0, 0], [r["stderr"] for r in reports]
    assert {json.loads(r["stdout"])["operation"]["id"] for r in reports} == {operation_id}
