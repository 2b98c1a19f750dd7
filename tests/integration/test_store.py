"""The SQL store over a real SQLite file or PostgreSQL database: round trips, compare-and-set, queries, transactions."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from robson.adapters.store import SqlStore
from robson.adapters.store.migrations import LATEST_VERSION
from robson.application.ports import Balance
from robson.domain.intent import IntentEvent, IntentStatus
from robson.domain.market import Candle, Side
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.orders import AuditEvent, AuditKind, Order, OrderStatus, OrderType
from robson.errors import AmbiguousId, DuplicateOrder, IllegalTransition, InvalidInput, NotFound, StoreError

from tests.databases import Target, fetch, is_postgresql, raw_connection

from factories import T0, make_intent  # noqa: E402  (tests/integration is on sys.path)
# ../shared sits beside the repository (locally and in CI).
BINANCE_1H = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "binance" / "BTCUSDT-1h.json"


def make_operation(operation_id: str = "op-1a2b3c4d", intent_id: str = "pl-7f3a9c2e", **changes: object) -> Operation:
    operation = Operation(
        id=operation_id,
        intent_id=intent_id,
        symbol="BTCUSDT",
        side=Side.BUY,
        status=OperationStatus.ACTIVE,
        mode="paper",
        strategy="All In",
        quantity=Decimal("0.00051"),
        entry_price=Decimal("95432.00"),
        entry_fee=Decimal("0.04866"),
        initial_stop=Decimal("93500.00"),
        stop=Decimal("93500.00"),
        target=Decimal("99296.00"),
        opened_at=T0,
        updated_at=T0,
    )
    return dataclasses.replace(operation, **changes)


def make_order(client_order_id: str = "rb-pl-7f3a9c2e-E", **changes: object) -> Order:
    order = Order(
        client_order_id=client_order_id,
        exchange="paper",
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.MARKET,
        quantity=Decimal("0.00051"),
        status=OrderStatus.FILLED,
        created_at=T0,
        updated_at=T0,
        filled_quantity=Decimal("0.00051"),
        average_price=Decimal("95432.00"),
        fee=Decimal("0.04866"),
        fee_asset="USDT",
        intent_id="pl-7f3a9c2e",
    )
    return dataclasses.replace(order, **changes)


def closed(operation: Operation, *, pnl: str, at: datetime, reason: CloseReason = CloseReason.TARGET) -> Operation:
    return dataclasses.replace(
        operation,
        status=OperationStatus.CLOSED,
        exit_price=Decimal("96000"),
        realized_pnl=Decimal(pnl),
        close_reason=reason,
        closed_at=at,
        updated_at=at,
    )


@pytest.fixture
def db_path(robson_db: Target) -> Target:
    """The test's database: a SQLite file, or a PostgreSQL URL under --database postgresql."""
    return robson_db


def open_store(target: Target) -> SqlStore:
    return SqlStore(target) if is_postgresql(target) else SqlStore.for_path(target)


@pytest.fixture
def store(db_path: Target) -> Iterator[SqlStore]:
    store = open_store(db_path)
    yield store
    store.close()


def add_intents_with_operations(store: SqlStore, *pairs: tuple[str, str], **operation_changes: object) -> None:
    with store.transaction() as session:
        for intent_id, operation_id in pairs:
            session.add_intent(make_intent(intent_id))
            session.add_operation(make_operation(operation_id, intent_id, **operation_changes))


# --- opening -----------------------------------------------------------------------------


@pytest.mark.sqlite_only("a SQLite file on disk")
def test_for_path_creates_the_directory_and_a_database_at_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "robson.db"

    store = SqlStore.for_path(path)

    assert store.schema_version() == LATEST_VERSION
    assert path.is_file()
    assert store.url == f"sqlite:///{path}"


@pytest.mark.sqlite_only("a SQLite file on disk")
def test_for_path_keeps_url_special_characters_in_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "odd dir%20" / "robson?v=1#x.db"

    SqlStore.for_path(path).schema_version()

    assert path.is_file()


