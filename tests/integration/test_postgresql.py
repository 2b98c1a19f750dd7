"""PostgreSQL beside SQLite: the same column limits on both, the driver a URL means, PgBouncer in transaction mode."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import String

from robson.adapters.store import SqlStore, schema
from robson.adapters.store.engine import build_engine
from robson.adapters.store.tables import ALL_TABLES
from robson.application.ports import Balance
from robson.errors import InvalidInput, StoreError
from tests.databases import Target, open_store

from factories import make_intent  # tests/integration is on sys.path

# --- one source of truth for column lengths (both backends) -----------------------------------


def test_the_lengths_robson_checks_are_the_lengths_the_table_models_declare() -> None:
    declared = {table.name: {column.name: column.type.length for column in table.columns
                             if isinstance(column.type, String) and column.type.length}
                for table in ALL_TABLES if table.name != "locks"}  # locks.py checks its own rows

    assert schema.MAX_LENGTHS == declared


def test_the_light_schema_module_loads_without_sqlmodel_or_sqlalchemy() -> None:
    code = "import sys, robson.adapters.store.schema; print(sorted(m for m in ('sqlmodel', 'sqlalchemy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert loaded == "[]"


@pytest.mark.parametrize(("column", "value"), [("symbol", "A" * 21), ("timeframe", "1" * 9)])
def test_a_value_longer_than_its_column_is_refused_before_the_database_on_every_backend(
        robson_db: Target, column: str, value: str) -> None:
    store = open_store(robson_db)
    try:
        with pytest.raises(InvalidInput) as raised, store.transaction() as session:
            session.add_intent(make_intent(**{column: value}))
        with store.read() as session:
            stored = session.list_intents()
    finally:
        store.close()

    assert f"{column} '{value}' is {len(value)} characters long; robson keeps at most" in str(raised.value)
    assert stored == []


def test_a_value_exactly_as_long_as_its_column_is_kept(robson_db: Target) -> None:
    store = open_store(robson_db)
    try:
        with store.transaction() as session:
            session.add_intent(make_intent(symbol="A" * 20))
        with store.read() as session:
            [intent] = session.list_intents()
    finally:
        store.close()

    assert intent.symbol == "A" * 20


# --- the driver -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["postgresql://robson@db.invalid/robson", "postgres://robson@db.invalid/robson"])
def test_a_plain_postgresql_url_is_served_by_psycopg_3(url: str) -> None:
    engine = build_engine(url)
    try:
        assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    finally:
        engine.dispose()


def test_a_url_naming_its_driver_keeps_it() -> None:
    engine = build_engine("postgresql+psycopg://robson@db.invalid/robson")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


# --- PgBouncer in transaction mode -------------------------------------------------------------


def read_many_times(store: SqlStore, times: int = 8) -> None:
    """Run the same statements in separate committed transactions: psycopg prepares a statement on its 5th run
    (and forgets what it prepared in a transaction rolled back, as a read session is)."""
    for _ in range(times):
        with store.transaction() as session:
            session.get_balances("paper")


@pytest.fixture
def bounced(pgbouncer, pg_database: str) -> Iterator[str]:
    """The URL of a fresh database reached through PgBouncer (transaction pooling, one server connection)."""
    yield pgbouncer.url(pg_database)


@pytest.mark.postgresql_only("PgBouncer in front of the PostgreSQL server")
def test_behind_pgbouncer_prepared_statements_collide_and_the_error_names_the_setting(bounced: str) -> None:
    first, second = SqlStore(bounced), SqlStore(bounced)
    try:
        read_many_times(first)  # prepares _pg3_0 on the one server connection
        with pytest.raises(StoreError) as raised:
            read_many_times(second)  # prepares its own _pg3_0 there: "already exists"
    finally:
        first.close()
        second.close()

    assert "prepared statement" in raised.value.message
    assert "database_prepared_statements: false" in raised.value.hint


@pytest.mark.postgresql_only("PgBouncer in front of the PostgreSQL server")
def test_behind_pgbouncer_with_prepared_statements_off_every_client_works(bounced: str) -> None:
    stores = [SqlStore(bounced, prepared_statements=False) for _ in range(3)]
    try:
        for store in stores:
            read_many_times(store)
            with store.transaction() as session:
                usdt = session.get_balances("paper").get("USDT", Balance("USDT", Decimal(0), Decimal(0)))
                session.set_balance("paper", Balance("USDT", usdt.free + 1, Decimal(0)))
        with stores[0].read() as session:
            balance = session.get_balances("paper")["USDT"]
    finally:
        for store in stores:
            store.close()

    assert balance.free == 3
