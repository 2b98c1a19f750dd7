"""Stale locks: a pid that is alive but not the holder never blocks monitor or scan; a holder elsewhere is taken
over once its lease expires, and every refusal says when; `robson unlock` lists them and removes one by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from robson.adapters.store import SqlStore
from robson.adapters.store.locks import process_started, this_process
from robson.domain.intent import IntentEvent, IntentStatus
from tests import databases
from tests.cli.conftest import assert_user_error, dump_database, parsed
from tests.lease_rows import expire, put_lease

ME = this_process()
MONITOR = ["--as-of", "2021-06-09T05:45", "monitor", "--once"]
SCAN = ["--as-of", "2021-06-09T05:45", "scan", "--strategy", "rescue-forces", "--symbols", "BTCUSDT", "--no-entry"]


@pytest.fixture
def other_process() -> Iterator[int]:
    """A live process that is not robson (it waits on its stdin); returns its pid."""
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield child.pid
    child.communicate(b"")


@pytest.fixture
def database(robson, db_path):
    parsed(robson("plan", "list", "--json"))  # creates it
    return db_path


@contextmanager
def opened(db_path) -> Iterator[SqlStore]:
    store = databases.open_store(db_path)
    try:
        yield store
    finally:
        store.close()


def lock_row(db_path, name: str, *, host: str = ME.host, pid: int, started: str | None, place: str | None = ME.place,
             expires_in: float = -3600) -> None:
    """A lease left by another process: on this machine and in this PID namespace unless told (expired an hour ago)."""
    with opened(db_path) as store:
        put_lease(store, name, owner=f"token-of-{pid}", host=host, pid=pid, started=started, place=place,
                  expires_in=expires_in, renewed_ago=max(0.0, -expires_in) + 60)


def lock_names(db_path) -> list[str]:
    return [row["name"] for row in databases.fetch(db_path, "SELECT name FROM locks ORDER BY name")]


# --- taken over by itself ------------------------------------------------------------------


@pytest.mark.parametrize("command", [MONITOR, SCAN], ids=["monitor", "scan"])
@pytest.mark.parametrize("expires_in", [-3600, 3600], ids=["expired", "not-expired"])
def test_a_lock_whose_pid_now_names_another_process_does_not_block(robson, database, other_process, command,
                                                                  expires_in):
    lock_row(database, command[2], pid=other_process, started="boot-before:123", expires_in=expires_in)

    result = robson(*command)

    assert result.exit_code == 0, result.stderr


def test_pid_1_of_a_new_container_does_not_hold_a_live_monitor_lock(robson, database):
    # Recorded in this PID namespace, where pid 1 is now another (earlier started) process.
    lock_row(database, "monitor", pid=1, started="an-older-container:42", expires_in=3600)

    assert robson(*MONITOR).exit_code == 0


def test_a_dead_pid_1_of_another_container_holds_the_lock_only_until_its_lease_expires(robson, database):
    lock_row(database, "monitor", pid=1, started="an-older-container:42", place="another-boot/pid:[4026532999]",
             host=ME.host, expires_in=3600)

    assert_user_error(robson(*MONITOR), 4, f"robson monitor is already running in process 1 on {ME.host} since")
    with opened(database) as store:
        expire(store)
    assert robson(*MONITOR).exit_code == 0


def test_an_expired_lock_from_an_older_robson_without_a_start_time_is_taken_over(robson, database, other_process):
    lock_row(database, "monitor", pid=other_process, started=None, place=None)

    assert robson(*MONITOR).exit_code == 0


def test_a_holder_proven_alive_keeps_its_lock_and_the_refusal_says_to_stop_it(robson, database, other_process):
    lock_row(database, "monitor", pid=other_process, started=process_started(other_process), expires_in=3600)

    result = robson(*MONITOR)

    stderr = assert_user_error(result, 4, f"robson monitor is already running in process {other_process}")
    assert f"kill {other_process}" in stderr and "runs on this machine" in stderr


def test_a_lock_held_elsewhere_is_taken_over_by_the_next_run_once_its_lease_expires(robson, database):
    lock_row(database, "monitor", host="another-machine", pid=4242, started="x:1", place="elsewhere",
             expires_in=30)

    refused = assert_user_error(robson(*MONITOR), 4, "process 4242 on another-machine",
                                "its lease was renewed", "(in 30 s)")
    with opened(database) as store:
        expire(store)
    result = robson(*MONITOR)

    assert "if that process is gone, the first run after its lease expires at" in refused
    assert result.exit_code == 0, result.stderr
    assert lock_names(database) == []


def executing_intent(robson, db_path) -> str:
    """An intent whose execution started in another process, which then crashed (its lease is another's)."""
    planned = parsed(robson("plan", "buy", "BTCUSDT", "--strategy", "all-in", "--json"))
    parsed(robson("validate", planned["id"], "--json"))
    with opened(db_path) as store, store.transaction() as tx:
        intent = tx.get_intent(planned["id"])
        started = intent.apply(IntentEvent.EXECUTION_STARTED, intent.updated_at,
                               execution={"status": "executing", "exchange": "paper"})
        tx.update_intent(started, expected_status=IntentStatus.VALIDATED)
    return planned["id"]


def test_reconcile_says_when_a_crashed_execution_on_another_host_is_taken_over_then_settles_it(robson, database):
    intent_id = executing_intent(robson, database)
    lock_row(database, f"execute:{intent_id}", host="host-a", pid=4242, started="x:1", place="elsewhere",
             expires_in=30)

    waiting = robson("reconcile", "--json")
    with opened(database) as store:
        expire(store, f"execute:{intent_id}")
    settled = parsed(robson("reconcile", "--json"))

    assert waiting.exit_code == 1
    [in_progress] = json.loads(waiting.stdout)["settled"]
    assert in_progress["outcome"] == "in progress"
    assert in_progress["message"].startswith(f"execution of {intent_id} is already running in process 4242 on host-a")
    assert "its lease was renewed" in in_progress["message"] and "(in 30 s)" in in_progress["message"]
    assert [s["outcome"] for s in settled["settled"]] == ["executed"]
    assert lock_names(database) == []


def test_a_second_execute_waits_long_enough_for_a_crashed_holders_lease_to_run_out():
    from robson.application.execute import LOCK_WAIT_SECONDS, lock_wait_seconds

    assert lock_wait_seconds(SqlStore("sqlite://", lease_seconds=3)) == LOCK_WAIT_SECONDS == 60
    assert lock_wait_seconds(SqlStore("sqlite://")) == 65  # the default lease, 60 s, and a little more
    assert lock_wait_seconds(SqlStore("sqlite://", lease_seconds=600)) == 605


# --- robson unlock --------------------------------------------------------------------------


@pytest.fixture
def elsewhere(database) -> None:
    """A monitor lock held by a process on another machine, not expired: nothing here can tell it is gone."""
    lock_row(database, "monitor", host="another-machine", pid=4242, started="x:1", place="elsewhere",
             expires_in=3600)


def test_unlock_alone_lists_the_locks_with_their_leases(robson, database, elsewhere, other_process):
    lock_row(database, "scan", pid=other_process, started=process_started(other_process), expires_in=50)
    before = dump_database(database)

    shown = robson("unlock", env={"COLUMNS": "300"})
    doc = parsed(robson("unlock", "--json"))

    assert shown.exit_code == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if " monitor " in line or " scan " in line]
    assert "process 4242 on another-machine since" in lines[0] and "may be running" in lines[0]
    assert "its lease was renewed" in lines[0] and "(in 3600 s)" in lines[0]
    assert f"process {other_process} since" in lines[1] and "running" in lines[1]
    assert [(lock["name"], lock["host"], lock["pid"], lock["state"], lock["holds"]) for lock in doc["locks"]] == [
        ("monitor", "another-machine", 4242, "may be running", True), ("scan", ME.host, other_process, "running", True)]
    assert 3590 <= doc["locks"][0]["expires_in_seconds"] <= 3600
    assert dump_database(database) == before


