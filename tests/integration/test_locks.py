"""Locks as leases: who may take one over and when (on the database's clock), renewal, and a holder that cannot
renew stopping before its lease can expire. Every case runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from robson.adapters.store import SqlStore, locks
from robson.adapters.store.locks import (
    EXPIRED,
    GONE,
    MAYBE_RUNNING,
    REUSED,
    RUNNING,
    Identity,
    Lease,
    hold,
    holders,
    new_token,
    now_ms_sql,
    pid_namespace,
    process_started,
    remove,
    this_process,
    try_lock,
)
from robson.errors import AlreadyRunning, LeaseLost, StoreError
from tests.lease_rows import expire, lease_row, put_lease
from tests.lock_databases import BACKENDS, new_database, postgres_server  # noqa: F401  (a fixture)

TTL = 60.0
HERE = Identity("this-host", 777, "boot-a:1000", "boot-a/pid:[4026531836]")  # another process's view of itself
SAME_HOSTNAME_OTHER_NAMESPACE = "boot-a/pid:[4026532999]"  # a container with the same hostname
OTHER_MACHINE_SAME_INODE = "boot-b/pid:[4026531836]"  # every host's first namespace has the same inode


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Iterator[SqlStore]:
    s = new_database(request.param, tmp_path, request).store()
    yield s
    s.close()


class FakeClock:
    """The holder's local clock (CLOCK_BOOTTIME in robson), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Unreachable:
    """The store as a holder cut off from the database would see it: renewals fail while `down`."""

    def __init__(self, store: SqlStore) -> None:
        self.store, self.down = store, False

    @contextmanager
    def unguarded_transaction(self) -> Iterator[Any]:
        if self.down:
            raise StoreError("database error (postgresql://db-host/robson): connection refused")
        with self.store.unguarded_transaction() as tx:
            yield tx


def owner(store: SqlStore, name: str = "monitor") -> str | None:
    row = lease_row(store, name)
    return None if row is None else row.owner


def take(store: SqlStore, name: str = "monitor", *, me: Identity = HERE, **judging: Any):
    """try_lock as another process of this test would (HERE unless told), with a fresh token."""
    return try_lock(store, name, owner=new_token(), ttl=TTL, me=me, **judging)


def steal(store: SqlStore, name: str = "monitor") -> None:
    """What a take-over by another process does to a lease: another owner."""
    with store.transaction() as tx:
        tx.connection.execute("UPDATE locks SET owner = 'the-next-holder' WHERE name = :name", {"name": name})


def age(store: SqlStore, seconds: float, name: str = "monitor") -> None:
    """Let time pass on the database's clock for a lease: all its times move that far into the past."""
    with store.transaction() as tx:
        tx.connection.execute("UPDATE locks SET acquired_ms = acquired_ms - :ms, renewed_ms = renewed_ms - :ms, "
                              "expires_ms = expires_ms - :ms WHERE name = :name", {"name": name, "ms": int(seconds * 1000)})


def acquired(store: SqlStore, name: str = "monitor", clock: FakeClock | None = None) -> Lease:
    """Take the lock as this process and return its lease (not renewed in the background: the test renews)."""
    clock = clock or FakeClock()
    token = new_token()
    assert try_lock(store, name, owner=token, ttl=TTL) is None
    return Lease(store, name, token, ttl=TTL, acquired=clock(), clock=clock)


# --- taking a lock ---------------------------------------------------------------------------------------


def test_a_free_lock_is_taken_with_its_own_token_and_times_from_the_database_clock(store):
    token = new_token()

    assert try_lock(store, "monitor", owner=token, ttl=TTL) is None

    row, me = lease_row(store), this_process()
    assert row.owner == token
    assert (row.host, row.pid, row.started, row.place) == (me.host, os.getpid(), me.started, me.place)
    assert row.renewed_ms == row.acquired_ms and row.expires_ms - row.acquired_ms == 60_000
    assert abs(row.db_now_ms - row.acquired_ms) < 5_000


