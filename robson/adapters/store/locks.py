"""Named locks in the database: one execution per intent, one scan, one monitor.

A lock row names its holder (host, pid). A holder that died (kill -9, power loss) leaves its
row behind; the next process on the same host sees the pid is gone and takes the lock over at
once, and a row whose holder runs elsewhere is only taken over after it expires. A live holder
on this host keeps its lock however long it runs (a `monitor --interval` loop runs for days).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, update

from robson.adapters.store.tables import LOCKS
from robson.errors import AlreadyRunning

if TYPE_CHECKING:
    from robson.adapters.store.sql import SqlStore

HOST = socket.gethostname()
# One identity per process: a lock re-entered by its own process is simply renewed.
OWNER = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class LockHolder:
    name: str
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

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
    return True


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def try_lock(store: SqlStore, name: str, *, ttl: timedelta, now: datetime,
             alive: Callable[[int], bool] = pid_alive) -> LockHolder | None:
    """Take or renew the lock; return None on success, else who holds it."""
    row = {"name": name, "owner": OWNER, "host": HOST, "pid": os.getpid(), "acquired_at": _iso(now),
           "expires_at": _iso(now + ttl)}
    with store.transaction() as tx:
        connection = tx.connection
        current = connection.execute(select(LOCKS).where(LOCKS.c.name == name)).first()
        if current is None:
            connection.execute(insert(LOCKS).values(**row))
            return None
        holder = LockHolder(name, current.host, int(current.pid), datetime.fromisoformat(current.acquired_at),
                            datetime.fromisoformat(current.expires_at))
        here = current.host == HOST
        dead = current.owner != OWNER and here and not alive(holder.pid)
        expired = holder.expires_at <= now and not (here and alive(holder.pid))
        if current.owner == OWNER or dead or expired:
            connection.execute(update(LOCKS).where(LOCKS.c.name == name).values(**row))
            return None
        return holder


def release(store: SqlStore, name: str) -> None:
    """Drop the lock if this process holds it."""
    with store.transaction() as tx:
        tx.connection.execute(delete(LOCKS).where(LOCKS.c.name == name, LOCKS.c.owner == OWNER))


@contextmanager
def hold(store: SqlStore, name: str, *, what: str, ttl: timedelta = timedelta(minutes=10), wait_seconds: float = 0,
         sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Hold the named lock for the block; raise AlreadyRunning if another live process keeps it past wait_seconds."""
    deadline = monotonic() + wait_seconds
    while (holder := try_lock(store, name, ttl=ttl, now=datetime.now(UTC))) is not None:
        if monotonic() >= deadline:
            raise AlreadyRunning(f"{what} is already running in {holder.describe()}",
                                 hint="wait for it to finish; a crashed holder is taken over automatically")
        sleep(POLL_SECONDS)
    try:
        yield
    finally:
        release(store, name)
