"""The monitor use case over the real store and paper exchange, with hand-made 5m candles."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from tests.databases import open_store

from robson.adapters.paper import PaperExchange
from robson.application.execute import LiveGate, execute
from robson.application.monitor import monitor_once
from robson.application.plan import Account
from robson.domain.guards import RiskLimits
from robson.domain.intent import IntentStatus
from robson.domain.market import Candle, PriceQuote, Side, SymbolInfo, datetime_to_ms
from robson.domain.operation import CloseReason, OperationStatus
from robson.domain.orders import AuditKind, OrderStatus
from robson.domain.strategy import parse_strategy
from robson.errors import MarketDataError, OrderRejected
from tests.integration.factories import make_intent

T0 = datetime(2021, 7, 1, tzinfo=UTC)
M5 = 5 * 60_000
INFO = SymbolInfo(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size=D("0.01"), step_size=D("0.001"),
                  min_qty=D("0.001"), min_notional=D("10"))
# Up to 3 positions per symbol: some tests watch three operations on one symbol at once.
ACCOUNT = Account(capital=D("1000"), fee_rate=D("0.001"), limits=RiskLimits(max_positions_per_symbol=3))
STRATEGIES = {
    "plain": parse_strategy({"name": "plain", "timeframe": "15m"}, "plain.yaml"),
    "trend": parse_strategy({"name": "trend", "timeframe": "15m", "trailing": "hand_span"}, "trend.yaml"),
    "patient": parse_strategy({"name": "patient", "timeframe": "15m", "time_exit": {"candles": 2}}, "patient.yaml"),
}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def bar(index: int, open_: str, high: str, low: str, close: str) -> Candle:
    """The index-th 5m candle after T0."""
    return Candle(datetime_to_ms(T0) + index * M5, D(open_), D(high), D(low), D(close), D("1"))


class FakeMarket:
    """A 5m-only market over hand-made candles; its clock is `clock` and its price `price`."""

    name = "fake"

    def __init__(self) -> None:
        self.bars: list[Candle] = []
        self.clock = T0
        self.price = D("100")
        self.fetches: list[tuple[str, str]] = []

    def now(self) -> datetime:
        return self.clock

    def symbols(self) -> list[str]:
        return ["BTCUSDT"]

    def symbol_info(self, symbol: str) -> SymbolInfo:
        return INFO

    def last_price(self, symbol: str) -> PriceQuote:
        return PriceQuote(symbol, self.price, self.clock)

    def fill_price(self, symbol: str) -> PriceQuote:
        return self.last_price(symbol)

    def candles(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        self.fetches.append((symbol, timeframe))
        if timeframe != "5m":
            raise MarketDataError(f"no {timeframe} candles here")
        closed = [c for c in self.bars if c.open_time + M5 <= datetime_to_ms(self.clock)]
        if not closed:
            raise MarketDataError("no candles closed yet")
        return closed[-limit:]


@pytest.fixture
def store(robson_db):
    s = open_store(robson_db)
    yield s
    s.close()


@pytest.fixture
def market() -> FakeMarket:
    return FakeMarket()


@pytest.fixture
def book(store, market) -> PaperExchange:
    return PaperExchange(store, market, fee_rate=D("0.001"), slippage_rate=D("0"),
                         starting_balances={"USDT": D("1000")})


def open_operation(store, market, book, *, intent_id="pl-00000001", stop="95", target=None, strategy="plain"):
    """Execute a 2-unit long at the market price 100 (fee 0.2): one R = 2 × (100 − stop)."""
    intent = make_intent(intent_id, status=IntentStatus.VALIDATED, validated_at=market.clock, strategy=strategy,
                         created_at=market.clock, updated_at=market.clock,
                         capital=D("1000"), quantity=D("2"), entry=D("100"), stop=D(stop),
                         target=D(target) if target else None, timeframe="15m")
    with store.transaction() as tx:
        tx.add_intent(intent)
    result = execute(intent.id, strategy=STRATEGIES[strategy], store=store, market=market, exchange=book,
                     account=ACCOUNT, clock=market, gate=LiveGate(False, False, False, False))
    return result.operation


def tick(store, market, book):
    return monitor_once(store=store, market=market, exchange=book, account=ACCOUNT, clock=market,
                        strategy_for=STRATEGIES.get)


def balances(store):
    with store.read() as session:
        return {asset: (b.free, b.locked) for asset, b in session.get_balances("paper").items()}


def stored(store, operation_id):
    with store.read() as session:
        op = session.get_operation(operation_id)
        return op, {o.client_order_id: o for o in session.orders_for_intent(op.intent_id)}, \
            session.audit_trail(intent_id=op.intent_id)


# --- exits and the paper book -------------------------------------------------------------


def test_stop_wins_when_stop_and_target_are_touched_in_one_candle_and_the_book_settles_exactly(store, market, book):
    op = open_operation(store, market, book, target="110")
    market.bars = [bar(0, "100", "111", "94", "105")]  # high 111 ≥ target 110, low 94 ≤ stop 95
    market.clock = at(10)

    report = tick(store, market, book)

    (check,) = report.checks
    assert (check.exit.reason, check.exit.price, check.exit.at) == (CloseReason.STOP, D("95"), at(5))
    closed, orders, trail = stored(store, op.id)
    assert (closed.status, closed.exit_price, closed.exit_fee) == (OperationStatus.CLOSED, D("95"), D("0.190"))
    assert closed.realized_pnl == D("-10.390")  # (95 − 100) × 2 − 0.2 − 0.19
    stop = orders["rb-pl-00000001-S"]
    assert (stop.status, stop.average_price, stop.fee) == (OrderStatus.FILLED, D("95"), D("0.190"))
    # USDT = 1000 − 200 − 0.2 (entry) + 190 − 0.19 (stop fill); BTC sold, nothing locked.
    assert balances(store) == {"USDT": (D("989.610"), D("0")), "BTC": (D("0"), D("0"))}
    assert [e.kind for e in trail][-2:] == [AuditKind.ORDER_FILLED, AuditKind.CLOSED]
    assert trail[-1].data["realized_pnl"] == "-10.39"


def test_a_gap_through_the_stop_fills_at_the_open_less_slippage(store, market):
    slipping = PaperExchange(store, market, fee_rate=D("0.001"), slippage_rate=D("0.0005"),
                             starting_balances={"USDT": D("1000")})
    market.price = D("99.95")  # entry fills at 99.95 × 1.0005 = 99.999975 → tick up → 100.00
    op = open_operation(store, market, slipping)
    market.bars = [bar(0, "100", "101", "96", "96"), bar(1, "93", "94", "92", "93.5")]
    market.clock = at(10)

    report = tick(store, market, slipping)

    # 93 × (1 − 0.0005) = 92.9535 → tick down → 92.95, at the gapped candle's open (00:05).
    (check,) = report.checks
    assert (check.exit.price, check.exit.gapped, check.exit.at) == (D("92.95"), True, at(5))
    assert stored(store, op.id)[1]["rb-pl-00000001-S"].average_price == D("92.95")


def test_a_target_fill_settles_the_oco_at_the_target(store, market, book):
    op = open_operation(store, market, book, target="110")
    market.bars = [bar(0, "100", "104", "99", "103"), bar(1, "103", "110.4", "102", "109")]
    market.clock = at(15)

    report = tick(store, market, book)

    closed, orders, _ = stored(store, op.id)
    assert (closed.close_reason, closed.exit_price, closed.closed_at) == (CloseReason.TARGET, D("110"), at(10))
    assert orders["rb-pl-00000001-S"].status is OrderStatus.FILLED
    # 1000 − 200.2 + 220 − 0.22
    assert balances(store) == {"USDT": (D("1019.580"), D("0")), "BTC": (D("0"), D("0"))}
    assert report.halts == ()


def test_time_exit_sells_at_market_at_the_deadline_and_cancels_the_stop(store, market, book):
    # 2 candles of 15m from 00:00 → due at 00:30: the 5m candle 00:25–00:30 exits at its close 101.
    op = open_operation(store, market, book, strategy="patient")
    market.bars = [bar(i, "100", "101", "99", "100") for i in range(5)] + [bar(5, "100", "102", "99", "101"),
                                                                          bar(6, "101", "130", "80", "120")]
    market.clock = at(40)

    tick(store, market, book)

    closed, orders, _ = stored(store, op.id)
    assert (closed.close_reason, closed.exit_price, closed.closed_at) == (CloseReason.TIME_EXIT, D("101"), at(30))
    assert orders["rb-pl-00000001-S"].status is OrderStatus.CANCELED
    exit_order = orders["rb-pl-00000001-X"]
    assert (exit_order.status, exit_order.average_price, exit_order.fee) == (OrderStatus.FILLED, D("101"), D("0.202"))
    assert balances(store) == {"USDT": (D("1001.598"), D("0")), "BTC": (D("0"), D("0"))}  # 1000 − 200.2 + 202 − 0.202


# --- trailing -----------------------------------------------------------------------------


def test_trailing_moves_are_recorded_in_the_audit_and_move_the_paper_stop(store, market, book):
    # span 5: high 105 → break-even 100.21 (100 × 1.001 / 0.999 = 100.2002… → tick up); high 110.5 → 105.
    op = open_operation(store, market, book, strategy="trend")
    market.bars = [bar(0, "100", "105", "101", "104"), bar(1, "104", "110.5", "104", "110")]
    market.clock = at(10)

    report = tick(store, market, book)

    assert report.stop_moves == 2
    active, orders, trail = stored(store, op.id)
    assert (active.status, active.stop, active.last_checked_at) == (OperationStatus.ACTIVE, D("105"), at(10))
    moves = [(e.at, e.data["old_stop"], e.data["new_stop"], e.data["reason"]) for e in trail
             if e.kind is AuditKind.STOP_MOVED]
    assert moves == [(at(5), "95", "100.21", "trailing"), (at(10), "100.21", "105", "trailing")]
    stop = orders["rb-pl-00000001-S"]
    assert (stop.status, stop.stop_price, stop.price) == (OrderStatus.NEW, D("105"), D("104.47"))  # limit 0.5 % below
    assert balances(store)["BTC"] == (D("0"), D("2"))  # still locked by the resting stop

    market.bars.append(bar(2, "110", "110", "104.9", "105.5"))
    market.clock = at(15)
    tick(store, market, book)

    closed, orders, _ = stored(store, op.id)
    assert (closed.close_reason, closed.exit_price) == (CloseReason.TRAILING, D("105"))
    assert orders["rb-pl-00000001-S"].average_price == D("105")


# --- idempotence and crashes --------------------------------------------------------------


def snapshot(store):
    with store.read() as session:
        ops = session.list_operations()
        return (ops, [session.orders_for_intent(op.intent_id) for op in ops], session.get_balances("paper"),
                session.audit_trail())


def test_a_second_tick_at_the_same_clock_changes_nothing(store, market, book):
    open_operation(store, market, book, strategy="trend")
    market.bars = [bar(0, "100", "105", "101", "104"), bar(1, "104", "106", "103", "105")]
    market.clock = at(10)
    tick(store, market, book)
    before = snapshot(store)

    again = tick(store, market, book)

    assert snapshot(store) == before
    assert [(c.candles, c.moves, c.exit) for c in again.checks] == [(0, (), None)]


class CrashingBook:
    """The paper book, dying (like a killed process) when it settles the given order."""

    def __init__(self, book: PaperExchange, crash_on: str) -> None:
        self._book, self._crash_on = book, crash_on
        self.name, self.fee_rate, self.slippage_rate = book.name, book.fee_rate, book.slippage_rate

    def reprice_stop(self, tx, client_order_id, **kwargs):
        return self._book.reprice_stop(tx, client_order_id, **kwargs)

    def settle_stop(self, tx, client_order_id, **kwargs):
        if client_order_id == self._crash_on:
            raise RuntimeError("killed")
        return self._book.settle_stop(tx, client_order_id, **kwargs)

    def settle_market_exit(self, tx, *args, **kwargs):
        return self._book.settle_market_exit(tx, *args, **kwargs)


def test_a_crash_mid_tick_resumes_from_the_stored_last_check(store, market, book):
    first = open_operation(store, market, book, intent_id="pl-00000001")
    market.clock = at(1)  # opened later, so checked second
    second = open_operation(store, market, book, intent_id="pl-00000002")
    market.bars = [bar(0, "100", "101", "99", "100"), bar(1, "100", "101", "94", "96")]
    market.clock = at(10)

    with pytest.raises(RuntimeError):
        tick(store, market, CrashingBook(book, crash_on="rb-pl-00000002-S"))

    # The tick's writes are one transaction: both operations are untouched, their last checks where they were.
    for op, last_check in ((first, at(0)), (second, at(1))):
        untouched, orders, _ = stored(store, op.id)
        assert (untouched.status, untouched.last_checked_at or untouched.opened_at) == (OperationStatus.ACTIVE,
                                                                                        last_check)
        assert orders[f"rb-{op.intent_id}-S"].status is OrderStatus.NEW
    assert balances(store)["BTC"] == (D("0"), D("4"))

    report = tick(store, market, book)

    assert [c.operation.id for c in report.closed] == [first.id, second.id]
    assert [stored(store, op.id)[0].exit_price for op in (first, second)] == [D("95"), D("95")]
    assert balances(store) == {"USDT": (D("979.220"), D("0")), "BTC": (D("0"), D("0"))}  # 1000 − 2 × 10.39


class RefusingBook(CrashingBook):
    """The paper book, refusing to settle the given order (its state is not what the monitor expects)."""

    def settle_stop(self, tx, client_order_id, **kwargs):
        if client_order_id == self._crash_on:
            raise OrderRejected(f"order {client_order_id} cannot be filled: it is CANCELED")
        return self._book.settle_stop(tx, client_order_id, **kwargs)


def test_one_operation_failing_to_settle_does_not_hold_back_the_others(store, market, book):
    first = open_operation(store, market, book, intent_id="pl-00000001")
    market.clock = at(1)
    second = open_operation(store, market, book, intent_id="pl-00000002")
    market.bars = [bar(0, "100", "101", "99", "100"), bar(1, "100", "101", "94", "96")]
    market.clock = at(10)

    report = tick(store, market, RefusingBook(book, crash_on="rb-pl-00000001-S"))

    assert [c.operation.id for c in report.closed] == [second.id]
    assert [(p.operation_id, p.message) for p in report.errors] == [
        (first.id, "order rb-pl-00000001-S cannot be filled: it is CANCELED")]
    assert stored(store, first.id)[0].status is OperationStatus.ACTIVE
    assert stored(store, second.id)[0].status is OperationStatus.CLOSED


def test_one_candle_fetch_per_symbol_whatever_the_number_of_operations(store, market, book):
    for n in range(1, 4):
        open_operation(store, market, book, intent_id=f"pl-0000000{n}")
    market.bars = [bar(0, "100", "101", "99", "100")]
    market.clock = at(5)
    market.fetches.clear()

    report = tick(store, market, book)

    assert len(report.checks) == 3
    assert market.fetches == [("BTCUSDT", "5m")]


def test_the_paper_monitor_ignores_live_operations(store, market, book):
    op = open_operation(store, market, book)
    with store.transaction() as tx:
        tx.update_operation(dataclasses.replace(op, mode="live"), expected_status=OperationStatus.ACTIVE)
    market.bars = [bar(0, "100", "101", "90", "91")]
    market.clock = at(5)

    report = tick(store, market, book)

    assert (report.checks, report.skipped, report.errors) == ((), (), ())
    assert stored(store, op.id)[0].status is OperationStatus.ACTIVE


def test_a_symbol_without_candles_is_an_error_for_its_operations_only(store, market, book):
    op = open_operation(store, market, book)
    market.clock = at(3)  # no candle has closed yet

    report = tick(store, market, book)

    assert [(p.operation_id, "no candles closed yet" in p.message) for p in report.errors] == [(op.id, True)]


# --- the paper book's settling methods ------------------------------------------------------


def test_settling_a_stop_twice_fills_it_once(store, market, book):
    open_operation(store, market, book)
    with store.transaction() as tx:
        book.settle_stop(tx, "rb-pl-00000001-S", price=D("95"), fee=D("0.19"), at=at(5))
    after_first = balances(store)

    with store.transaction() as tx:
        again = book.settle_stop(tx, "rb-pl-00000001-S", price=D("90"), fee=D("0.18"), at=at(10))

    assert (again.status, again.average_price) == (OrderStatus.FILLED, D("95"))
    assert balances(store) == after_first == {"USDT": (D("989.61"), D("0")), "BTC": (D("0"), D("0"))}


def test_a_market_exit_is_recorded_once_by_its_client_id(store, market, book):
    open_operation(store, market, book)
    for _ in range(2):
        with store.transaction() as tx:
            book.settle_market_exit(tx, "BTCUSDT", Side.SELL, D("2"), "rb-pl-00000001-X", price=D("101"),
                                    fee=D("0.202"), at=at(5), cancel="rb-pl-00000001-S", intent_id="pl-00000001")

    assert balances(store) == {"USDT": (D("1001.598"), D("0")), "BTC": (D("0"), D("0"))}


def test_repricing_a_shorts_buy_stop_moves_the_locked_quote(store, market):
    wallet = PaperExchange(store, market, fee_rate=D("0.001"), slippage_rate=D("0"),
                           starting_balances={"USDT": D("1000"), "BTC": D("5")})
    wallet.place_stop_order("BTCUSDT", Side.BUY, D("2"), D("105"), D("105.52"), "rb-pl-short-S")
    assert balances(store)["USDT"] == (D("788.96"), D("211.04"))  # 2 × 105.52 locked

    with store.transaction() as tx:
        order = wallet.reprice_stop(tx, "rb-pl-short-S", stop_price=D("103"), limit_price=D("103.51"),
                                    target_price=None, at=at(5))

    assert (order.stop_price, order.price, order.type.value) == (D("103"), D("103.51"), "STOP_LOSS_LIMIT")
    assert balances(store)["USDT"] == (D("792.98"), D("207.02"))


def test_a_filled_stop_cannot_be_repriced(store, market, book):
    open_operation(store, market, book)
    with store.transaction() as tx:
        book.settle_stop(tx, "rb-pl-00000001-S", price=D("95"), fee=D("0.19"), at=at(5))

    with pytest.raises(OrderRejected, match="cannot be amended: it is FILLED"), store.transaction() as tx:
        book.reprice_stop(tx, "rb-pl-00000001-S", stop_price=D("96"), limit_price=D("95.52"), target_price=None,
                          at=at(5))


# --- a monitor tick inside a close's window -----------------------------------------------------


class TickDuringClose:
    """The market a close reads its fill price from; the monitor ticks right then (between read and write)."""

    def __init__(self, market: FakeMarket, run_tick) -> None:
        self.market, self.run_tick = market, run_tick

    def __getattr__(self, name: str):
        return getattr(self.market, name)

    def fill_price(self, symbol: str) -> PriceQuote:
        self.run_tick()
        return self.market.fill_price(symbol)


def test_a_monitor_check_between_a_closes_read_and_write_does_not_refuse_the_close(store, market, book):
    from robson.application.operations import close_operation

    op = open_operation(store, market, book, strategy="trend")
    market.bars = [bar(0, "100", "101", "99", "100"), bar(1, "100", "112", "100", "111")]  # one span up: trails
    market.clock, market.price = at(10), D("111")
    racing = TickDuringClose(market, lambda: tick(store, market, book))

    closed = close_operation(op.id, store=store, exchange=book, clock=market, market=racing)

    assert (closed.status, closed.close_reason, closed.exit_price) == (OperationStatus.CLOSED, CloseReason.MANUAL,
                                                                      D("111"))
    _, orders, trail = stored(store, op.id)
    assert AuditKind.STOP_MOVED in [e.kind for e in trail]  # the tick's trailing move was written first
    assert orders["rb-pl-00000001-S"].status is OrderStatus.CANCELED and len(orders) == 3  # entry, stop, one exit
    assert balances(store)["BTC"] == (D("0"), D("0"))


def test_a_close_whose_position_the_monitor_closed_meanwhile_sells_nothing(store, market, book):
    from robson.application.operations import close_operation
    from robson.errors import IllegalTransition

    op = open_operation(store, market, book)
    market.bars = [bar(0, "100", "101", "94", "96")]  # through the stop at 95
    market.clock, market.price = at(10), D("96")
    racing = TickDuringClose(market, lambda: tick(store, market, book))

    with pytest.raises(IllegalTransition, match="was closed by the monitor meanwhile \\(stop\\)"):
        close_operation(op.id, store=store, exchange=book, clock=market, market=racing)

    closed, orders, _ = stored(store, op.id)
    assert (closed.close_reason, sorted(orders)) == (CloseReason.STOP, ["rb-pl-00000001-E", "rb-pl-00000001-S"])
    assert balances(store)["BTC"] == (D("0"), D("0"))