@pytest.mark.sqlite_only("a SQLite file on disk")
def test_constructing_a_store_does_not_touch_the_disk(tmp_path: Path) -> None:
    path = tmp_path / "lazy.db"

    SqlStore.for_path(path)

    assert not path.exists()


@pytest.mark.sqlite_only("SQLite PRAGMAs")
def test_sqlite_connections_use_wal_busy_timeout_foreign_keys_and_normal_sync(store: SqlStore) -> None:
    with store.engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        settings = {name: pragma(name) for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")}

    assert settings == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1, "synchronous": 1}


@pytest.mark.sqlite_only("a SQLite file on disk")
def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("this is not sqlite, just a text file that happens to be long enough " * 20)

    with pytest.raises(StoreError, match="file is not a database"):
        SqlStore.for_path(path).schema_version()


def test_an_unusable_url_is_a_store_error_that_hides_the_password() -> None:
    store = SqlStore("postgresql+nosuchdriver://robson:s3cret@db.example/robson")

    with pytest.raises(StoreError) as raised:
        store.schema_version()

    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in repr(store)


# --- intents ---------------------------------------------------------------------------


def test_an_intent_round_trips_with_every_field(store: SqlStore) -> None:
    intent = make_intent(
        note="suporte duplo — ação 📈",
        confidence=Decimal("0.75"),
        signal_id="sig-42",
        validation={"verdict": "PASS", "results": [{"guard": "risk per trade", "verdict": "PASS",
                                                    "message": "risk 0.99", "numbers": {"risk": Decimal("0.99")}}]},
        validated_at=T0 + timedelta(minutes=1),
        execution={"mode": "paper"},
        operation_id="op-1a2b3c4d",
        details={"risk_after_fees": Decimal("1.0373"), "at": T0},
    )

    with store.transaction() as session:
        session.add_intent(intent)
    with store.read() as session:
        loaded = session.get_intent(intent.id)

    # JSON fields are display data: Decimals and datetimes inside them come back as strings.
    assert loaded.details == {"risk_after_fees": "1.0373", "at": "2024-05-01T12:00:00.000000+00:00"}
    assert loaded.validation == {"verdict": "PASS", "results": [{"guard": "risk per trade", "verdict": "PASS",
                                                              "message": "risk 0.99", "numbers": {"risk": "0.99"}}]}
    scalar_fields = ("validation", "details")
    assert dataclasses.replace(loaded, **{f: None for f in scalar_fields}) == dataclasses.replace(
        intent, **{f: None for f in scalar_fields}
    )


def test_an_intent_with_only_required_fields_round_trips(store: SqlStore) -> None:
    intent = make_intent(target=None)

    with store.transaction() as session:
        session.add_intent(intent)
    with store.read() as session:
        loaded = session.get_intent(intent.id)

    assert loaded == intent
    assert loaded.note is None and loaded.validation is None and loaded.details == {}


def test_decimals_are_stored_as_their_exact_text(store: SqlStore, db_path: Target) -> None:
    with store.transaction() as session:
        session.add_intent(make_intent(quantity=Decimal("0.00051000")))

    type_of = "pg_typeof(quantity)::text" if is_postgresql(db_path) else "typeof(quantity)"
    stored = tuple(fetch(db_path, f"SELECT quantity, {type_of} AS kind FROM intents")[0].values())
    with store.read() as session:
        loaded = session.get_intent("pl-7f3a9c2e").quantity

    assert stored == ("0.00051000", "text")
    assert str(loaded) == "0.00051000"


def test_datetimes_come_back_as_aware_utc_equal_to_what_went_in(store: SqlStore) -> None:
    sao_paulo = timezone(timedelta(hours=-3))
    created = datetime(2024, 5, 1, 9, 30, 15, 123456, tzinfo=sao_paulo)

    with store.transaction() as session:
        session.add_intent(make_intent(created_at=created, updated_at=created))
    with store.read() as session:
        loaded = session.get_intent("pl-7f3a9c2e").created_at

    assert loaded == created
    assert loaded.tzinfo == UTC
    assert loaded.hour == 12


