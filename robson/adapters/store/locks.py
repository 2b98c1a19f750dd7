"""Named locks as leases in the database: one execution per intent, one scan, one monitor, across hosts.

A lock is a row of `locks`: a lease held by `owner`, a random token drawn for each acquisition
(nothing else can ever have it: not a later process given the same pid, not a container with
the same hostname), until `expires_ms`. Host, pid and start time are kept to show who holds it
and for the one take-over that needs no waiting (below); they never decide who owns it.

- **The database's clock decides.** Every time in the row (`acquired_ms`, `renewed_ms`,
  `expires_ms`: epoch milliseconds, BIGINT) is computed by the database inside the statement that
  writes it, and a lease is expired only when the statement taking it over finds
  `expires_ms <= <the database's now>`. A client whose clock is minutes off changes nothing. On
  PostgreSQL "now" is the server's transaction time; on SQLite, whose file every process opens
  on one machine (WAL needs shared memory), it is that machine's clock.
- **Renewed in the background.** A holder renews its lease every third of the lease (default
  lease 60 s: every 20 s) from a daemon thread, whatever the command is doing (a monitor tick
  waiting on Binance, a long scan): renewal is an UPDATE guarded by the token, so a lease taken
  over or removed by `robson unlock` is never renewed again.
- **A holder that cannot renew stops acting first.** The holder counts, on a local clock that
  never jumps and keeps counting through a suspend (CLOCK_BOOTTIME), from just before its last
  successful renewal: once three quarters of the lease have passed, it renews on the spot or
  raises LeaseLost. `SqlStore.transaction()` checks every lease its process holds before each
  write transaction (every order robson sends is recorded in one first), and the monitor loop
  before each tick; so a holder that was paused, cut off or taken over stops before its lease
  can expire in the database, a quarter of the lease of margin (15 s by default).
- **Take-over only of an expired lease**, with one exception that is provably safe: a holder
  recorded in this very PID namespace of this very boot of this kernel (`place`: the boot id
  and the namespace's inode) whose pid is gone, or names a process that started later (pid
  reuse, pid 1 of a new container), is taken over at once. Anything else (another host, another
  container with the same hostname, no start time readable) waits for the lease to expire: at
  most one lease (60 s) after the holder last renewed it.
- **Why not PostgreSQL advisory locks:** a session-level advisory lock lives as long as one
  connection, so a holder must pin a connection for hours (no PgBouncer in transaction mode),
  and a host that vanishes keeps it until the server notices the dead TCP connection (by
  default hours), while the holder cannot tell when its lock went. Leases behave the same on
  both databases and bound every wait. (Write transactions on PostgreSQL do take one
  transaction-level advisory lock, see engine.py: that serializes them, as BEGIN IMMEDIATE
  does on SQLite, and is released at commit.)

`robson unlock NAME` removes a lease by hand (its holder, if alive, stops at its next renewal).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robson.errors import AlreadyRunning, LeaseLost, RobsonError, StoreError

if TYPE_CHECKING:
    from robson.adapters.store.sql import SqlStore

LEASE_SECONDS = 60.0  # how long a lock outlives a holder that stops renewing it
RENEW_EVERY = 1 / 3  # of the lease: a renewal every 20 s by default, two may fail before the holder stops
STOP_AFTER = 3 / 4  # of the lease without a successful renewal: the holder stops acting (15 s before expiry)
RETRY_EVERY = 1 / 12  # of the lease: how soon a failed renewal is tried again (5 s by default)
POLL_SECONDS, MAX_POLL_SECONDS = 0.05, 1.0  # waiting for a lock: first poll, doubling up to this
HOST_LENGTH = 255  # shown only; a longer name is cut, never refused

RUNNING = "running"  # proven: the very process that took the lock is alive, here, and its lease is live
MAYBE_RUNNING = "may be running"  # its lease is live, and nothing here can tell whether it is gone
GONE = "gone"  # recorded in this PID namespace, and no process has its pid
REUSED = "another process has its pid"  # recorded in this PID namespace, and its pid names a later process
EXPIRED = "expired"  # not renewed in time: anyone may take it over

_COLUMNS = "name, owner, host, pid, started, place, acquired_ms, renewed_ms, expires_ms"


def now_ms_sql(dialect: str) -> str:
    """The database's current time as epoch milliseconds, as an SQL expression of this dialect."""
    if dialect == "sqlite":
        # 'now' is the same for every use within one statement; julianday keeps SQLite's milliseconds.
        return "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)"
    # PostgreSQL: the transaction's start on the server's clock (the same in every statement of it).
    return "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) * 1000 AS BIGINT)"