def test_unlock_alone_with_no_lock_says_so(robson, database):
    assert robson("unlock").stdout.strip() == "No lock is held."
    assert parsed(robson("unlock", "--json")) == {"locks": []}


def test_a_lock_held_elsewhere_blocks_until_unlocked_after_confirmation(robson, database, elsewhere):
    assert_user_error(robson(*MONITOR), 4, "process 4242 on another-machine")

    result = robson("unlock", "monitor", input="yes\n")

    assert result.exit_code == 0, result.stderr
    assert "Remove lock monitor: process 4242 on another-machine" in result.stderr and "Type yes" in result.stderr
    assert "its lease was renewed" in result.stderr
    assert "Removed lock monitor" in result.stdout
    assert lock_names(database) == []
    assert robson(*MONITOR).exit_code == 0


@pytest.mark.parametrize("answer", ["no\n", "\n", "", "YES please\n"], ids=["no", "enter", "no-input", "not-yes"])
def test_unlock_not_confirmed_keeps_the_lock(robson, database, elsewhere, answer):
    before = dump_database(database)

    result = robson("unlock", "monitor", input=answer)

    assert_user_error(result, 3, "lock monitor kept: removing it was not confirmed")
    assert result.stdout == ""
    assert dump_database(database) == before


@pytest.mark.parametrize("flag", ["--yes", "-y"])
def test_unlock_yes_removes_without_asking(robson, database, elsewhere, flag):
    result = robson("unlock", "monitor", flag, "--json")

    doc = parsed(result)
    assert "Type yes" not in result.stderr
    assert doc["unlocked"] == "monitor"
    assert doc["holder"] | {"since": None} == {"host": "another-machine", "pid": 4242, "since": None,
                                               "state": "may be running"}
    assert lock_names(database) == []