def test_a_naive_datetime_is_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="naive datetime"), store.transaction() as session:
        session.add_intent(make_intent(created_at=datetime(2024, 5, 1, 12, 0)))


def test_a_float_amount_is_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="must be Decimal"), store.transaction() as session:
        session.add_intent(make_intent(capital=100.1))  # type: ignore[arg-type]


def test_getting_an_unknown_intent_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="intent pl-00000000 not found"), store.read() as session:
        session.get_intent("pl-00000000")


def test_adding_an_intent_twice_is_a_store_error(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_intent(make_intent())

    with pytest.raises(StoreError, match="(?i)unique"), store.transaction() as session:
        session.add_intent(make_intent())


def test_update_intent_writes_when_the_stored_status_is_the_expected_one(store: SqlStore) -> None:
    intent = make_intent()
    with store.transaction() as session:
        session.add_intent(intent)
    validated = intent.apply(IntentEvent.VALIDATION_PASSED, T0 + timedelta(minutes=2), validation={"verdict": "PASS", "results": []})

    with store.transaction() as session:
        session.update_intent(validated, expected_status=IntentStatus.PENDING)
    with store.read() as session:
        loaded = session.get_intent(intent.id)

    assert loaded == validated


def test_update_intent_refuses_when_someone_else_changed_the_status_first(store: SqlStore) -> None:
    intent = make_intent(status=IntentStatus.EXECUTED)
    with store.transaction() as session:
        session.add_intent(intent)
    stale = dataclasses.replace(intent, status=IntentStatus.EXECUTING)

    with pytest.raises(IllegalTransition, match="intent pl-7f3a9c2e is EXECUTED, expected VALIDATED"):
        with store.transaction() as session:
            session.update_intent(stale, expected_status=IntentStatus.VALIDATED)
    with store.read() as session:
        assert session.get_intent(intent.id).status is IntentStatus.EXECUTED


def test_update_of_an_unknown_intent_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound), store.transaction() as session:
        session.update_intent(make_intent(), expected_status=IntentStatus.PENDING)