def test_lease_tokens_are_random_and_never_repeat():
    tokens = [new_token() for _ in range(20_000)]

    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[0-9a-f]{32}", token) for token in tokens)
    me = this_process()
    # Not built from who holds it: no "host:pid" inside (a random hex token may contain the pid's digits by chance).
    assert not any(f"{me.host}:{me.pid}" in token or ":" in token for token in tokens)


def test_two_holds_in_one_process_are_two_leases(store):
    with store.lock("monitor", what="robson monitor") as first:
        pass
    with store.lock("monitor", what="robson monitor") as second:
        assert owner(store) == second.owner
    assert first.owner != second.owner
    assert owner(store) is None


@pytest.mark.parametrize("host", ["another-host", HERE.host], ids=["another-host", "same-hostname"])
def test_a_live_lease_is_not_taken_over_whoever_holds_it(store, host):
    put_lease(store, host=host, expires_in=30)

    holder = take(store, alive=lambda pid: False)

    assert holder is not None and holder.state == MAYBE_RUNNING and holder.holds
    assert owner(store) == "a-lease-of-another-process"


def test_an_expired_lease_is_taken_over(store):
    put_lease(store, expires_in=30)
    expire(store)

    assert take(store) is None
    assert owner(store) != "a-lease-of-another-process"


def test_a_lease_expires_on_the_database_clock_not_by_its_age(store):
    put_lease(store, acquired_ago=3 * 86400, renewed_ago=5, expires_in=55)  # taken days ago, renewed just now

    holder = take(store)

    assert holder is not None and holder.state == MAYBE_RUNNING
    assert 50 < holder.expires_in <= 55 and 5 <= holder.renewed_ago < 10
    assert holder.expires_at > holder.renewed_at > holder.acquired_at


def test_the_expiry_is_judged_in_the_statement_against_the_database_now(store):
    put_lease(store, expires_in=3600)
    with store.transaction() as tx:  # expires exactly at the database's now, as the takeover statement sees it
        tx.connection.execute(f"UPDATE locks SET expires_ms = {now_ms_sql(tx.connection.dialect)}")

    assert take(store) is None


def test_the_callers_wall_clock_is_never_read(store, monkeypatch):
    class NoWallClock:
        @staticmethod
        def now(*_args):
            raise AssertionError("the lock code read this machine's wall clock")

        fromtimestamp = locks.datetime.fromtimestamp

    monkeypatch.setattr(locks, "datetime", NoWallClock)
    put_lease(store, expires_in=30)

    refused = take(store)
    expire(store)
    taken = take(store)

    assert refused is not None and taken is None
    assert [h.name for h in holders(store)] == ["monitor"]


# --- taking over at once, only where the holder is provably gone -------------------------------------------


def test_a_holder_gone_from_this_pid_namespace_is_taken_over_at_once(store):
    put_lease(store, host=HERE.host, pid=4242, place=HERE.place, started="boot-a:900", expires_in=60)

    assert take(store, alive=lambda pid: False) is None
    assert owner(store) != "a-lease-of-another-process"


@pytest.mark.parametrize("pid", [4242, 1], ids=["reused-pid", "pid-1-of-a-new-container"])
def test_a_pid_that_now_names_a_later_process_is_taken_over_at_once(store, pid):
    put_lease(store, host=HERE.host, pid=pid, place=HERE.place, started="boot-a:900", expires_in=60)

    assert take(store, alive=lambda p: True, started=lambda p: "boot-a:98765") is None


def test_the_very_holder_proven_alive_keeps_its_live_lease(store):
    put_lease(store, host=HERE.host, pid=4242, place=HERE.place, started="boot-a:900", expires_in=60)

    holder = take(store, alive=lambda p: True, started=lambda p: "boot-a:900")

    assert holder is not None and holder.state == RUNNING
    assert "this machine" in holder.when_taken_over()


def test_a_holder_alive_but_no_longer_renewing_loses_its_expired_lease(store):
    # Proven alive here, but its lease ran out: it stops acting by itself (see the holder's tests below).
    put_lease(store, host=HERE.host, pid=4242, place=HERE.place, started="boot-a:900", expires_in=-1)

    assert take(store, alive=lambda p: True, started=lambda p: "boot-a:900") is None


