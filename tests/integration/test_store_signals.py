"""Scan signals in the SQL store: exact round trips, one row per key (even across processes), CAS, filters."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

from factories import T0  # tests/integration is on sys.path
from tests.databases import Target, fetch, open_store
from robson.adapters.store import SqlStore
from robson.domain.market import Side
from robson.domain.signals import Signal, SignalEvent, SignalStatus
from robson.errors import AmbiguousId, IllegalTransition, InvalidInput, NotFound, StoreError

CANDLE = 1_624_367_700_000  # 2021-06-22 13:15 UTC
QUARTER = 900_000


def make_signal(signal_id: str = "sg-7f3a9c2e", **changes: object) -> Signal:
    signal = Signal(
        id=signal_id,
        strategy="rescue-forces",
        pattern="ma4-crosses-above-ma9",
        symbol="BTCUSDT",
        timeframe="15m",
        candle_open_time=CANDLE,
        side=Side.BUY,
        confidence=Decimal("0.75"),
        status=SignalStatus.DETECTED,
        detected_at=T0,
        updated_at=T0,
        values={"ma4": Decimal("32871.5025"), "ma9": Decimal("32850.10000000"), "ma4[-1]": None},
        reason="ma4 crosses above ma9 and volume > 1.5 × vol_avg20",
    )
    return dataclasses.replace(signal, **changes)


@pytest.fixture
def store(robson_db: Target) -> Iterator[SqlStore]:
    store = open_store(robson_db)
    yield store
    store.close()


def test_a_signal_round_trips_with_exact_decimals_and_missing_values(store: SqlStore) -> None:
    signal = make_signal(resolution="still holds", intent_id="pl-12345678")

    with store.transaction() as session:
        added = session.add_signal(signal)
    with store.read() as session:
        loaded = session.get_signal(signal.id)

    assert added is True
    assert loaded == signal
    assert str(loaded.values["ma9"]) == "32850.10000000" and loaded.values["ma4[-1]"] is None
    assert str(loaded.confidence) == "0.75"


def test_values_are_stored_as_exact_text_not_floats(store: SqlStore, robson_db: Target) -> None:
    with store.transaction() as session:
        session.add_signal(make_signal())

    values, confidence = fetch(robson_db, 'SELECT "values", confidence FROM signals')[0].values()

    assert '"ma9":"32850.10000000"' in values and '"ma4[-1]":null' in values
    assert confidence == "0.75"


def test_a_second_signal_with_the_same_key_is_ignored_and_changes_nothing(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_signal(make_signal())

    with store.transaction() as session:
        added = session.add_signal(make_signal("sg-00000001", confidence=Decimal("1"), reason="again"))
    with store.read() as session:
        stored = session.list_signals()

    assert added is False
    assert [(s.id, s.confidence, s.reason) for s in stored] == [
        ("sg-7f3a9c2e", Decimal("0.75"), "ma4 crosses above ma9 and volume > 1.5 × vol_avg20"),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"strategy": "smooth-sailing"},
        {"pattern": "other-setup"},
        {"symbol": "ETHUSDT"},
        {"timeframe": "30m"},
        {"candle_open_time": CANDLE + QUARTER},
    ],
)
def test_a_signal_differing_in_any_part_of_the_key_is_a_new_signal(store: SqlStore, change: dict[str, object]) -> None:
    with store.transaction() as session:
        session.add_signal(make_signal())

    with store.transaction() as session:
        added = session.add_signal(make_signal("sg-00000001", **change))

    assert added is True


def test_adding_a_signal_in_a_read_session_is_refused(store: SqlStore) -> None:
    with pytest.raises(StoreError, match="read session"), store.read() as session:
        session.add_signal(make_signal())


def test_update_signal_writes_when_the_stored_status_is_the_expected_one(store: SqlStore) -> None:
    signal = make_signal()
    with store.transaction() as session:
        session.add_signal(signal)
    confirmed = dataclasses.replace(
        signal.apply(SignalEvent.CONFIRM, T0 + timedelta(minutes=15), "ma4 > ma9 still holds"), intent_id="pl-1"
    )

    with store.transaction() as session:
        session.update_signal(confirmed, expected_status=SignalStatus.DETECTED)
    with store.read() as session:
        loaded = session.get_signal(signal.id)

    assert loaded == confirmed
    assert (loaded.status, loaded.resolution, loaded.intent_id) == (
        SignalStatus.CONFIRMED, "ma4 > ma9 still holds", "pl-1",
    )


def test_update_signal_refuses_when_another_scan_decided_it_first(store: SqlStore) -> None:
    signal = make_signal()
    with store.transaction() as session:
        session.add_signal(signal)
        session.update_signal(signal.apply(SignalEvent.EXPIRE, T0), expected_status=SignalStatus.DETECTED)

    with pytest.raises(IllegalTransition, match="signal sg-7f3a9c2e is EXPIRED, expected DETECTED"):
        with store.transaction() as session:
            session.update_signal(signal.apply(SignalEvent.CONFIRM, T0), expected_status=SignalStatus.DETECTED)


def test_updating_or_getting_an_unknown_signal_is_not_found(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="signal sg-7f3a9c2e not found"), store.transaction() as session:
        session.update_signal(make_signal(), expected_status=SignalStatus.DETECTED)
    with pytest.raises(NotFound, match="signal sg-nothere not found"), store.read() as session:
        session.get_signal("sg-nothere")


@pytest.fixture
def listed(store: SqlStore) -> SqlStore:
    with store.transaction() as session:
        # Added out of candle order: the listing sorts by candle time, then ID.
        session.add_signal(make_signal("sg-00000003", candle_open_time=CANDLE + 2 * QUARTER, symbol="ETHUSDT"))
        session.add_signal(make_signal("sg-00000002", candle_open_time=CANDLE, pattern="b"))
        session.add_signal(make_signal("sg-00000001", candle_open_time=CANDLE, pattern="a",
                                       status=SignalStatus.CONFIRMED))
        session.add_signal(make_signal("sg-00000004", candle_open_time=CANDLE - QUARTER, strategy="bounce-back",
                                       timeframe="30m", status=SignalStatus.EXPIRED))
    return store


def ids(signals: list[Signal]) -> list[str]:
    return [signal.id for signal in signals]


def test_list_signals_orders_by_candle_time_then_id(listed: SqlStore) -> None:
    with listed.read() as session:
        assert ids(session.list_signals()) == ["sg-00000004", "sg-00000001", "sg-00000002", "sg-00000003"]


def test_list_signals_filters_by_status_strategy_and_symbol_together(listed: SqlStore) -> None:
    with listed.read() as session:
        detected = session.list_signals(status=SignalStatus.DETECTED)
        rescue = session.list_signals(strategy="rescue-forces")
        eth = session.list_signals(symbol="ethusdt")
        both = session.list_signals(status=SignalStatus.DETECTED, symbol="BTCUSDT")
        none = session.list_signals(status=SignalStatus.INVALIDATED)

    assert ids(detected) == ["sg-00000002", "sg-00000003"]
    assert ids(rescue) == ["sg-00000001", "sg-00000002", "sg-00000003"]
    assert ids(eth) == ["sg-00000003"]
    assert ids(both) == ["sg-00000002"]
    assert none == []


@pytest.mark.parametrize("text", ["sg-00000003", "00000003", "SG-00000003", " 00000003 "])
def test_a_signal_id_resolves_from_a_full_id_or_unique_prefix(listed: SqlStore, text: str) -> None:
    with listed.read() as session:
        assert session.resolve_signal_id(text) == "sg-00000003"


def test_a_signal_prefix_matching_several_is_ambiguous_and_one_matching_nothing_is_not_found(listed: SqlStore) -> None:
    with pytest.raises(AmbiguousId) as raised, listed.read() as session:
        session.resolve_signal_id("0000")
    with pytest.raises(NotFound, match="no signal matches 'sg-ff'"), listed.read() as session:
        session.resolve_signal_id("ff")
    with pytest.raises(InvalidInput, match="a signal ID is required"), listed.read() as session:
        session.resolve_signal_id(" ")
    with pytest.raises(AmbiguousId, match="ID prefix 'sg-' is ambiguous: it matches 4"), listed.read() as session:
        session.resolve_signal_id("sg-")  # the type prefix alone is a prefix of every signal ID

    assert raised.value.candidates == ["sg-00000001", "sg-00000002", "sg-00000003", "sg-00000004"]


# --- two processes recording the same signal at once -----------------------------------------

PROCESSES = 4


def record_same_signal(url: str, worker: int, start_together: Barrier, results: Queue[str]) -> None:
    """In a child process: record the same signal key under this worker's own ID."""
    try:
        store = SqlStore(url)
        store.schema_version()
        start_together.wait(timeout=60)
        with store.transaction() as session:
            added = session.add_signal(make_signal(f"sg-0000000{worker}"))
        store.close()
        results.put(f"added {worker}" if added else f"ignored {worker}")
    except BaseException as e:  # report everything: the parent asserts there was nothing
        results.put(f"error {worker}: {type(e).__name__}: {e}")
        raise


@pytest.mark.slow
def test_processes_recording_the_same_signal_at_once_store_exactly_one_row(robson_db: Target) -> None:
    store = open_store(robson_db)
    store.schema_version()
    store.close()
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=record_same_signal, args=(store.url, worker, start_together, results))
        for worker in range(PROCESSES)
    ]

    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    reported = sorted(results.get(timeout=10) for _ in processes)
    with store.read() as session:
        stored = session.list_signals()
    assert [process.exitcode for process in processes] == [0] * PROCESSES, reported
    assert sum(line.startswith("added") for line in reported) == 1, reported
    assert sum(line.startswith("ignored") for line in reported) == PROCESSES - 1, reported
    assert len(stored) == 1 and f"added {stored[0].id[-1]}" in reported
