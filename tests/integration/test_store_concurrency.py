"""Several OS processes writing one database (SQLite file or PostgreSQL) at once: no lock errors, no lost updates."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

from factories import make_intent  # tests/integration is on sys.path
from tests.databases import Target, fetch, is_postgresql, open_store, store_url
from robson.adapters.store import SqlStore, migrations
from robson.application.ports import Balance
from robson.domain.intent import TradingIntent

PROCESSES = 8
TRANSACTIONS = 25
START = Decimal("1000000.00000000")
T0 = datetime(2024, 5, 1, tzinfo=UTC)

pytestmark = pytest.mark.slow


def amount(worker: int, index: int) -> Decimal:
    return Decimal(f"{worker + 1}.{index:02d}000001")


def intent(worker: int, index: int) -> TradingIntent:
    at = T0 + timedelta(seconds=worker * TRANSACTIONS + index)
    return make_intent(f"pl-{worker:04x}{index:04x}", entry=Decimal("95432"), stop=Decimal("93500"),
                       stop_method="fixed", quantity=amount(worker, index), target=None, created_at=at, updated_at=at)


def spend(url: str, worker: int, start_together: Barrier, errors: Queue[str]) -> None:
    """In a child process: add an intent and take its amount from the shared balance, once per transaction."""
    try:
        store = SqlStore(url)
        store.schema_version()
        start_together.wait(timeout=60)
        for index in range(TRANSACTIONS):
            with store.transaction() as session:
                # Read first, then write: a deferred BEGIN would fail here upgrading its lock.
                usdt = session.get_balances("paper")["USDT"]
                session.add_intent(intent(worker, index))
                session.set_balance("paper", Balance("USDT", usdt.free - amount(worker, index), usdt.locked))
        store.close()
    except BaseException as e:  # report everything: the parent asserts there was nothing
        errors.put(f"worker {worker}: {type(e).__name__}: {e}")
        raise


def open_fresh(url: str, start_together: Barrier, errors: Queue[str]) -> None:
    """In a child process: open a database that nobody has created yet."""
    try:
        start_together.wait(timeout=60)
        SqlStore(url).schema_version()
    except BaseException as e:
        errors.put(f"{type(e).__name__}: {e}")
        raise


def run_processes(target: object, args_for: list[tuple[object, ...]]) -> list[str]:
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(len(args_for))
    errors = context.Queue()
    processes = [context.Process(target=target, args=(*args, start_together, errors)) for args in args_for]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    exit_codes = [process.exitcode for process in processes]
    assert exit_codes == [0] * len(processes), reported
    return reported


def test_concurrent_read_modify_write_transactions_lose_nothing(robson_db: Target) -> None:
    store = open_store(robson_db)
    with store.transaction() as session:
        session.set_balance("paper", Balance("USDT", START, Decimal("0")))
    store.close()

    errors = run_processes(spend, [(store.url, worker) for worker in range(PROCESSES)])

    with store.read() as session:
        intents = session.list_intents()
        balance = session.get_balances("paper")["USDT"]
    spent = sum(amount(w, i) for w in range(PROCESSES) for i in range(TRANSACTIONS))
    assert errors == []
    assert len(intents) == PROCESSES * TRANSACTIONS
    assert {i.id for i in intents} == {intent(w, i).id for w in range(PROCESSES) for i in range(TRANSACTIONS)}
    assert balance.free == START - spent
    assert str(balance.free) == str(START - spent)


def test_processes_opening_a_fresh_database_at_once_migrate_it_exactly_once(empty_database: Target) -> None:
    errors = run_processes(open_fresh, [(store_url(empty_database),) for _ in range(PROCESSES)])

    versions = [row["version"] for row in fetch(empty_database, "SELECT version FROM schema_version ORDER BY version")]
    assert errors == []
    assert versions == [m.version for m in migrations.MIGRATIONS]
    if not is_postgresql(empty_database):
        assert fetch(empty_database, "PRAGMA journal_mode")[0]["journal_mode"] == "wal"


class _LockedThenFree:
    """A cursor whose WAL switch meets a locked file `locked_times` times (what SQLite does without calling its busy handler)."""

    def __init__(self, locked_times: int, message: str = "database is locked") -> None:
        self.locked_times = locked_times
        self.message = message
        self.mode = "delete"
        self.statements: list[str] = []

    def execute(self, sql: str) -> _LockedThenFree:
        self.statements.append(sql)
        if sql == "PRAGMA journal_mode = WAL":
            if self.locked_times:
                self.locked_times -= 1
                raise sqlite3.OperationalError(self.message)
            self.mode = "wal"
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)


def test_the_wal_switch_waits_for_a_locked_fresh_file_instead_of_failing() -> None:
    from robson.adapters.store.sqlite import switch_to_wal

    cursor = _LockedThenFree(locked_times=3)
    pauses: list[float] = []

    switch_to_wal(cursor, monotonic=lambda: 0.0, pause=pauses.append)

    assert cursor.mode == "wal"
    assert cursor.statements.count("PRAGMA journal_mode = WAL") == 4
    assert pauses == [0.005, 0.01, 0.02]


def test_the_wal_switch_gives_up_after_the_busy_timeout_and_other_errors_pass_through() -> None:
    from robson.adapters.store.sqlite import BUSY_TIMEOUT_SECONDS, switch_to_wal

    clock = iter([0.0, 1.0, BUSY_TIMEOUT_SECONDS + 1.0])
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(_LockedThenFree(locked_times=10), monotonic=lambda: next(clock), pause=lambda _: None)

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        switch_to_wal(_LockedThenFree(locked_times=1, message="disk I/O error"), monotonic=lambda: 0.0,
                       pause=lambda _: None)


def test_an_existing_wal_file_is_not_switched_again() -> None:
    from robson.adapters.store.sqlite import switch_to_wal

    cursor = _LockedThenFree(locked_times=5)
    cursor.mode = "wal"

    switch_to_wal(cursor, monotonic=lambda: 0.0, pause=lambda _: None)

    assert cursor.statements == ["PRAGMA journal_mode"]
