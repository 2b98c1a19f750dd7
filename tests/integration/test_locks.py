"""Named locks: who may take a lock over, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from robson.adapters.store import SqlStore
from robson.adapters.store.locks import HOST, OWNER, try_lock
from robson.adapters.store.tables import LOCKS

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)


@pytest.fixture
def store(tmp_path):
    s = SqlStore.for_path(tmp_path / "locks.db")
    yield s
    s.close()


def held_by(store, *, host: str, pid: int, expires: datetime) -> None:
    with store.transaction() as tx:
        tx.connection.execute(insert(LOCKS).values(
            name="monitor", owner=f"{host}:{pid}:other", host=host, pid=pid,
            acquired_at=(expires - TTL).isoformat(), expires_at=expires.isoformat()))


def owner(store) -> str:
    with store.read() as session:
        return session.connection.execute(select(LOCKS.c.owner).where(LOCKS.c.name == "monitor")).scalar()


def test_a_live_holder_on_this_host_keeps_the_lock_long_after_it_expired(store):
    held_by(store, host=HOST, pid=4242, expires=NOW - timedelta(hours=5))

    holder = try_lock(store, "monitor", ttl=TTL, now=NOW, alive=lambda pid: True)

    assert holder is not None and holder.pid == 4242
    assert owner(store) == f"{HOST}:4242:other"


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
        expires = session.connection.execute(select(LOCKS.c.expires_at)).scalar()
    assert datetime.fromisoformat(expires) == NOW + timedelta(hours=1) + TTL
