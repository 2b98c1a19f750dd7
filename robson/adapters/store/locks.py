"""Named locks in the database: one execution per intent, one scan, one monitor.

A lock row names its holder: host, pid and the process's start time (`started`, which tells a
process from a later one that was given the same pid). On the holder's host, a row whose pid
is gone, or is now another process (pid reuse after a reboot or a crash, pid 1 of a new
container), is taken over at once; a holder proven to be the same live process keeps its lock
however long it runs (a `monitor --interval` loop runs for days). A holder that cannot be
proven alive (no start time recorded or readable) and a holder on another host are taken over
once the lock has expired. `robson unlock NAME` removes a lock by hand.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from robson.errors import AlreadyRunning

if TYPE_CHECKING:
    from robson.adapters.store.sql import SqlStore

HOST = socket.gethostname()
# One identity per process: a lock re-entered by its own process is simply renewed.
OWNER = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
POLL_SECONDS = 0.05
_COLUMNS = ("name", "owner", "host", "pid", "acquired_at", "expires_at", "started")
_INSERT = f"INSERT INTO locks ({', '.join(_COLUMNS)}) VALUES ({', '.join(f':{c}' for c in _COLUMNS)})"
_UPDATE = f"UPDATE locks SET {', '.join(f'{c} = :{c}' for c in _COLUMNS[1:])} WHERE name = :name"
_DELETE = "DELETE FROM locks WHERE name = :name AND owner = :owner"


RUNNING = "running"  # proven: the very process that took the lock is alive on this host
MAYBE_RUNNING = "may be running"  # not expired, and nothing here can tell (another host, no start time)
GONE = "gone"  # no process has its pid
REUSED = "another process has its pid"  # its pid now names a process that started later
EXPIRED = "expired"  # past its expiry, and not proven alive


@dataclass(frozen=True, slots=True)
class LockHolder:
    name: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime
    started: str | None = None  # the holder's start time as process_started() gave it
    owner: str | None = None  # the row's owner: unique per process run
    state: str = RUNNING  # RUNNING and MAYBE_RUNNING hold the lock; the others may be taken over

    @property
    def holds(self) -> bool:
        return self.state in (RUNNING, MAYBE_RUNNING)

    def describe(self) -> str:
        where = f"process {self.pid}" + ("" if self.host == HOST else f" on {self.host}")
        return f"{where} since {self.acquired_at:%Y-%m-%d %H:%M:%S} UTC"


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists on this host."""
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
    try:
        answer = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=5,
                                check=False, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    text = answer.stdout.strip()
    return f"ps:{text}" if answer.returncode == 0 and text else None


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "boot"


@cache
def _started_self() -> str | None:
    return process_started(os.getpid())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def try_lock(store: SqlStore, name: str, *, ttl: timedelta, now: datetime,
             alive: Callable[[int], bool] = pid_alive,
             started: Callable[[int], str | None] = process_started) -> LockHolder | None:
    """Take or renew the lock; return None on success, else who holds it."""
    row = {"name": name, "owner": OWNER, "host": HOST, "pid": os.getpid(), "acquired_at": _iso(now),
           "expires_at": _iso(now + ttl), "started": _started_self()}
    with store.transaction() as tx:
        connection = tx.connection
        current = connection.execute("SELECT * FROM locks WHERE name = :name", {"name": name}).first()
        if current is None:
            connection.execute(_INSERT, row)
            return None
        holder = judge(current, now=now, alive=alive, started=started)
        if current.owner == OWNER or not holder.holds:
            connection.execute(_UPDATE, row)
            return None
        return holder


def judge(row, *, now: datetime, alive: Callable[[int], bool] = pid_alive,
          started: Callable[[int], str | None] = process_started) -> LockHolder:
    """Return the holder of a lock row with its state: whether it still holds the lock or may be taken over."""
    expired = datetime.fromisoformat(row.expires_at) <= now
    if row.host != HOST:  # nothing here can tell whether it lives: it keeps the lock until it expires
        state = EXPIRED if expired else MAYBE_RUNNING
    elif not alive(int(row.pid)):
        state = GONE
    else:
        recorded, current = row.started, started(int(row.pid))
        if recorded and current:
            state = RUNNING if recorded == current else REUSED
        else:  # not provably the same process: it keeps the lock only until it expires
            state = EXPIRED if expired else MAYBE_RUNNING
    return LockHolder(row.name, row.host, int(row.pid), datetime.fromisoformat(row.acquired_at),
                      datetime.fromisoformat(row.expires_at), row.started, row.owner, state)


def holders(store: SqlStore, *, now: datetime) -> list[LockHolder]:
    """Return every lock held in the database, by name, each judged as try_lock would."""
    with store.read() as session:
        rows = session.connection.execute("SELECT * FROM locks ORDER BY name").all()
    return [judge(row, now=now) for row in rows]


def remove(store: SqlStore, name: str, *, owner: str) -> bool:
    """Delete the lock row if it still belongs to owner (not to someone who took it meanwhile); tell whether it did."""
    with store.transaction() as tx:
        return bool(tx.connection.execute(_DELETE, {"name": name, "owner": owner}).rowcount)


def release(store: SqlStore, name: str) -> None:
    """Drop the lock if this process holds it."""
    with store.transaction() as tx:
        tx.connection.execute(_DELETE, {"name": name, "owner": OWNER})


@contextmanager
def hold(store: SqlStore, name: str, *, what: str, ttl: timedelta = timedelta(minutes=10), wait_seconds: float = 0,
         sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Hold the named lock for the block; raise AlreadyRunning if another live process keeps it past wait_seconds."""
    deadline = monotonic() + wait_seconds
    while (holder := try_lock(store, name, ttl=ttl, now=datetime.now(UTC))) is not None:
        if monotonic() >= deadline:
            raise AlreadyRunning(f"{what} is already running in {holder.describe()}",
                                 hint=f"wait for it to finish; a crashed holder is taken over automatically "
                                      f"(if it is gone for good: robson unlock {name})")
        sleep(POLL_SECONDS)
    try:
        yield
    finally:
        release(store, name)
