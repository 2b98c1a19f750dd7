"""Two hosts, one book: robson processes with different host identities (and, on PostgreSQL, clocks 11 minutes
apart) sharing a lock.

Each "host" is a process in its own UTS and PID namespaces (`unshare`: its own hostname, and robson is
pid 1 there, as in a container), on PostgreSQL also under libfaketime with its wall clock 11 minutes
ahead or behind. Where new namespaces are not allowed, a test-only sitecustomize gives the process
another hostname and PID namespace name instead. On SQLite every process shares one machine and its
clock by nature (WAL needs shared memory), so the clocks are not skewed there: SQLite's "now" is the
calling process's, and libfaketime would move it.

Leases are 3 s here (renewed every 1 s; a holder stops 2.25 s after its last renewal) so that the
tests run past several leases in seconds.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from robson.adapters.store import SqlStore
from robson.adapters.store.locks import now_ms_sql
from tests.lease_rows import lease_row
from tests.lock_databases import BACKENDS, Database, PostgresServer, _bin_dir, new_database, postgres_missing
from tests.lock_databases import postgres_server  # noqa: F401  (a fixture)
from tests.reliability.helpers import ROBSON, process_env, write_config

pytestmark = pytest.mark.slow

LEASE = 3
AS_OF = "2021-06-09T05:45"
LOOP = ["--as-of", AS_OF, "monitor", "--interval", "1", "--json"]
ONCE = ["--as-of", AS_OF, "monitor", "--once"]
WAIT = 60  # seconds: the most any step may take before the test fails

# Loaded by the child python through PYTHONPATH; never part of robson. Where this machine refuses new
# namespaces, it gives the process another host's name and PID namespace instead.
IDENTITY_HOOK = '''\
"""Tests only: this process is on host LOCK_TEST_HOST (its hostname, and a PID namespace of its own)."""
import os

_host = os.environ.get("LOCK_TEST_HOST")
if _host:
    import socket

    socket.gethostname = lambda: _host
    import robson.adapters.store.locks as _locks

    _locks.pid_namespace = lambda: f"test-namespace-of-{_host}"
'''


@cache
def _unshare() -> list[str] | None:
    """unshare with a hostname and PID namespace of its own, or None where this machine refuses them."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare"], ["unshare", "--user", "--map-root-user"]):
        command = [*prefix, "--uts", "--pid", "--fork", "--mount-proc", "--kill-child"]
        probe = subprocess.run([*command, "sh", "-c", "hostname probe"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            return command
    return None


# libfaketime preloaded into the robson process alone (its `faketime` wrapper names a semaphore after its
# pid, which is 1 in every namespace: a killed one's is left behind and refuses the next).
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob(
    "/usr/lib/faketime/libfaketime.so.1") + glob.glob("/usr/local/lib/faketime/libfaketime.so.1"))), None)


@dataclass(frozen=True)
class Host:
    name: str
    clock: str | None = None  # libfaketime's offset, e.g. "+11m"; None: the machine's clock


class Process:
    """A robson command running on a host: its lines as they come, with when they came (this test's clock)."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path, *, pin_namespace: bool) -> None:
        self.popen = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        self._namespace = self._pin() if pin_namespace else None
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, into), daemon=True)
                         for stream, into in ((self.popen.stdout, self.out), (self.popen.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    def _pin(self) -> int | None:
        """Keep the process's PID namespace from being freed, so that no later "host" is given its inode.

        Another machine never has the same boot id; here every namespace shares this kernel's, and a
        namespace's inode is reused once it is freed (which proves its processes gone, so robson may
        rightly take over at once): a host that died must stay another host for the rest of the test.
        """
        deadline = time.monotonic() + WAIT
        while self.popen.poll() is None and time.monotonic() < deadline:
            children = _descendants(self.popen.pid)
            if children:
                try:
                    return os.open(f"/proc/{children[0]}/ns/pid", os.O_RDONLY)
                except OSError:
                    return None
            time.sleep(0.005)
        return None

    @property
    def ticks(self) -> list[tuple[float, str]]:
        """The monitor's tick documents (a refusal under --json is a document too, with "error")."""
        return [(at, line) for at, line in self.out if line.startswith("{") and '"checked"' in line]

    @staticmethod
    def _read(stream, into: list[tuple[float, str]]) -> None:
        for line in stream:
            into.append((time.monotonic(), line.rstrip("\n")))

    def wait_for_ticks(self, count: int = 1) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.ticks) < count:
            assert self.popen.poll() is None, f"exited {self.popen.returncode}: {self.stderr}"
            assert time.monotonic() < deadline, f"no tick within {WAIT} s: {self.stderr}"
            time.sleep(0.02)

    def wait(self) -> int:
        code = self.popen.wait(timeout=WAIT)
        for reader in self._readers:
            reader.join(timeout=WAIT)
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.err)

    @property
    def robson_pid(self) -> int:
        """The robson process itself (under unshare a descendant), as this test's PID namespace sees it."""
        deadline = time.monotonic() + WAIT
        while True:
            found = [pid for pid in (self.popen.pid, *_descendants(self.popen.pid)) if str(ROBSON) in _cmdline(pid)
                     and not _cmdline(pid).startswith(("env ", "unshare", "sh "))]
            if found:
                return found[-1]
            assert time.monotonic() < deadline, f"no robson process (exit {self.popen.poll()}): {self.stderr}"
            time.sleep(0.02)

    def signal(self, signum: int) -> None:
        os.kill(self.robson_pid, signum)

    def kill(self) -> None:
        if self._namespace is not None:
            os.close(self._namespace)
            self._namespace = None
        if self.popen.poll() is None:
            for pid in reversed([self.popen.pid, *_descendants(self.popen.pid)]):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.popen.wait(timeout=WAIT)