def test_list_intents_is_ordered_by_creation_time_then_id_and_filters_by_status(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_intent(make_intent("pl-cccccccc", created_at=T0 + timedelta(hours=1)))
        session.add_intent(make_intent("pl-bbbbbbbb", created_at=T0, status=IntentStatus.VALIDATED))
        session.add_intent(make_intent("pl-aaaaaaaa", created_at=T0))

    with store.read() as session:
        every = [intent.id for intent in session.list_intents()]
        validated = [intent.id for intent in session.list_intents(IntentStatus.VALIDATED)]

    assert every == ["pl-aaaaaaaa", "pl-bbbbbbbb", "pl-cccccccc"]
    assert validated == ["pl-bbbbbbbb"]


# --- resolving IDs -------------------------------------------------------------------------


@pytest.fixture
def three_intents(store: SqlStore) -> SqlStore:
    with store.transaction() as session:
        for intent_id in ("pl-7f3a9c2e", "pl-7f3b0000", "pl-12345678"):
            session.add_intent(make_intent(intent_id))
    return store


@pytest.mark.parametrize("text", ["pl-7f3a9c2e", "7f3a", "PL-7F3A", " 7F3A9C2E ", "pl-7f3a9", "7f3a9c2e"])
def test_an_intent_id_resolves_from_a_full_id_or_unique_prefix_in_any_case(three_intents: SqlStore, text: str) -> None:
    with three_intents.read() as session:
        assert session.resolve_intent_id(text) == "pl-7f3a9c2e"


def test_an_intent_prefix_matching_nothing_is_not_found(three_intents: SqlStore) -> None:
    with pytest.raises(NotFound, match="no intent matches 'pl-zz'"), three_intents.read() as session:
        session.resolve_intent_id("zz")


def test_an_intent_prefix_matching_several_is_ambiguous_and_lists_them(three_intents: SqlStore) -> None:
    with pytest.raises(AmbiguousId) as raised, three_intents.read() as session:
        session.resolve_intent_id("7f3")

    assert raised.value.candidates == ["pl-7f3a9c2e", "pl-7f3b0000"]
    assert "pl-7f3" in str(raised.value)


def test_like_wildcards_in_a_prefix_match_literally(three_intents: SqlStore) -> None:
    with pytest.raises(NotFound), three_intents.read() as session:
        session.resolve_intent_id("%")


@pytest.mark.parametrize("text", ["", "  "])
def test_an_empty_id_is_invalid_input(three_intents: SqlStore, text: str) -> None:
    with pytest.raises(InvalidInput, match="an intent ID is required"), three_intents.read() as session:
        session.resolve_intent_id(text)


@pytest.mark.parametrize("text", ["pl-", "PL-", "pl", "Pl"])
def test_the_type_prefix_alone_matches_every_intent(three_intents: SqlStore, text: str) -> None:
    with pytest.raises(AmbiguousId, match="ID prefix 'pl-' is ambiguous: it matches 3 records"), \
            three_intents.read() as session:
        session.resolve_intent_id(text)


def test_an_id_longer_than_any_stored_id_is_not_found_without_a_database_error(three_intents: SqlStore) -> None:
    with pytest.raises(NotFound, match=r"no intent matches 'pl-aaaa.*' \(100,003 characters"), \
            three_intents.read() as session:
        session.resolve_intent_id("a" * 100_000)


def test_an_operation_id_resolves_like_an_intent_id(store: SqlStore) -> None:
    add_intents_with_operations(store, ("pl-11111111", "op-ab12cd34"), ("pl-22222222", "op-ab99ffff"))

    with store.read() as session:
        assert session.resolve_operation_id("OP-AB12") == "op-ab12cd34"
        assert session.resolve_operation_id("ab12cd34") == "op-ab12cd34"
        with pytest.raises(AmbiguousId):
            session.resolve_operation_id("ab")
        with pytest.raises(NotFound, match="no operation matches 'op-ff'"):
            session.resolve_operation_id("ff")


# --- operations ---------------------------------------------------------------------------


def test_an_operation_round_trips_open_and_closed(store: SqlStore) -> None:
    opened = make_operation(last_checked_at=T0 + timedelta(minutes=5))
    with store.transaction() as session:
        session.add_intent(make_intent())
        session.add_operation(opened)
    closed_operation = opened.close(
        exit_price=Decimal("93500.00"),
        exit_fee=Decimal("0.0476850"),
        reason=CloseReason.STOP,
        at=T0 + timedelta(hours=3),
    )

    with store.read() as session:
        loaded_open = session.get_operation(opened.id)
    with store.transaction() as session:
        session.update_operation(closed_operation, expected_status=OperationStatus.ACTIVE)
    with store.read() as session:
        loaded_closed = session.get_operation(opened.id)
        by_intent = session.operation_for_intent("pl-7f3a9c2e")

    assert loaded_open == opened
    assert loaded_closed == closed_operation == by_intent
    assert str(loaded_closed.realized_pnl) == str(closed_operation.realized_pnl)


def test_update_operation_refuses_a_stale_status(store: SqlStore) -> None:
    add_intents_with_operations(store, ("pl-7f3a9c2e", "op-1a2b3c4d"))
    with store.transaction() as session:
        session.update_operation(closed(make_operation(), pnl="1", at=T0), expected_status=OperationStatus.ACTIVE)

    with pytest.raises(IllegalTransition, match="operation op-1a2b3c4d is CLOSED, expected ACTIVE"):
        with store.transaction() as session:
            session.update_operation(closed(make_operation(), pnl="2", at=T0), expected_status=OperationStatus.ACTIVE)


def test_an_unknown_operation_is_not_found_and_an_intent_without_one_has_none(store: SqlStore) -> None:
    with store.read() as session:
        with pytest.raises(NotFound, match="operation op-00000000 not found"):
            session.get_operation("op-00000000")
        assert session.operation_for_intent("pl-7f3a9c2e") is None


def test_an_operation_must_belong_to_a_stored_intent(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="(?i)foreign key"), store.transaction() as session:
        session.add_operation(make_operation(intent_id="pl-nothere"))


def test_list_operations_is_ordered_by_opening_time_and_filters_by_status(store: SqlStore) -> None:
    with store.transaction() as session:
        for index, intent_id in enumerate(("pl-00000003", "pl-00000001", "pl-00000002")):
            session.add_intent(make_intent(intent_id))
            operation = make_operation(f"op-0000000{index}", intent_id, opened_at=T0 - timedelta(hours=index))
            session.add_operation(closed(operation, pnl="1", at=T0) if index == 1 else operation)

    with store.read() as session:
        every = [operation.id for operation in session.list_operations()]
        active = [operation.id for operation in session.list_operations(OperationStatus.ACTIVE)]

    assert every == ["op-00000002", "op-00000001", "op-00000000"]
    assert active == ["op-00000002", "op-00000000"]


def test_realized_pnl_sums_operations_closed_in_the_half_open_window_exactly(store: SqlStore) -> None:
    day = datetime(2024, 5, 1, tzinfo=UTC)
    outcomes = [
        ("-0.10000000000000000001", day),  # at the start: counted
        ("0.2", day + timedelta(hours=23, minutes=59, seconds=59, microseconds=999999)),  # counted
        ("-0.3", day + timedelta(days=1)),  # at the end: next day
        ("5", day - timedelta(microseconds=1)),  # previous day
    ]
    with store.transaction() as session:
        for index, (pnl, at) in enumerate(outcomes):
            session.add_intent(make_intent(f"pl-0000000{index}"))
            session.add_operation(closed(make_operation(f"op-0000000{index}", f"pl-0000000{index}"), pnl=pnl, at=at))
        session.add_intent(make_intent("pl-0000000a"))
        session.add_operation(make_operation("op-0000000a", "pl-0000000a"))  # still open

    with store.read() as session:
        total = session.realized_pnl_between(day, day + timedelta(days=1))
        nothing = session.realized_pnl_between(day + timedelta(days=5), day + timedelta(days=6))

    assert total == Decimal("0.09999999999999999999")
    assert nothing == Decimal("0")


def test_last_stop_out_is_the_latest_stop_close_on_that_symbol(store: SqlStore) -> None:
    cases = [
        ("BTCUSDT", CloseReason.STOP, T0),
        ("BTCUSDT", CloseReason.STOP, T0 + timedelta(hours=2)),
        ("BTCUSDT", CloseReason.TARGET, T0 + timedelta(hours=5)),
        ("ETHUSDT", CloseReason.STOP, T0 + timedelta(hours=9)),
    ]
    with store.transaction() as session:
        for index, (symbol, reason, at) in enumerate(cases):
            session.add_intent(make_intent(f"pl-0000000{index}"))
            operation = make_operation(f"op-0000000{index}", f"pl-0000000{index}", symbol=symbol)
            session.add_operation(closed(operation, pnl="-1", at=at, reason=reason))

    with store.read() as session:
        assert session.last_stop_out("BTCUSDT") == T0 + timedelta(hours=2)
        assert session.last_stop_out("ETHUSDT") == T0 + timedelta(hours=9)
        assert session.last_stop_out("SOLUSDT") is None


# --- orders and balances -------------------------------------------------------------------


def test_an_order_round_trips_and_a_second_one_with_the_same_client_id_is_a_duplicate(store: SqlStore) -> None:
    stop = make_order(
        "rb-pl-7f3a9c2e-S",
        type=OrderType.OCO,
        side=Side.SELL,
        status=OrderStatus.NEW,
        price=Decimal("93400.00"),
        stop_price=Decimal("93500.00"),
        target_price=Decimal("99296.00"),
        filled_quantity=Decimal("0"),
        average_price=None,
        fee=Decimal("0"),
        fee_asset=None,
        exchange_order_id="12345",
        operation_id="op-1a2b3c4d",
    )
    with store.transaction() as session:
        session.add_order(stop)

    with pytest.raises(DuplicateOrder, match="rb-pl-7f3a9c2e-S"), store.transaction() as session:
        session.add_order(dataclasses.replace(stop, quantity=Decimal("9")))
    with store.read() as session:
        assert session.get_order("rb-pl-7f3a9c2e-S") == stop
        assert session.get_order("rb-unknown") is None


def test_update_order_overwrites_it_and_an_unknown_one_is_not_found(store: SqlStore) -> None:
    order = make_order(status=OrderStatus.NEW, filled_quantity=Decimal("0"))
    with store.transaction() as session:
        session.add_order(order)
    filled = dataclasses.replace(order, status=OrderStatus.FILLED, filled_quantity=Decimal("0.00051"))

    with store.transaction() as session:
        session.update_order(filled)
        with pytest.raises(NotFound):
            session.update_order(make_order("rb-unknown"))
    with store.read() as session:
        assert session.get_order(order.client_order_id) == filled


def test_orders_for_intent_are_that_intents_orders_oldest_first(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_order(make_order("rb-pl-7f3a9c2e-S", created_at=T0 + timedelta(seconds=1)))
        session.add_order(make_order("rb-pl-7f3a9c2e-E"))
        session.add_order(make_order("rb-pl-other-E", intent_id="pl-other"))

    with store.read() as session:
        ids = [order.client_order_id for order in session.orders_for_intent("pl-7f3a9c2e")]

    assert ids == ["rb-pl-7f3a9c2e-E", "rb-pl-7f3a9c2e-S"]


def test_get_orders_returns_the_stored_ones_among_many_ids_by_client_id(store: SqlStore) -> None:
    stored = [f"rb-pl-{n:08x}-X" for n in range(0, 1200, 2)]  # every other id of 1,200: three batches asked
    with store.transaction() as session:
        for order_id in stored:
            session.add_order(make_order(order_id, intent_id=order_id[3:-2]))

    with store.read() as session:
        found = session.get_orders([f"rb-pl-{n:08x}-X" for n in range(1200)])
        none = session.get_orders([])

    assert sorted(found) == stored and none == {}
    assert all(order.client_order_id == order_id for order_id, order in found.items())


def test_set_balance_inserts_then_replaces_per_account_and_asset(store: SqlStore) -> None:
    with store.transaction() as session:
        assert session.get_balances("paper") == {}
        session.set_balance("paper", Balance("USDT", Decimal("1000.00"), Decimal("0")))
        session.set_balance("paper", Balance("BTC", Decimal("0.00051000"), Decimal("0")))
        session.set_balance("other", Balance("USDT", Decimal("5"), Decimal("0")))
    with store.transaction() as session:
        session.set_balance("paper", Balance("USDT", Decimal("951.27"), Decimal("48.73")))

    with store.read() as session:
        paper = session.get_balances("paper")
        other = session.get_balances("other")

    assert paper == {
        "BTC": Balance("BTC", Decimal("0.00051000"), Decimal("0")),
        "USDT": Balance("USDT", Decimal("951.27"), Decimal("48.73")),
    }
    assert other == {"USDT": Balance("USDT", Decimal("5"), Decimal("0"))}


# --- audit trail ---------------------------------------------------------------------------


def test_the_audit_trail_keeps_events_in_order_and_filters_by_intent_or_operation(store: SqlStore) -> None:
    events = [
        AuditEvent(T0, AuditKind.PLANNED, "planned BTCUSDT", intent_id="pl-a", data={"risk": Decimal("0.99")}),
        AuditEvent(T0, AuditKind.VALIDATED, "validated ✓", intent_id="pl-a"),
        AuditEvent(T0, AuditKind.PLANNED, "planned ETHUSDT", intent_id="pl-b"),
        AuditEvent(T0 + timedelta(seconds=1), AuditKind.STOP_MOVED, "stop moved", operation_id="op-a"),
    ]
    with store.transaction() as session:
        for event in events:
            session.record(event)

    with store.read() as session:
        everything = session.audit_trail()
        of_intent = session.audit_trail(intent_id="pl-a")
        of_operation = session.audit_trail(operation_id="op-a")
        of_both = session.audit_trail(intent_id="pl-a", operation_id="op-a")

    assert [event.message for event in everything] == [event.message for event in events]
    assert of_intent[0].data == {"risk": "0.99"}  # JSON data keeps Decimals as strings
    assert [event.kind for event in of_intent] == [AuditKind.PLANNED, AuditKind.VALIDATED]
    assert [event.kind for event in of_operation] == [AuditKind.STOP_MOVED]
    assert [event.message for event in of_both] == ["planned BTCUSDT", "validated ✓", "stop moved"]


def test_audit_data_that_is_not_json_is_a_store_error(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="JSON"), store.transaction() as session:
        session.record(AuditEvent(T0, AuditKind.PLANNED, "x", data={"bad": object()}))


# --- candles ------------------------------------------------------------------------------


def hourly(count: int, start: int = 1_700_000_000_000, close: str = "100.10") -> list[Candle]:
    price = Decimal(close)
    return [Candle(start + i * 3_600_000, price, price + 1, price - 1, price, Decimal("1.50")) for i in range(count)]


def test_save_candles_counts_what_it_wrote_and_replaces_the_same_open_time(store: SqlStore) -> None:
    first = hourly(5)
    revised = hourly(2, start=first[3].open_time, close="200.00")

    with store.transaction() as session:
        written = session.save_candles("BTCUSDT", "1h", first)
        rewritten = session.save_candles("BTCUSDT", "1h", revised + revised[:1])  # a repeat in the batch
    with store.read() as session:
        loaded = session.load_candles("BTCUSDT", "1h")

    assert (written, rewritten) == (5, 2)
    assert loaded == first[:3] + revised
    assert [c.open_time for c in loaded] == sorted(c.open_time for c in loaded)


def test_load_candles_returns_the_last_limit_before_end_oldest_first(store: SqlStore) -> None:
    candles = hourly(10)
    with store.transaction() as session:
        session.save_candles("BTCUSDT", "1h", candles)
        session.save_candles("BTCUSDT", "5m", hourly(3))

    with store.read() as session:
        last_three = session.load_candles("BTCUSDT", "1h", limit=3)
        before_sixth = session.load_candles("BTCUSDT", "1h", end_ms=candles[5].open_time, limit=2)
        all_before = session.load_candles("BTCUSDT", "1h", end_ms=candles[2].open_time)
        none = session.load_candles("ETHUSDT", "1h", limit=3)
        zero = session.load_candles("BTCUSDT", "1h", limit=0)

    assert last_three == candles[7:]
    assert before_sixth == candles[3:5]
    assert all_before == candles[:2]
    assert none == [] and zero == []


def test_candle_series_lists_each_imported_series_with_its_count(store: SqlStore) -> None:
    with store.transaction() as session:
        session.save_candles("ETHUSDT", "1h", hourly(4))
        session.save_candles("BTCUSDT", "5m", hourly(2))
        session.save_candles("BTCUSDT", "1h", hourly(3))

    with store.read() as session:
        series = session.candle_series()

    assert series == [("BTCUSDT", "1h", 3), ("BTCUSDT", "5m", 2), ("ETHUSDT", "1h", 4)]


@pytest.mark.skipif(not BINANCE_1H.exists(), reason="reference data not available")
def test_real_binance_candles_round_trip_exactly(store: SqlStore) -> None:
    rows = json.loads(BINANCE_1H.read_text(), parse_float=Decimal)
    candles = [Candle(int(row[0]), *(Decimal(value) for value in row[1:])) for row in rows]

    with store.transaction() as session:
        written = session.save_candles("BTCUSDT", "1h", candles)
    with store.read() as session:
        loaded = session.load_candles("BTCUSDT", "1h")

    assert written == len(candles) == 5482
    assert loaded == candles
    assert loaded[-1].close == Decimal("31723.09")


# --- transactions ---------------------------------------------------------------------------


def test_a_committed_transaction_is_visible_to_another_store_on_the_same_file(store: SqlStore, db_path: Target) -> None:
    with store.transaction() as session:
        session.add_intent(make_intent())

    other = open_store(db_path)
    with other.read() as session:
        assert [intent.id for intent in session.list_intents()] == ["pl-7f3a9c2e"]
    other.close()


def test_an_exception_rolls_the_whole_transaction_back(store: SqlStore) -> None:
    with pytest.raises(RuntimeError), store.transaction() as session:
        session.add_intent(make_intent())
        session.set_balance("paper", Balance("USDT", Decimal("1"), Decimal("0")))
        raise RuntimeError("crash between two writes")

    with store.read() as session:
        assert session.list_intents() == []
        assert session.get_balances("paper") == {}


def test_a_read_session_refuses_to_write(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="read session"), store.read() as session:
        session.add_intent(make_intent())


@pytest.mark.sqlite_only("BEGIN IMMEDIATE on the file; PostgreSQL's advisory lock is the next test")
def test_a_write_transaction_holds_the_write_lock_from_its_first_statement(store: SqlStore, db_path: Path) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)

    with store.transaction() as session:
        session.get_balances("paper")  # only a read so far
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # free again after commit
    other.execute("ROLLBACK")
    other.close()


@pytest.mark.postgresql_only("PostgreSQL's write lock is a transaction-level advisory lock")
def test_a_write_transaction_holds_the_advisory_write_lock_from_its_first_statement(store: SqlStore,
                                                                                    db_path: str) -> None:
    from robson.adapters.store.engine import _PG_WRITE_LOCK_KEY

    def other_could_write() -> bool:
        return fetch(db_path, f"SELECT pg_try_advisory_xact_lock({_PG_WRITE_LOCK_KEY}) AS got")[0]["got"]

    with store.transaction() as session:
        session.get_balances("paper")  # only a read so far
        assert not other_could_write()
    assert other_could_write()  # free again after commit


def test_a_read_session_does_not_block_writers(store: SqlStore, db_path: Target) -> None:
    with raw_connection(db_path) as other:
        if not is_postgresql(db_path):
            other.isolation_level = None  # sqlite3: autocommit, so BEGIN IMMEDIATE is ours

        with store.read() as session:
            session.list_intents()
            if not is_postgresql(db_path):
                other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO balances VALUES ('paper', 'USDT', '1', '0')")
            other.commit()  # returns at once: the reader holds no lock a writer waits for
            assert session.get_balances("paper") == {}  # the read session keeps its snapshot


def test_a_read_session_is_one_snapshot_while_another_connection_commits(store: SqlStore, db_path: Target) -> None:
    add_intents_with_operations(store, ("pl-00000001", "op-00000001"))
    writer = open_store(db_path)
    try:
        with store.read() as session:
            first = [intent.id for intent in session.list_intents()]
            with writer.transaction() as other:  # another connection (another store, as another host would)
                other.add_intent(make_intent("pl-00000002"))
                other.update_operation(closed(make_operation("op-00000001", "pl-00000001"), pnl="1", at=T0),
                                       expected_status=OperationStatus.ACTIVE)
            again = [intent.id for intent in session.list_intents()]
            status = session.get_operation("op-00000001").status
        with store.read() as session:
            after = [intent.id for intent in session.list_intents()]
    finally:
        writer.close()

    assert first == again == ["pl-00000001"]  # neither the new row ...
    assert status is OperationStatus.ACTIVE  # ... nor the changed one shows inside the snapshot
    assert after == ["pl-00000001", "pl-00000002"]