@pytest.mark.parametrize("place", [SAME_HOSTNAME_OTHER_NAMESPACE, OTHER_MACHINE_SAME_INODE, None],
                         ids=["container-sharing-the-hostname", "another-boot-same-namespace-inode", "place-unknown"])
def test_a_holder_in_another_pid_namespace_is_taken_over_only_once_its_lease_expires(store, place):
    put_lease(store, host=HERE.host, pid=1, place=place, started="boot-a:900", expires_in=60)

    # Its pid means nothing here: neither "no such process" nor "another process" proves it gone.
    before = take(store, alive=lambda p: False, started=lambda p: "boot-a:98765")
    expire(store)
    after = take(store, alive=lambda p: True, started=lambda p: "boot-a:900")

    assert before is not None and before.state == MAYBE_RUNNING
    assert after is None


@pytest.mark.parametrize(("recorded", "readable"), [(None, "boot-a:900"), ("boot-a:900", None)],
                         ids=["no-start-time-recorded", "start-time-unreadable-now"])
def test_a_live_pid_not_proven_to_be_the_holder_keeps_the_lock_until_its_lease_expires(store, recorded, readable):
    put_lease(store, host=HERE.host, pid=4242, place=HERE.place, started=recorded, expires_in=60)

    before = take(store, alive=lambda p: True, started=lambda p: readable)
    expire(store)
    after = take(store, alive=lambda p: True, started=lambda p: readable)

    assert before is not None and before.state == MAYBE_RUNNING
    assert after is None


def test_a_dead_pid_in_this_namespace_is_gone_even_without_a_start_time(store):
    put_lease(store, host=HERE.host, pid=4242, place=HERE.place, started=None, expires_in=60)

    assert locks.judge(lease_row(store), me=HERE, alive=lambda p: False).state == GONE
    assert take(store, alive=lambda p: False) is None


def test_judging_names_each_state(store):
    put_lease(store, host=HERE.host, pid=4242, place=HERE.place, started="boot-a:900", expires_in=60)
    row = lease_row(store)

    def state(alive: bool, started: str | None, expired: bool = False) -> str:
        seen = SimpleNamespace(**{**row._mapping, "expires_ms": row.db_now_ms - 1}) if expired else row
        return locks.judge(seen, me=HERE, alive=lambda p: alive, started=lambda p: started).state

    assert state(True, "boot-a:900") == RUNNING
    assert state(True, "boot-a:900", expired=True) == EXPIRED
    assert state(False, None) == GONE
    assert state(True, "boot-a:1") == REUSED
    assert state(True, None) == MAYBE_RUNNING
    assert state(True, None, expired=True) == EXPIRED


# --- this process's identity --------------------------------------------------------------------------------


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