@cache
def _statements(dialect: str) -> dict[str, str]:
    now = now_ms_sql(dialect)
    lease = f"acquired_ms = {now}, renewed_ms = {now}, expires_ms = {now} + :ttl_ms"
    holder = "owner = :owner, host = :host, pid = :pid, started = :started, place = :place"
    return {
        # RETURNING, not rowcount: not every driver reports an INSERT's rowcount (psycopg 3 under SQLAlchemy).
        "insert": f"INSERT INTO locks ({_COLUMNS}) VALUES (:name, :owner, :host, :pid, :started, :place, {now}, "
                  f"{now}, {now} + :ttl_ms) ON CONFLICT (name) DO NOTHING RETURNING name",
        "select": f"SELECT {_COLUMNS}, {now} AS db_now_ms FROM locks WHERE name = :name",
        "select_all": f"SELECT {_COLUMNS}, {now} AS db_now_ms FROM locks ORDER BY name",
        # Each take-over names the lease it judged (owner = :seen): never one renewed or taken meanwhile.
        "take_expired": f"UPDATE locks SET {holder}, {lease} WHERE name = :name AND owner = :seen "
                        f"AND expires_ms <= {now}",
        "take_gone": f"UPDATE locks SET {holder}, {lease} WHERE name = :name AND owner = :seen",
        "renew": f"UPDATE locks SET renewed_ms = {now}, expires_ms = {now} + :ttl_ms WHERE name = :name "
                 "AND owner = :owner",
        "delete": "DELETE FROM locks WHERE name = :name AND owner = :owner",
    }


# --- who this process is -------------------------------------------------------------------------


# Linux's CLOCK_BOOTTIME and macOS's CLOCK_MONOTONIC count the time the machine was suspended; time.monotonic does not.
_LEASE_CLOCK = getattr(time, "CLOCK_BOOTTIME", None) or (time.CLOCK_MONOTONIC if sys.platform == "darwin" else None)


def lease_clock() -> float:
    """Seconds on a local clock that never jumps and keeps counting while the machine is suspended."""
    return time.monotonic() if _LEASE_CLOCK is None else time.clock_gettime(_LEASE_CLOCK)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists in this PID namespace."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    except (OverflowError, ValueError):  # not a pid this system can have
        return False
    return True


def process_started(pid: int) -> str | None:
    """Return when process pid started, as a token equal only for the same process; None if unknown.

    Linux: the boot id and the start time in clock ticks from /proc/<pid>/stat. Elsewhere: `ps`'s
    start time (to the second: a pid reused within the same second is not told apart).
    """
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            ticks = stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the (command name)
        except (OSError, IndexError, ValueError):
            return None
        return f"{_boot_id()}:{ticks}"
    if sys.platform == "win32":
        return None
    import subprocess

    try:
        answer = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5,
                                check=False, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    text = answer.stdout.strip()
    return f"ps:{text}" if answer.returncode == 0 and text else None


@cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def pid_namespace() -> str | None:
    """Name this process's PID namespace on this boot of this kernel, or None where that cannot be told.

    The boot id is random for each boot of each machine and the namespace's inode is unique on it
    while the namespace lives; a /proc mounted for another namespace (pids there are not ours) is
    refused. Only a holder recorded with the same value can have its pid looked up here.
    """
    boot = _boot_id()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
        if os.readlink("/proc/self") != str(os.getpid()):  # /proc shows another namespace's pids
            return None
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who takes a lock, as recorded for display and for the same-namespace take-over."""

    host: str
    pid: int
    started: str | None
    place: str | None


def this_process() -> Identity:
    """Return this process's identity (looked up on each call: a forked child is another process)."""
    return _identity(os.getpid())


@cache
def _identity(pid: int) -> Identity:
    return Identity(socket.gethostname()[:HOST_LENGTH], pid, process_started(pid), pid_namespace())


# --- judging a lock row --------------------------------------------------------------------------


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


@dataclass(frozen=True, slots=True)
class LockHolder:
    """A lock row as seen at one moment of the database's clock, with its state."""

    name: str
    owner: str  # the lease's token
    host: str
    pid: int
    acquired_at: datetime  # all three on the database's clock
    renewed_at: datetime
    expires_at: datetime
    expires_in: float  # seconds from the database's now (≤ 0: expired)
    renewed_ago: float
    state: str  # RUNNING and MAYBE_RUNNING hold the lock; the others may be taken over
    started: str | None = None
    place: str | None = None
    here: bool = False  # recorded under this hostname and in this PID namespace: its pid names a process here

    @property
    def holds(self) -> bool:
        return self.state in (RUNNING, MAYBE_RUNNING)

    def describe(self) -> str:
        """Say who holds it: 'process 4242 on host-a since 2026-11-21 12:00:05 UTC'."""
        where = f"process {self.pid}" + ("" if self.here else f" on {self.host}")
        return f"{where} since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"

    def lease(self) -> str:
        """Say how its lease stands on the database's clock: when it was renewed, when it expires."""
        renewed = f"its lease was renewed {_seconds(self.renewed_ago)} ago"
        if self.expires_in <= 0:
            return f"{renewed} and expired {_seconds(-self.expires_in)} ago"
        return f"{renewed} and expires at {self.expires_at:%H:%M:%S} UTC (in {_seconds(self.expires_in)})"

    def when_taken_over(self) -> str:
        """Say, truthfully for a holder on any host, when robson takes the lock over by itself."""
        if not self.holds:
            return "it is taken over by the next run"
        if self.state == RUNNING:
            return "it runs on this machine and keeps the lock until it ends"
        return (f"if that process is gone, the first run after its lease expires at {self.expires_at:%H:%M:%S} UTC "
                f"(in {_seconds(self.expires_in)}) takes the lock over")


