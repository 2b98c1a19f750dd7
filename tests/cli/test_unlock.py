"""Stale locks: a pid that is alive but not the holder never blocks monitor or scan; `robson unlock NAME` by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from robson.adapters.store.locks import HOST, process_started
from tests import databases
from tests.cli.conftest import assert_user_error, dump_database, parsed

LONG_AGO = datetime(2021, 1, 1, tzinfo=UTC)
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


def lock_row(db_path, name: str, *, host: str = HOST, pid: int, started: str | None,
             expires: datetime = LONG_AGO + timedelta(minutes=10)) -> None:
    databases.execute(db_path, "INSERT INTO locks (name, owner, host, pid, acquired_at, expires_at, started) "
                               "VALUES (:name, :owner, :host, :pid, :acquired_at, :expires_at, :started)",
                      {"name": name, "owner": f"{host}:{pid}:deadbeef", "host": host, "pid": pid,
                       "acquired_at": (expires - timedelta(minutes=10)).isoformat(),
                       "expires_at": expires.isoformat(), "started": started})


def lock_names(db_path) -> list[str]:
    return [row["name"] for row in databases.fetch(db_path, "SELECT name FROM locks ORDER BY name")]


# --- taken over by itself ------------------------------------------------------------------


@pytest.mark.parametrize("command", [MONITOR, SCAN], ids=["monitor", "scan"])
@pytest.mark.parametrize("expires", [LONG_AGO, datetime.now(UTC) + timedelta(hours=1)], ids=["expired", "not-expired"])
def test_a_lock_whose_pid_now_names_another_process_does_not_block(robson, database, other_process, command, expires):
    lock_row(database, command[2], pid=other_process, started="boot-before:123", expires=expires)

    result = robson(*command)

    assert result.exit_code == 0, result.stderr


def test_pid_1_of_a_new_container_does_not_hold_an_expired_monitor_lock(robson, database):
    lock_row(database, "monitor", pid=1, started="an-older-container:42")

    assert robson(*MONITOR).exit_code == 0


def test_an_expired_lock_from_an_older_robson_without_a_start_time_is_taken_over(robson, database, other_process):
    lock_row(database, "monitor", pid=other_process, started=None)

    assert robson(*MONITOR).exit_code == 0


def test_a_holder_proven_alive_keeps_its_lock_and_the_refusal_names_unlock(robson, database, other_process):
    lock_row(database, "monitor", pid=other_process, started=process_started(other_process))

    result = robson(*MONITOR)

    stderr = assert_user_error(result, 4, f"robson monitor is already running in process {other_process}")
    assert "robson unlock monitor" in stderr


# --- robson unlock --------------------------------------------------------------------------


@pytest.fixture
def elsewhere(database) -> None:
    """A monitor lock held by a process on another machine, not expired: nothing here can tell it is gone."""
    lock_row(database, "monitor", host="another-machine", pid=4242, started="x:1",
             expires=datetime.now(UTC) + timedelta(hours=1))


def test_a_lock_held_elsewhere_blocks_until_unlocked_after_confirmation(robson, database, elsewhere):
    assert_user_error(robson(*MONITOR), 4, "process 4242 on another-machine")

    result = robson("unlock", "monitor", input="yes\n")

    assert result.exit_code == 0, result.stderr
    assert "Remove lock monitor: process 4242 on another-machine" in result.stderr and "Type yes" in result.stderr
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
    lock_row(database, "scan", pid=other_process, started=process_started(other_process))
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
    lock_row(database, "monitor", pid=2**22 + 4321, started="boot:1", expires=datetime.now(UTC) + timedelta(hours=1))

    result = robson("unlock", "monitor", input="yes\n")

    assert result.exit_code == 0 and "gone" in result.stderr
    assert lock_names(database) == []
    assert databases.is_postgresql(database) or os.path.exists(database)  # the file is still there
