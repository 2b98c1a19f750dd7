"""Lock rows written and aged in the tests the way another process would leave them, on the database's clock.

Time passes for a lease by statements that move its times against the database's own "now" (the
same expression robson's lock statements use): nothing in robson is patched to fake a clock.
"""

from __future__ import annotations

from typing import Any

from robson.adapters.store import SqlStore
from robson.adapters.store.locks import now_ms_sql


def put_lease(store: SqlStore, name: str = "monitor", *, owner: str = "a-lease-of-another-process",
              host: str = "another-host", pid: int = 4242, started: str | None = None, place: str | None = None,
              expires_in: float = 60.0, renewed_ago: float = 0.0, acquired_ago: float | None = None) -> None:
    """Insert a lock row as another process holding a lease would have written it (times in seconds from now)."""
    with store.transaction() as tx:
        now = now_ms_sql(tx.connection.dialect)
        tx.connection.execute(
            "INSERT INTO locks (name, owner, host, pid, started, place, acquired_ms, renewed_ms, expires_ms) "
            f"VALUES (:name, :owner, :host, :pid, :started, :place, {now} - :acquired, {now} - :renewed, "
            f"{now} + :expires)",
            {"name": name, "owner": owner, "host": host, "pid": pid, "started": started, "place": place,
             "acquired": int(1000 * (renewed_ago if acquired_ago is None else acquired_ago)),
             "renewed": int(1000 * renewed_ago), "expires": int(1000 * expires_in)})


def expire(store: SqlStore, name: str = "monitor", *, ago: float = 0.001) -> None:
    """Let the lease run out: its expiry moves to `ago` seconds before the database's now."""
    with store.transaction() as tx:
        now = now_ms_sql(tx.connection.dialect)
        tx.connection.execute(f"UPDATE locks SET expires_ms = {now} - :ago WHERE name = :name",
                              {"name": name, "ago": int(ago * 1000)})


def lease_row(store: SqlStore, name: str = "monitor") -> Any:
    """Return the lock row with the database's now (db_now_ms), or None."""
    with store.read() as session:
        now = now_ms_sql(session.connection.dialect)
        return session.connection.execute(f"SELECT locks.*, {now} AS db_now_ms FROM locks WHERE name = :name",
                                          {"name": name}).first()