def test_unlock_answered_under_json_prints_only_the_document(robson, database, elsewhere):
    result = robson("unlock", "monitor", "--json", input="y\n")

    assert json.loads(result.stdout)["unlocked"] == "monitor"
    assert result.stderr.startswith("Remove lock monitor")


def test_unlock_refuses_a_holder_proven_to_run_here(robson, database, other_process):
    lock_row(database, "scan", pid=other_process, started=process_started(other_process), expires_in=3600)
    before = dump_database(database)

    result = robson("unlock", "scan", "--yes")

    stderr = assert_user_error(result, 4, f"lock scan is held by process {other_process}", "still running")
    assert f"kill {other_process}" in stderr
    assert dump_database(database) == before


def test_unlock_of_a_lock_nobody_holds_names_the_held_ones(robson, database, elsewhere):
    lock_row(database, "execute:pl-12345678", host="another-machine", pid=7, started=None)
    before = dump_database(database)

    result = robson("unlock", "scan", "--yes")

    assert_user_error(result, 2, "no lock named 'scan' (locks held: execute:pl-12345678, monitor)")
    assert dump_database(database) == before


def test_unlock_with_no_lock_at_all_says_so(robson, database):
    assert_user_error(robson("unlock", "monitor", "--yes"), 2, "no lock named 'monitor' (no lock is held)")


def test_unlock_of_a_gone_holder_says_it_is_gone(robson, database):
    lock_row(database, "monitor", pid=2**22 + 4321, started="boot:1", expires_in=3600)

    result = robson("unlock", "monitor", input="yes\n")

    assert result.exit_code == 0 and "gone" in result.stderr
    assert lock_names(database) == []
    assert databases.is_postgresql(database) or os.path.exists(database)  # the file is still there