def _seconds(value: float) -> str:
    return f"{max(0, round(value))} s"


def judge(row: Any, *, me: Identity | None = None, alive: Callable[[int], bool] = pid_alive,
          started: Callable[[int], str | None] = process_started) -> LockHolder:
    """Return the holder of a lock row (read with db_now_ms) and whether it still holds the lock."""
    me = me or this_process()
    now = int(row.db_now_ms)
    expired = int(row.expires_ms) <= now
    pid = int(row.pid)
    state = EXPIRED if expired else MAYBE_RUNNING
    # Only in this very PID namespace does the recorded pid name anything here.
    if row.place is not None and row.place == me.place:
        if not alive(pid):
            state = GONE
        elif row.started and (current := started(pid)) is not None:
            state = REUSED if current != row.started else (EXPIRED if expired else RUNNING)
    return LockHolder(row.name, row.owner, row.host, pid, _moment(row.acquired_ms), _moment(row.renewed_ms),
                      _moment(row.expires_ms), (int(row.expires_ms) - now) / 1000, (now - int(row.renewed_ms)) / 1000,
                      state, row.started, row.place, here=row.host == me.host and row.place is not None
                      and row.place == me.place)


# --- taking, renewing, releasing -----------------------------------------------------------------


def new_token() -> str:
    """Return a lease token: 128 random bits, never derived from host or pid."""
    return os.urandom(16).hex()


def try_lock(store: SqlStore, name: str, *, owner: str, ttl: float = LEASE_SECONDS, me: Identity | None = None,
             alive: Callable[[int], bool] = pid_alive,
             started: Callable[[int], str | None] = process_started) -> LockHolder | None:
    """Take the lock as lease owner if it is free, expired or provably abandoned; return None, else who holds it."""
    me = me or this_process()
    values = {"name": name, "owner": owner, "host": me.host, "pid": me.pid, "started": me.started,
              "place": me.place, "ttl_ms": int(ttl * 1000)}
    with store.transaction() as tx:
        connection = tx.connection
        sql = _statements(connection.dialect)
        for _ in range(3):  # the row can vanish in between only where writes are not serialized
            if connection.execute(sql["insert"], values).first() is not None:
                return None
            row = connection.execute(sql["select"], {"name": name}).first()
            if row is not None:
                break
        else:
            raise StoreError(f"lock {name} kept vanishing and coming back while it was being taken")
        holder = judge(row, me=me, alive=alive, started=started)
        if holder.holds:
            return holder
        take = "take_expired" if holder.state == EXPIRED else "take_gone"
        if connection.execute(sql[take], {**values, "seen": row.owner}).rowcount == 1:
            return None
        return holder  # renewed in between: it holds the lock after all


def holders(store: SqlStore, *, me: Identity | None = None) -> list[LockHolder]:
    """Return every lock row in the database by name, each judged on the database's clock as try_lock would."""
    with store.read() as session:
        connection = session.connection
        rows = connection.execute(_statements(connection.dialect)["select_all"]).all()
    return [judge(row, me=me) for row in rows]


def remove(store: SqlStore, name: str, *, owner: str) -> bool:
    """Delete the lock row if it still belongs to owner (not to someone who took it meanwhile); tell whether it did."""
    with store.transaction() as tx:
        return bool(tx.connection.execute(_statements(tx.connection.dialect)["delete"],
                                          {"name": name, "owner": owner}).rowcount)


