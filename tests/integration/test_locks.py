"""Named locks: who may take a lock over, and when."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from robson.adapters.store import SqlStore
from robson.adapters.store.locks import HOST, MAYBE_RUNNING, OWNER, RUNNING, process_started, try_lock

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)


@pytest.fixture
def store(tmp_path):
    s = SqlStore.for_path(tmp_path / "locks.db")
    yield s
    s.close()


def held_by(store, *, host: str, pid: int, expires: datetime, started: str | None = None) -> None:
    with store.transaction() as tx:
        tx.connection.execute(
            "INSERT INTO locks (name, owner, host, pid, acquired_at, expires_at, started) "
            "VALUES (:name, :owner, :host, :pid, :acquired_at, :expires_at, :started)",
            {"name": "monitor", "owner": f"{host}:{pid}:other", "host": host, "pid": pid,
             "acquired_at": (expires - TTL).isoformat(), "expires_at": expires.isoformat(), "started": started})


def owner(store) -> str:
    with store.read() as session:
        return session.connection.execute("SELECT owner FROM locks WHERE name = 'monitor'").scalar()


def test_a_live_holder_proven_by_its_start_time_keeps_the_lock_long_after_it_expired(store):
    held_by(store, host=HOST, pid=4242, expires=NOW - timedelta(hours=5), started="boot:1000")

    holder = try_lock(store, "monitor", ttl=TTL, now=NOW, alive=lambda pid: True, started=lambda pid: "boot:1000")

    assert holder is not None and (holder.pid, holder.state) == (4242, RUNNING)
    assert owner(store) == f"{HOST}:4242:other"


@pytest.mark.parametrize("expires", [NOW + TTL, NOW - timedelta(days=700)], ids=["not-expired", "expired-long-ago"])
@pytest.mark.parametrize("pid", [4242, 1], ids=["reused-pid", "pid-1-of-a-new-container"])
def test_a_pid_that_now_names_a_later_process_is_taken_over_at_once(store, pid, expires):
    held_by(store, host=HOST, pid=pid, expires=expires, started="boot:1000")

    taken = try_lock(store, "monitor", ttl=TTL, now=NOW, alive=lambda p: True, started=lambda p: "boot:98765")

    assert taken is None
    assert owner(store) == OWNER


@pytest.mark.parametrize(("recorded", "readable"), [(None, "boot:1000"), ("boot:1000", None), (None, None)],
                         ids=["row-from-an-older-robson", "start-time-unreadable-now", "neither"])
def test_a_live_pid_not_proven_to_be_the_holder_keeps_the_lock_only_until_it_expires(store, recorded, readable):
    held_by(store, host=HOST, pid=4242, expires=NOW + timedelta(minutes=1), started=recorded)

    before = try_lock(store, "monitor", ttl=TTL, now=NOW, alive=lambda p: True, started=lambda p: readable)
    after = try_lock(store, "monitor", ttl=TTL, now=NOW + timedelta(minutes=2), alive=lambda p: True,
                     started=lambda p: readable)

    assert before is not None and before.state == MAYBE_RUNNING
    assert after is None and owner(store) == OWNER


def test_a_taken_lock_records_this_process_and_its_start_time(store):
    assert try_lock(store, "monitor", ttl=TTL, now=NOW) is None

    with store.read() as session:
        [row] = session.connection.execute("SELECT * FROM locks").all()
    assert (row.host, row.pid, row.owner) == (HOST, os.getpid(), OWNER)
    assert row.started == process_started(os.getpid())
    if sys.platform.startswith("linux"):
        assert row.started and row.started.endswith(f":{Path('/proc/self/stat').read_text().rsplit(')', 1)[1].split()[19]}")


def test_a_start_time_names_one_process_only():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        mine, theirs = process_started(os.getpid()), process_started(child.pid)
        assert mine is not None and theirs is not None and mine != theirs
        assert process_started(os.getpid()) == mine  # stable for the life of the process
    finally:
        child.communicate(b"")
    assert process_started(child.pid) is None  # gone (and reaped)
    assert process_started(2**22 + 12345) is None


def test_a_dead_holder_on_this_host_is_taken_over_at_once(store):
    held_by(store, host=HOST, pid=4242, expires=NOW + TTL)

    assert try_lock(store, "monitor", ttl=TTL, now=NOW, alive=lambda pid: False) is None
    assert owner(store) == OWNER


def test_a_holder_on_another_host_is_taken_over_only_after_it_expires(store):
    held_by(store, host="elsewhere", pid=4242, expires=NOW + timedelta(minutes=1))

    assert try_lock(store, "monitor", ttl=TTL, now=NOW, alive=lambda pid: False) is not None
    assert try_lock(store, "monitor", ttl=TTL, now=NOW + timedelta(minutes=2), alive=lambda pid: False) is None
    assert owner(store) == OWNER


def test_the_holding_process_renews_its_own_lock(store):
    assert try_lock(store, "monitor", ttl=TTL, now=NOW) is None

    assert try_lock(store, "monitor", ttl=TTL, now=NOW + timedelta(hours=1)) is None
    with store.read() as session:
        expires = session.connection.execute("SELECT expires_at FROM locks").scalar()
    assert datetime.fromisoformat(expires) == NOW + timedelta(hours=1) + TTL