def _unshare(*flags: str) -> list[str] | None:
    """The unshare command for a child in new namespaces, or None where this machine does not allow it."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare"], ["unshare", "--user", "--map-root-user"]):
        command = [*prefix, *flags]
        if subprocess.run([*command, "true"], capture_output=True, timeout=30, check=False).returncode == 0:
            return command
    return None


PRINT_PLACE = "from robson.adapters.store.locks import pid_namespace; print(pid_namespace())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PID namespaces are Linux's")
def test_the_pid_namespace_names_this_one_and_another_in_a_container():
    unshare = _unshare("--pid", "--fork", "--mount-proc")
    if unshare is None:
        pytest.skip("this machine does not allow new PID namespaces (unshare refused)")
    ours = pid_namespace()

    theirs = subprocess.run([*unshare, sys.executable, "-c", PRINT_PLACE], capture_output=True, text=True,
                            timeout=60, check=True).stdout.strip()
    without_its_own_proc = subprocess.run([*unshare[:-1], sys.executable, "-c", PRINT_PLACE], capture_output=True,
                                          text=True, timeout=60, check=True).stdout.strip()

    assert ours is not None and re.fullmatch(r"[0-9a-f-]{36}/pid:\[\d+\]", ours)
    assert theirs != ours and theirs.split("/")[0] == ours.split("/")[0]  # same boot, another namespace
    assert without_its_own_proc == "None"  # its /proc shows another namespace's pids: nothing is judged by them


@pytest.mark.parametrize("length", [64, 255, 1000])
def test_a_long_hostname_never_breaks_a_lock(store, monkeypatch, length):
    monkeypatch.setattr(locks.socket, "gethostname", lambda: "h" * length)
    locks._identity.cache_clear()
    try:
        with store.lock("execute:pl-" + "f" * 37, what="an execution"):  # the longest name robson gives a lock
            [holder] = holders(store)
    finally:
        locks._identity.cache_clear()

    assert holder.host == "h" * min(length, 255) and holder.pid == os.getpid()
    assert len(holder.owner) == 32  # never derived from the host
    assert holders(store) == []


# --- renewal ----------------------------------------------------------------------------------------------


def test_a_renewal_moves_the_expiry_a_whole_lease_past_the_database_now(store):
    lease = acquired(store)
    age(store, 40)

    assert lease.renew()

    row = lease_row(store)
    assert abs(row.renewed_ms - row.db_now_ms) < 5_000 and row.expires_ms - row.renewed_ms == 60_000
    assert row.db_now_ms - row.acquired_ms >= 40_000  # acquired_ms stays: when it was first taken


def test_a_renewed_lease_is_never_taken_over_long_past_its_ttl(store):
    lease = acquired(store)

    for _ in range(30):  # ten minutes on the database's clock, renewed every 20 s
        age(store, 20)
        assert lease.renew()
        assert take(store, me=Identity("another-host", 4242, None, None)) is not None

    assert owner(store) == lease.owner
    assert lease_row(store).db_now_ms - lease_row(store).acquired_ms >= 600_000


def test_a_lease_taken_over_is_never_renewed_again(store):
    lease = acquired(store)
    steal(store)

    renewed = lease.renew()

    assert not renewed and lease.lost
    assert owner(store) == "the-next-holder"
    with pytest.raises(LeaseLost, match="lost the lock monitor: another process took it over"):
        lease.ensure()


def test_a_lease_removed_by_unlock_is_never_renewed_again(store):
    lease = acquired(store)
    assert remove(store, "monitor", owner=lease.owner)

    assert not lease.renew() and lease.lost
    assert lease_row(store) is None


def test_renewing_in_the_background_every_third_of_the_lease_and_sooner_after_a_failure(store):
    cut_off = Unreachable(store)
    lease = acquired(store)
    lease.store = cut_off  # type: ignore[assignment]
    pauses: list[float] = []
    outcomes = iter([True, False, False, True, True])  # reachable, down, down, back, then stopped

    def wait(seconds: float) -> bool:
        pauses.append(seconds)
        try:
            cut_off.down = not next(outcomes)
        except StopIteration:
            return True  # the block ended
        return False

    lease.keep_renewed(wait)

    assert pauses == [20.0, 20.0, 5.0, 5.0, 20.0, 20.0]
    assert not lease.lost and owner(store) == lease.owner


def test_renewing_in_the_background_ends_when_the_lease_is_lost(store):
    lease = acquired(store)
    steal(store)
    waits: list[float] = []

    lease.keep_renewed(lambda seconds: waits.append(seconds) or False)

    assert waits == [20.0] and lease.lost


def test_a_held_lock_is_renewed_by_a_thread_that_ends_with_the_block(store):
    def keepers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("robson-lease-")]

    with store.lock("scan", what="robson scan"):
        inside = keepers()

    assert inside == ["robson-lease-scan"]
    assert keepers() == []
    assert lease_row(store, "scan") is None


# --- a holder that cannot renew stops ----------------------------------------------------------------------


def test_a_holder_that_cannot_renew_stops_before_its_lease_can_expire(store):
    clock = FakeClock()
    lease = acquired(store, clock=clock)
    cut_off = Unreachable(store)
    lease.store, cut_off.down = cut_off, True  # type: ignore[assignment]

    clock.now += 44.9
    lease.ensure()  # still well inside the lease: nothing asked of the database
    clock.now += 0.2
    with pytest.raises(LeaseLost) as stopped:
        lease.ensure()

    assert "not renewed for 45 s of its 60 s lease: database error" in stopped.value.message
    assert "connection refused" in stopped.value.message
    row = lease_row(store)
    assert row.owner == lease.owner and row.expires_ms - row.db_now_ms > 14_000  # it stopped with 15 s to spare


def test_a_holder_whose_renewal_is_due_renews_on_the_spot_and_goes_on(store):
    clock = FakeClock()
    lease = acquired(store, clock=clock)
    age(store, 50)
    clock.now += 50

    lease.ensure()

    row = lease_row(store)
    assert row.expires_ms - row.db_now_ms > 55_000
    assert 44 < lease.remaining() <= 45


def test_every_write_is_refused_once_a_held_lease_is_lost(store):
    clock = FakeClock()
    refused = []
    with pytest.raises(LeaseLost):  # the block swallowed it: its end still fails
        with hold(store, "monitor", what="robson monitor", clock=clock):
            steal(store)
            with store.transaction() as tx:  # still inside the lease: writes go on
                tx.connection.execute("DELETE FROM balances")
            clock.now += 46
            try:
                with store.transaction() as tx:
                    tx.connection.execute("INSERT INTO balances VALUES ('paper', 'USDT', '1', '0')")
            except LeaseLost as e:
                refused.append(e)
            with pytest.raises(LeaseLost):
                store.ensure_locks()

    assert len(refused) == 1
    with store.read() as session:
        assert session.get_balances("paper") == {}
    assert owner(store) == "the-next-holder"  # the lease of the next holder is left alone
    with store.transaction():  # the lost lease no longer guards this store
        pass


# --- waiting for a lock ------------------------------------------------------------------------------------


def test_a_waiting_run_takes_over_once_the_lease_expires_and_not_before(store):
    put_lease(store, expires_in=60)
    clock, slept = FakeClock(), []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds
        if len(slept) == 4:
            expire(store)  # the holder stopped renewing a lease ago

    with hold(store, "monitor", what="robson monitor", wait_seconds=90, sleep=sleep, clock=clock) as lease:
        assert owner(store) == lease.owner

    assert slept == [0.05, 0.1, 0.2, 0.4]


def test_a_refusal_says_when_a_holder_elsewhere_is_taken_over(store):
    put_lease(store, name="monitor", host="host-a", pid=4242, expires_in=42)

    with pytest.raises(AlreadyRunning) as refused:
        with store.lock("monitor", what="robson monitor"):
            pass

    message, hint = refused.value.message, refused.value.hint
    assert message.startswith("robson monitor is already running in process 4242 on host-a since ")
    assert re.search(r"its lease was renewed 0 s ago and expires at \d\d:\d\d:\d\d UTC \(in 4[12] s\)", message)
    assert re.match(r"if that process is gone, the first run after its lease expires at \d\d:\d\d:\d\d UTC "
                    r"\(in 4[12] s\) takes the lock over; if you know it is gone for good, robson unlock monitor "
                    "removes it now$", hint)
    assert "taken over automatically" not in hint


def test_a_refusal_by_a_holder_proven_running_here_says_to_wait_or_stop_it(store):
    me = this_process()
    put_lease(store, host=me.host, pid=os.getpid(), started=me.started, place=me.place, expires_in=60)

    with pytest.raises(AlreadyRunning) as refused:
        with store.lock("monitor", what="robson monitor"):
            pass

    assert refused.value.message.startswith(f"robson monitor is already running in process {os.getpid()} since ")
    assert refused.value.hint == (f"wait for it to finish: it runs on this machine and keeps the lock until it ends "
                                  f"(kill {os.getpid()} to stop it)")


def test_no_order_is_sent_once_the_lease_is_lost(store):
    from robson.application.sending import send_once

    class Exchange:
        name = "paper"

        def send_stamp(self) -> int:
            return 1

    class Clock:
        def now(self):
            return locks.datetime.now(locks.UTC)

    clock, placed = FakeClock(), []
    with pytest.raises(LeaseLost):
        with hold(store, "monitor", what="robson monitor", clock=clock):
            steal(store)
            clock.now += 46
            send_once(store, Exchange(), Clock(), SimpleNamespace(id="pl-12345678"), "rb-pl-12345678-S",
                      "stop SELL 0.001 @ 30000", lambda: placed.append("sent"))

    assert placed == []
    with store.read() as session:
        assert session.audit_trail(intent_id="pl-12345678") == []