class Lease:
    """A lock this process holds: renewed while the command runs; ensure() before acting on it.

    The lease is known good until STOP_AFTER of it has passed, on clock(), since just before the
    last renewal that succeeded: the database computed the new expiry after that moment.
    """

    def __init__(self, store: SqlStore, name: str, owner: str, *, ttl: float, acquired: float,
                 clock: Callable[[], float] = lease_clock) -> None:
        self.store, self.name, self.owner, self.ttl = store, name, owner, ttl
        self._clock = clock
        self._valid_until = acquired + ttl * STOP_AFTER
        self._lost: str | None = None  # why it is gone for good
        self._failure: str | None = None  # why the last renewal failed
        self.refused: LeaseLost | None = None  # raised once: the block must not end as if all went well
        self._renewing = threading.Lock()

    @property
    def lost(self) -> bool:
        return self._lost is not None

    def remaining(self) -> float:
        """Seconds this process may still act on the lease without renewing it (≤ 0: it may not)."""
        return 0.0 if self._lost else self._valid_until - self._clock()

    def renew(self) -> bool:
        """Renew the lease in the database; return False if that failed (lost for good if no longer ours)."""
        with self._renewing:
            if self._lost:
                return False
            mark = self._clock()  # before the statement: the database's "now" comes after it
            try:
                with self.store.unguarded_transaction() as tx:
                    connection = tx.connection
                    renewed = connection.execute(_statements(connection.dialect)["renew"], {
                        "name": self.name, "owner": self.owner, "ttl_ms": int(self.ttl * 1000)}).rowcount == 1
            except RobsonError as e:  # the database out of reach or busy: tried again, the lease still runs
                self._failure = str(e)
                return False
            if not renewed:
                self._lost = "another process took it over, or robson unlock removed it"
                return False
            self._failure = None
            self._valid_until = max(self._valid_until, mark + self.ttl * STOP_AFTER)
            return True

    def ensure(self) -> None:
        """Raise LeaseLost unless this process still surely holds the lock (renewing it now if it is due)."""
        if self._lost is None and self._clock() < self._valid_until:
            return
        if self.renew() and self._clock() < self._valid_until:
            return
        reason = self._lost or (f"not renewed for {_seconds(self.ttl * STOP_AFTER)} of its {_seconds(self.ttl)} lease"
                                + (f": {self._failure}" if self._failure else ""))
        self.refused = LeaseLost(f"lost the lock {self.name}: {reason}; stopped before doing anything more, so that "
                                 "two processes never act on it at once",
                                 hint="run it again: it takes the lock back unless another process holds it "
                                      "(robson unlock lists the locks)")
        raise self.refused

    def keep_renewed(self, wait: Callable[[float], bool]) -> None:
        """Renew every RENEW_EVERY of the lease (sooner after a failure) until wait() says stop or the lease is lost."""
        pause = self.ttl * RENEW_EVERY
        while not wait(pause):
            if self.renew():
                pause = self.ttl * RENEW_EVERY
            elif self.lost:
                return
            else:
                pause = self.ttl * RETRY_EVERY

    def release(self) -> None:
        """Delete the row if it is still this lease's."""
        with self.store.unguarded_transaction() as tx:
            tx.connection.execute(_statements(tx.connection.dialect)["delete"], {"name": self.name, "owner": self.owner})


def _refusal(what: str, name: str, holder: LockHolder) -> AlreadyRunning:
    if holder.state == RUNNING:
        return AlreadyRunning(f"{what} is already running in {holder.describe()}",
                              hint=f"wait for it to finish: {holder.when_taken_over()} (kill {holder.pid} to stop it)")
    return AlreadyRunning(f"{what} is already running in {holder.describe()}; {holder.lease()}",
                          hint=f"{holder.when_taken_over()}; if you know it is gone for good, robson unlock {name} "
                               "removes it now")


@contextmanager
def hold(store: SqlStore, name: str, *, what: str, ttl: float = LEASE_SECONDS, wait_seconds: float = 0,
         sleep: Callable[[float], object] = time.sleep, clock: Callable[[], float] = lease_clock) -> Iterator[Lease]:
    """Hold the named lock for the block, renewed in the background; raise AlreadyRunning if another process
    keeps it past wait_seconds. Writes through store raise LeaseLost once the lease can no longer be trusted."""
    owner = new_token()
    deadline = clock() + wait_seconds
    delay = POLL_SECONDS
    while True:
        acquired = clock()
        holder = try_lock(store, name, owner=owner, ttl=ttl)
        if holder is None:
            break
        if clock() >= deadline:
            raise _refusal(what, name, holder)
        sleep(min(delay, max(0.0, deadline - clock())))
        delay = min(delay * 2, MAX_POLL_SECONDS)
    lease = Lease(store, name, owner, ttl=ttl, acquired=acquired, clock=clock)
    stop = threading.Event()
    keeper = threading.Thread(target=lease.keep_renewed, args=(stop.wait,), name=f"robson-lease-{name}", daemon=True)
    keeper.start()
    store.leases.add(lease)
    failed = False
    try:
        yield lease
    except BaseException:
        failed = True
        raise
    finally:
        store.leases.discard(lease)
        stop.set()
        keeper.join(timeout=ttl)  # a renewal in flight ends within the database's busy timeout
        try:
            lease.release()
        except RobsonError:
            if not failed:
                raise
            # The block already failed; the row expires by itself within one lease.
    if lease.refused is not None:  # a handler inside the block went on after a refused write: still a failure
        raise lease.refused
