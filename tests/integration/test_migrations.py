"""Schema versions, on SQLite and PostgreSQL: upgrading an old database keeps every row; a newer one is refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import inspect

from robson.adapters.store import migrations
from robson.adapters.store.engine import build_engine, write_connection
from robson.adapters.store.tables import ALL_TABLES
from robson.application.ports import Balance
from robson.domain.intent import EntryOrder, IntentStatus
from robson.domain.market import Candle, Side
from robson.domain.operation import OperationStatus
from robson.domain.orders import AuditKind, OrderStatus
from robson.domain.signals import Signal, SignalStatus
from robson.errors import StoreError
from tests.databases import Target, execute, fetch, open_store, store_url

ALL_VERSIONS = [m.version for m in migrations.MIGRATIONS]
V1_ROWS = [
    """INSERT INTO intents (id, symbol, side, status, strategy, source, timeframe, capital, risk_percent,
       entry, stop, stop_method, quantity, target, created_at, updated_at, note, confidence, validation,
       validated_at, execution, operation_id, details)
       VALUES ('pl-7f3a9c2e', 'BTCUSDT', 'BUY', 'EXECUTED', 'All In', 'manual', '15m', '100', '1',
       '95432.00', '93500.00', 'technical: 2nd support', '0.00051000', NULL,
       '2024-05-01T12:00:00.000000+00:00', '2024-05-01T12:05:00.000000+00:00', 'não é conselho', '0.8',
       '{"verdict":"PASS","at":"2024-05-01T12:01:00+00:00","market":"sample","results":[]}',
       '2024-05-01T12:01:00.000000+00:00', NULL, 'op-1a2b3c4d', '{"risk":"0.99"}')""",
    """INSERT INTO operations (id, intent_id, symbol, side, status, mode, strategy, quantity, entry_price,
       entry_fee, initial_stop, stop, target, opened_at, updated_at, quote_asset, exit_price, exit_fee,
       realized_pnl, close_reason, closed_at)
       VALUES ('op-1a2b3c4d', 'pl-7f3a9c2e', 'BTCUSDT', 'BUY', 'CLOSED', 'paper', 'All In', '0.00051000',
       '95432.00', '0.04866', '93500.00', '93500.00', NULL, '2024-05-01T12:05:00.000000+00:00',
       '2024-05-01T15:00:00.000000+00:00', 'USDT', '93500.00', '0.047685', '-1.081665', 'stop',
       '2024-05-01T15:00:00.000000+00:00')""",
    """INSERT INTO orders (client_order_id, exchange, symbol, side, type, quantity, status, created_at,
       updated_at, filled_quantity, fee, intent_id)
       VALUES ('rb-pl-7f3a9c2e-E', 'paper', 'BTCUSDT', 'BUY', 'MARKET', '0.00051000', 'FILLED',
       '2024-05-01T12:05:00.000000+00:00', '2024-05-01T12:05:00.000000+00:00', '0.00051000', '0.04866',
       'pl-7f3a9c2e')""",
    "INSERT INTO balances VALUES ('paper', 'USDT', '998.91833500', '0')",
    """INSERT INTO audit_events (at, kind, message, intent_id, operation_id, data)
       VALUES ('2024-05-01T12:00:00.000000+00:00', 'planned', 'planned BTCUSDT', 'pl-7f3a9c2e', NULL, '{}')""",
]


def build_v1_database(path: Target) -> None:
    engine = build_engine(store_url(path))
    with write_connection(engine) as connection, connection.begin():
        assert migrations.apply_pending(connection, target=1) == [1]
        for statement in V1_ROWS:
            connection.exec_driver_sql(statement)
    engine.dispose()


def stored_versions(path: Target) -> list[int]:
    return [row["version"] for row in fetch(path, "SELECT version FROM schema_version ORDER BY version")]


def test_a_v1_database_is_upgraded_on_open_and_every_row_survives(empty_database: Target) -> None:
    path = empty_database
    build_v1_database(path)

    store = open_store(path)
    with store.read() as session:
        intent = session.get_intent("pl-7f3a9c2e")
        operation = session.get_operation("op-1a2b3c4d")
        order = session.get_order("rb-pl-7f3a9c2e-E")
        balances = session.get_balances("paper")
        trail = session.audit_trail(intent_id="pl-7f3a9c2e")

    assert store.schema_version() == migrations.LATEST_VERSION
    assert stored_versions(path) == ALL_VERSIONS
    assert (intent.status, intent.quantity, intent.note, intent.signal_id) == (
        IntentStatus.EXECUTED,
        Decimal("0.00051000"),
        "não é conselho",
        None,
    )
    assert intent.details == {"risk": "0.99"} and intent.validated_at == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    assert (operation.status, operation.realized_pnl, operation.last_checked_at) == (
        OperationStatus.CLOSED,
        Decimal("-1.081665"),
        None,
    )
    assert order is not None and order.status is OrderStatus.FILLED
    assert balances == {"USDT": Balance("USDT", Decimal("998.91833500"), Decimal("0"))}
    assert [event.kind for event in trail] == [AuditKind.PLANNED]


def test_the_upgraded_database_accepts_what_v2_added(empty_database: Target) -> None:
    path = empty_database
    build_v1_database(path)
    store = open_store(path)
    with store.read() as session:
        intent = session.get_intent("pl-7f3a9c2e")
    candle = Candle(1_700_000_000_000, Decimal("1"), Decimal("2"), Decimal("0.5"), Decimal("1.5"), Decimal("10"))

    with store.transaction() as session:
        session.update_intent(dataclasses.replace(intent, signal_id="sig-1"), expected_status=IntentStatus.EXECUTED)
        session.save_candles("BTCUSDT", "1h", [candle])
    with store.read() as session:
        assert session.get_intent("pl-7f3a9c2e").signal_id == "sig-1"
        assert session.load_candles("BTCUSDT", "1h") == [candle]


V3_ROWS = [
    *V1_ROWS,
    "UPDATE intents SET signal_id = 'sg-0badc0de', source = 'pattern' WHERE id = 'pl-7f3a9c2e'",
    "UPDATE operations SET last_checked_at = '2024-05-01T14:00:00.000000+00:00' WHERE id = 'op-1a2b3c4d'",
    "INSERT INTO candles VALUES ('BTCUSDT', '15m', 1624367700000, '32850.10', '33010.00', '32790.55', '32990.01', '812.40000000')",
    """INSERT INTO locks VALUES ('scan', 'robson scan', 'host-a', 4242, '2024-05-01T12:00:00.000000+00:00',
       '2024-05-01T12:10:00.000000+00:00')""",
]


def build_v3_database(path: Target) -> None:
    engine = build_engine(store_url(path))
    with write_connection(engine) as connection, connection.begin():
        assert migrations.apply_pending(connection, target=3) == [1, 2, 3]
        for statement in V3_ROWS:
            connection.exec_driver_sql(statement)
    engine.dispose()


def table_rows(path: Target, table: str) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in fetch(path, f"SELECT * FROM {table} ORDER BY 1")]


def test_a_v3_database_full_of_rows_upgrades_to_the_latest_with_every_row_intact(empty_database: Target) -> None:
    path = empty_database
    build_v3_database(path)
    tables = ("intents", "operations", "orders", "balances", "audit_events", "candles", "locks")
    before = {table: table_rows(path, table) for table in tables}

    store = open_store(path)
    version = store.schema_version()
    with store.read() as session:
        intent = session.get_intent("pl-7f3a9c2e")
        candles = session.load_candles("BTCUSDT", "15m")
        signals = session.list_signals()

    assert version == migrations.LATEST_VERSION and stored_versions(path) == ALL_VERSIONS
    after = {table: table_rows(path, table) for table in tables}
    # v6 added the start time (unknown here); v7 made the row a lease on epoch milliseconds, place unknown.
    assert after.pop("locks") == [("scan", "robson scan", "host-a", 4242, None, None, 1714564800000, 1714564800000,
                                   1714565400000)]
    before.pop("locks")
    # v8 added each intent's entry order and expiry: NULL, a market entry as every intent before v8 was.
    assert after.pop("intents") == [row + (None, None) for row in before.pop("intents")]
    # v9 added each operation's ladder (NULL: one target) and the parts of it passed (0).
    assert after.pop("operations") == [row + (None, 0) for row in before.pop("operations")]
    assert after == before
    assert intent.entry_order is EntryOrder.MARKET and intent.expires_at is None
    assert intent.signal_id == "sg-0badc0de" and intent.quantity == Decimal("0.00051000")
    assert [(c.open_time, str(c.close), str(c.volume)) for c in candles] == [(1624367700000, "32990.01", "812.40000000")]
    assert signals == []


def test_the_upgraded_v4_database_round_trips_a_signal_and_keeps_it_unique(empty_database: Target) -> None:
    path = empty_database
    build_v3_database(path)
    store = open_store(path)
    signal = Signal(
        id="sg-0badc0de", strategy="rescue-forces", pattern="ma4-crosses-above-ma9", symbol="BTCUSDT",
        timeframe="15m", candle_open_time=1624367700000, side=Side.BUY, confidence=Decimal("0.75"),
        status=SignalStatus.DETECTED, detected_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        updated_at=datetime(2024, 5, 1, 12, tzinfo=UTC), values={"ma4": Decimal("32871.5025"), "ma9": None},
        reason="ma4 crosses above ma9", intent_id="pl-7f3a9c2e",
    )

    with store.transaction() as session:
        first = session.add_signal(signal)
        again = session.add_signal(dataclasses.replace(signal, id="sg-11111111"))
    with store.read() as session:
        assert session.get_signal("sg-0badc0de") == signal
        assert session.get_intent("pl-7f3a9c2e").signal_id == "sg-0badc0de"
    assert (first, again) == (True, False)


def test_migrations_build_exactly_the_schema_the_table_models_describe(empty_database: Target) -> None:
    store = open_store(empty_database)
    inspector = inspect(store.engine)

    for table in ALL_TABLES:
        reflected = {column["name"]: column["nullable"] for column in inspector.get_columns(table.name)}
        modelled = {column.name: column.nullable for column in table.columns}
        assert reflected == modelled, table.name
        assert inspector.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
        reflected_indexes = {
            (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table.name)
        }
        modelled_indexes = {(i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        assert reflected_indexes == modelled_indexes, table.name
    assert set(inspector.get_table_names()) == {table.name for table in ALL_TABLES}


def test_the_schema_has_the_indexes_the_queries_need(empty_database: Target) -> None:
    inspector = inspect(open_store(empty_database).engine)

    indexed = {
        (table, tuple(index["column_names"]))
        for table in ("intents", "operations", "audit_events", "signals")
        for index in inspector.get_indexes(table)
    }

    assert {
        ("intents", ("status",)),
        ("operations", ("status",)),
        ("operations", ("symbol",)),
        ("audit_events", ("intent_id",)),
        ("audit_events", ("operation_id",)),
        ("signals", ("status",)),
        ("signals", ("strategy", "pattern", "symbol", "timeframe", "candle_open_time")),
    } <= indexed


def test_opening_an_up_to_date_database_migrates_nothing(empty_database: Target) -> None:
    path = empty_database
    open_store(path).schema_version()

    for _ in range(3):
        open_store(path).schema_version()

    assert stored_versions(path) == ALL_VERSIONS


def test_a_database_from_a_newer_robson_is_refused(empty_database: Target) -> None:
    path = empty_database
    open_store(path).schema_version()
    execute(path, "INSERT INTO schema_version VALUES (99, '2030-01-01T00:00:00.000000+00:00', 'from the future')")

    with pytest.raises(StoreError, match=rf"database schema v99 is newer than this robson \(v{migrations.LATEST_VERSION}\); "
                                         "upgrade robson"):
        open_store(path).schema_version()


def test_a_failing_migration_leaves_the_database_as_it_was(empty_database: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    path = empty_database
    open_store(path).schema_version()

    def broken(connection: object) -> None:
        connection.exec_driver_sql("ALTER TABLE intents ADD COLUMN half_done TEXT")  # type: ignore[attr-defined]
        raise RuntimeError("migration bug")

    broken_version = migrations.LATEST_VERSION + 1
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        (*migrations.MIGRATIONS, migrations.Migration(broken_version, "broken", broken)))
    monkeypatch.setattr(migrations, "LATEST_VERSION", broken_version)
    with pytest.raises(RuntimeError, match="migration bug"):
        migrations.upgrade(build_engine(store_url(path)), target=broken_version)

    columns = [column["name"] for column in inspect(build_engine(store_url(path))).get_columns("intents")]
    assert "half_done" not in columns
    assert stored_versions(path) == ALL_VERSIONS


def test_migrations_are_numbered_one_by_one_from_1() -> None:
    assert ALL_VERSIONS == list(range(1, len(ALL_VERSIONS) + 1))
    assert migrations.LATEST_VERSION == ALL_VERSIONS[-1]


def test_a_lock_row_from_before_v6_survives_with_no_start_time(empty_database: Target) -> None:
    path = empty_database
    engine = build_engine(store_url(path))
    with write_connection(engine) as connection, connection.begin():
        migrations.apply_pending(connection, target=5)
        connection.exec_driver_sql(V3_ROWS[-1])  # the lock row
    engine.dispose()

    store = open_store(path)
    store.schema_version()

    assert table_rows(path, "locks") == [("scan", "robson scan", "host-a", 4242, None, None, 1714564800000,
                                          1714564800000, 1714565400000)]


def test_a_v6_lock_becomes_a_lease_that_lasts_as_long_as_the_old_row_said(empty_database: Target) -> None:
    path = empty_database
    engine = build_engine(store_url(path))
    with write_connection(engine) as connection, connection.begin():
        migrations.apply_pending(connection, target=6)
        connection.exec_driver_sql(
            "INSERT INTO locks VALUES ('monitor', 'host-a:4242:cafe0123', 'host-a', 4242, "
            "'2024-05-01T12:00:00.000000+00:00', '2024-05-01T12:10:00.000000+00:00', 'boot:1000'), "
            "('scan', 'host-b:7:beef', 'host-b', 7, 'not a time', '2024-05-01T12:10:00', NULL)")
    engine.dispose()

    store = open_store(path)
    assert store.schema_version() == migrations.LATEST_VERSION

    assert table_rows(path, "locks") == [
        ("monitor", "host-a:4242:cafe0123", "host-a", 4242, "boot:1000", None, 1714564800000, 1714564800000,
         1714565400000),
        ("scan", "host-b:7:beef", "host-b", 7, None, None, 0, 0, 1714565400000),  # a time without zone is UTC
    ]
    with store.lock("monitor", what="robson monitor"):  # long expired: taken over
        pass
    store.close()
    assert table_rows(path, "locks") == [("scan", "host-b:7:beef", "host-b", 7, None, None, 0, 0, 1714565400000)]