def _descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [d for child in children for d in (child, *_descendants(child))]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


@dataclass
class Book:
    """One database shared by every host of a test, and the processes started on them."""

    database: Database
    env: dict[str, str]
    cwd: Path
    store: SqlStore
    started: list[Process] = field(default_factory=list)
    faked: set[int] = field(default_factory=set)  # pids libfaketime named its leftovers after

    def command(self, host: Host, args: list[str]) -> tuple[list[str], dict[str, str]]:
        command, env = [str(ROBSON), *args], dict(self.env)
        if host.clock is not None:
            # Only the wall clock moves: libfaketime's monotonic clock breaks Python's sleeps and waits.
            command = ["env", f"LD_PRELOAD={LIBFAKETIME}", f"FAKETIME={host.clock}", "FAKETIME_DONT_FAKE_MONOTONIC=1",
                       *command]
        if _unshare() is not None:
            command = [*_unshare(), "sh", "-c", 'hostname "$1" && shift && exec "$@"', "sh", host.name, *command]
        else:
            env["LOCK_TEST_HOST"] = host.name
        return command, env

    def start(self, host: Host, args: list[str]) -> Process:
        command, env = self.command(host, args)
        process = Process(command, env, self.cwd, pin_namespace=_unshare() is not None)
        self.started.append(process)
        self._faked(host, process.popen.pid)
        return process

    def run(self, host: Host, args: list[str], *, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        command, env = self.command(host, args)
        with subprocess.Popen(command, env=env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as child:
            self._faked(host, child.pid)
            try:
                stdout, stderr = child.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                raise
        return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)

    def _faked(self, host: Host, pid: int) -> None:
        if host.clock is not None:  # robson is pid 1 of its namespace, or this very pid (env execs it)
            self.faked.add(1 if _unshare() is not None else pid)

    def db_now_ms(self) -> int:
        with self.store.read() as session:
            return int(session.connection.execute(f"SELECT {now_ms_sql(session.connection.dialect)}").scalar())


def _skewed(database: Database, offset: str) -> str | None:
    """A wall clock off by offset, where it means something: PostgreSQL's clock is the server's."""
    if database.backend != "postgresql":
        return None
    if LIBFAKETIME is None:
        pytest.skip("libfaketime is not installed (apt-get install faketime): hosts with skewed clocks not run")
    return offset


@contextmanager
def _book(database: Database, tmp_path: Path) -> Iterator[Book]:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(IDENTITY_HOOK, encoding="utf-8")
    config = write_config(tmp_path / "robson.yaml", {})
    env = process_env(ROBSON_DB=database.url, ROBSON_CONFIG=str(config), ROBSON_LOCKS__LEASE_SECONDS=str(LEASE),
                      PYTHONUNBUFFERED="1", PYTHONPATH=str(hook))
    store = database.store()
    book = Book(database, env, tmp_path, store)
    try:
        yield book
    finally:
        for process in book.started:
            process.kill()
        store.close()
        for pid in book.faked:  # libfaketime leaves a semaphore and a shared memory object named after the pid
            for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
                Path("/dev/shm", name).unlink(missing_ok=True)


@pytest.fixture(params=BACKENDS)
def book(request, tmp_path) -> Iterator[Book]:
    with _book(new_database(request.param, tmp_path, request), tmp_path) as opened:
        yield opened


def _refused_by(result: subprocess.CompletedProcess[str], host: str) -> None:
    assert result.returncode == 4, (result.returncode, result.stderr)
    assert "robson monitor is already running in process" in result.stderr and f"on {host} since" in result.stderr
    assert "its lease was renewed" in result.stderr


# --- the tests ---------------------------------------------------------------------------------------------


def test_one_monitor_at_a_time_across_hosts_long_past_the_lease(book):
    a, b = Host("host-a"), Host("host-b", _skewed(book.database, "+11m"))  # b's clock 11 minutes ahead
    first = book.start(a, LOOP)
    first.wait_for_ticks()
    holder = lease_row(book.store).owner

    try:
        second_loop = book.run(b, LOOP, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("a second monitor loop ran alongside the first")
    refusals, until = 0, time.monotonic() + 3 * LEASE
    while time.monotonic() < until:
        _refused_by(book.run(b, ONCE), "host-a")
        row = lease_row(book.store)
        assert row.owner == holder and row.expires_ms > row.db_now_ms  # renewed all along, never taken
        refusals += 1
    ticks = len(first.ticks)
    first.signal(signal.SIGTERM)  # stops cleanly after its tick, releasing the lock

    assert first.wait() == 0, first.stderr
    _refused_by(second_loop, "host-a")
    assert refusals >= 3
    assert ticks >= 3 * LEASE - 2  # the first monitor went on ticking every second, past three leases
    assert lease_row(book.store) is None
    handed_over = book.run(b, ONCE)
    assert handed_over.returncode == 0, handed_over.stderr


def test_a_container_with_the_same_hostname_never_takes_a_live_lock(book):
    a, b = Host("box"), Host("box")  # same hostname, another PID namespace: pid 1 there is not pid 1 here
    first = book.start(a, LOOP)
    first.wait_for_ticks()

    refusals = [book.run(b, ONCE) for _ in range(3)]

    for refused in refusals:
        _refused_by(refused, "box")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0, first.stderr


def test_a_killed_holder_on_another_host_is_taken_over_after_its_lease_and_not_before(book):
    a, b = Host("host-a"), Host("host-b", _skewed(book.database, "-11m"))  # b's clock 11 minutes behind
    first = book.start(a, LOOP)
    first.wait_for_ticks()
    renewed = lease_row(book.store).renewed_ms
    while lease_row(book.store).renewed_ms == renewed:  # killed just after a renewal: a whole lease to go
        time.sleep(0.01)
    first.signal(signal.SIGKILL)
    first.wait()
    dead = lease_row(book.store)
    assert dead.expires_ms > dead.db_now_ms  # its lease outlives it: nothing here can tell it died

    attempts = []
    while True:
        before = book.db_now_ms()
        second = book.start(b, LOOP)
        while not second.ticks and second.popen.poll() is None:
            time.sleep(0.02)
        after = book.db_now_ms()
        attempts.append((before, after))
        if second.ticks:  # it holds the lock
            break
        assert second.wait() == 4 and "on host-a since" in second.stderr, second.stderr
        assert after < dead.expires_ms + 10_000, "not taken over 10 s after the lease expired"

    taken = lease_row(book.store)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.stderr
    assert taken.owner != dead.owner and taken.acquired_ms >= dead.expires_ms  # after its lease, on the db's clock
    assert taken.acquired_ms - dead.expires_ms < 5_000  # and soon after
    assert len(attempts) >= 2 and attempts[0][1] < dead.expires_ms  # refused while the lease was live


def test_a_holder_paused_past_its_lease_stops_when_it_resumes_without_acting_again(book):
    a, b = Host("host-a"), Host("host-b", _skewed(book.database, "+11m"))
    first = book.start(a, LOOP)
    first.wait_for_ticks()
    first.signal(signal.SIGSTOP)  # a VM pause, a laptop lid, a stop-the-world: the holder cannot renew
    deadline = time.monotonic() + WAIT
    while (row := lease_row(book.store)).expires_ms > row.db_now_ms:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    second = book.start(b, LOOP)
    second.wait_for_ticks()
    resumed = time.monotonic()
    first.signal(signal.SIGCONT)
    code = first.wait()
    second.wait_for_ticks(len(second.ticks) + 2)  # the new holder goes on
    taken = lease_row(book.store)
    second.signal(signal.SIGTERM)

    assert code == 4, first.stderr
    assert "lost the lock monitor" in first.stderr and "stopped before doing anything more" in first.stderr
    assert [line for at, line in first.ticks if at > resumed] == []  # not one more tick after it resumed
    assert taken.host == "host-b"
    assert second.wait() == 0, second.stderr


def test_a_holder_whose_lock_was_removed_by_hand_stops_at_its_next_renewal(book):
    a, b = Host("host-a"), Host("host-b")
    first = book.start(a, LOOP)
    first.wait_for_ticks()

    removed = book.run(b, ["unlock", "monitor", "--yes"])
    stopped_within = time.monotonic() + LEASE
    code = first.wait()

    assert removed.returncode == 0 and "Removed lock monitor: process" in removed.stdout, removed.stderr
    assert "on host-a" in removed.stdout and "may be running" in removed.stdout
    assert code == 4 and time.monotonic() < stopped_within + 2
    assert "lost the lock monitor: another process took it over, or robson unlock removed it" in first.stderr


@pytest.fixture
def lonely_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which it may stop."""
    reason = postgres_missing()
    if reason:
        pytest.skip(f"PostgreSQL case not run: {reason}")
    server = PostgresServer(_bin_dir())
    server.start()
    yield server
    server.remove()


def test_a_holder_cut_off_from_postgresql_stops_by_itself(lonely_server, tmp_path):
    with _book(Database("postgresql", lonely_server.new_database()), tmp_path) as book:
        first = book.start(Host("host-a"), LOOP)
        first.wait_for_ticks()
        book.store.close()
        lonely_server.stop("immediate")  # every connection gone, and no new one until it is back
        cut_off = time.monotonic()

        code = first.wait()

        assert code == 4, first.stderr
        assert time.monotonic() - cut_off < LEASE + 2  # within its lease, plus a tick that fails at once
        assert "lost the lock monitor: not renewed for 2 s of its 3 s lease: " in first.stderr, first.stderr
        assert "cannot connect to PostgreSQL database" in first.stderr.split("lost the lock monitor")[-1]


# --- an execution that crashed on another host ------------------------------------------------------------

# A crash right after the entry filled; os._exit, as a SIGKILL would (pid 1 of a namespace ignores its own).
KILL_AFTER_ENTRY = '''
if os.environ.get("KILL_AFTER_ENTRY"):
    from robson.adapters.paper import PaperExchange

    _place = PaperExchange.place_market_order

    def _then_die(*args, **kwargs):
        _place(*args, **kwargs)
        os._exit(137)

    PaperExchange.place_market_order = _then_die
'''


def test_an_execution_that_crashed_on_another_host_is_finished_by_the_next_run_once_its_lease_expires(book):
    from tests.reliability.helpers import planned_and_validated, runner_env

    (book.cwd / "hook" / "sitecustomize.py").write_text(IDENTITY_HOOK + KILL_AFTER_ENTRY, encoding="utf-8")
    intent_id = planned_and_validated(runner_env(ROBSON_DB=book.env["ROBSON_DB"],
                                                 ROBSON_CONFIG=book.env["ROBSON_CONFIG"]))
    a, b = Host("host-a"), Host("host-b")
    book.env["KILL_AFTER_ENTRY"] = "1"
    crashed = book.start(a, ["execute", intent_id, "--json"])
    crashed_code = crashed.wait()
    del book.env["KILL_AFTER_ENTRY"]
    left = lease_row(book.store, f"execute:{intent_id}")
    in_progress = book.run(b, ["reconcile", "--json"])
    started = time.monotonic()
    finished = book.run(b, ["execute", intent_id, "--json"])
    waited = time.monotonic() - started

    assert crashed_code == 137 and crashed.out == [], crashed.stderr
    assert left is not None and left.host == "host-a" and left.expires_ms > left.db_now_ms
    assert in_progress.returncode == 1, in_progress.stderr
    assert f"{intent_id} in progress" in in_progress.stderr
    assert "on host-a since" in in_progress.stdout and "expires at" in in_progress.stdout
    assert finished.returncode == 0, finished.stderr
    assert 0.5 < waited < LEASE + 5  # it waited for the lease to run out, then took over: not exit 4 after 60 s
    assert json.loads(finished.stdout)["intent"]["status"] == "EXECUTED"
    assert lease_row(book.store, f"execute:{intent_id}") is None
