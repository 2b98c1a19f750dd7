"""Entries that wait for their price, on Binance: the adapter through python-binance against the loopback server.

A LIMIT entry with its protection is an OTOCO (or an OTO without a target): the protective OCO waits
PENDING_NEW until the entry has fully filled, then is the very OCO place_stop_order places. A partial
fill leaves it pending; robson closes that gap by cancelling the list and protecting what filled with
a stop of its own. A STOP entry is a STOP_LOSS_LIMIT, protected after its fill.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from robson.adapters.binance.exchange import BinanceExchange
from robson.adapters.binance.gateway import BinanceGateway
from robson.adapters.binance.market import BinanceMarket
from robson.config import ApiKeys
from robson.domain.intent import EntryOrder
from robson.domain.market import Side
from robson.domain.orders import (
    OPEN_STATUSES,
    PROTECTING_STATUSES,
    OrderRole,
    OrderStatus,
    OrderType,
    Protection,
    client_order_id,
    held_quantity,
)
from robson.errors import AnswerLost, InsufficientBalance, OrderRejected
from tests.live.binance_server import BinanceTestServer, Fault
from tests.live.conftest import API_KEY, API_SECRET

SYMBOL = "BTCUSDT"
INTENT = "pl-7f3a9c2e"
ENTRY = client_order_id(INTENT, OrderRole.ENTRY)  # rb-pl-7f3a9c2e-E
STOP = client_order_id(INTENT, OrderRole.STOP)  # rb-pl-7f3a9c2e-S, its take-profit leg -T, the list -L
TARGET, LIST = STOP[:-1] + "T", STOP[:-1] + "L"
QTY = Decimal("0.01")
# A limit buy at 29000 (the market is at 30000), its stop at 28000 (limit 27900) and its target at 31500.
LONG = Protection(stop_price=Decimal("28000"), limit_price=Decimal("27900"), target_price=Decimal("31500"),
                  client_order_id=STOP)
COVERED = Decimal("0.00999")  # what a fill of 0.01 leaves after the 0.1 % commission Binance takes in BTC
OTOCO, OTO, ORDER, ORDER_LIST = ("/api/v3/orderList/otoco", "/api/v3/orderList/oto", "/api/v3/order",
                                 "/api/v3/orderList")


@dataclass
class Venue:
    server: BinanceTestServer
    exchange: BinanceExchange

    def place(self, *, side: Side = Side.BUY, quantity: Decimal = QTY, order: EntryOrder = EntryOrder.LIMIT,
              price: Decimal = Decimal("29000"), stop_limit_price: Decimal | None = None,
              protection: Protection | None = LONG, client_id: str = ENTRY):
        return self.exchange.place_entry_order(SYMBOL, side, quantity, client_id, order=order, price=price,
                                               stop_limit_price=stop_limit_price, protection=protection,
                                               intent_id=INTENT)

    def order(self, client_id: str):
        return self.exchange.get_order(SYMBOL, client_id)

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        balance = self.server.balances().get(asset)
        return (balance.free, balance.locked) if balance else (Decimal(0), Decimal(0))

    def sent(self, path: str) -> int:
        return sum(1 for r in self.server.requests if r.method == "POST" and r.path == path)


@pytest.fixture
def venue() -> Iterator[Venue]:
    with BinanceTestServer(api_key=API_KEY, api_secret=API_SECRET, prices={SYMBOL: Decimal("30000")}) as server:
        server.set_balance("USDT", "10000")
        gateway = BinanceGateway(ApiKeys(API_KEY, API_SECRET, "test"), base_url=server.base_url, timeout_seconds=1,
                                 sleep=lambda seconds: None)
        yield Venue(server, BinanceExchange(gateway, BinanceMarket(gateway)))


# --- a limit buy with its protective OCO attached (OTOCO) -----------------------------------------


def test_a_limit_buy_with_a_target_rests_as_an_otoco_whose_protective_oco_waits_pending(venue: Venue) -> None:
    entry = venue.place()

    stop = venue.order(STOP)
    assert (entry.client_order_id, entry.type, entry.status, entry.price, entry.quantity, entry.intent_id) == (
        ENTRY, OrderType.LIMIT, OrderStatus.NEW, Decimal("29000"), QTY, INTENT)
    assert (entry.filled_quantity, entry.average_price) == (0, None)
    assert (stop.type, stop.status, stop.side, stop.quantity) == (OrderType.OCO, OrderStatus.PENDING_NEW, Side.SELL,
                                                                  COVERED)
    assert (stop.stop_price, stop.price, stop.target_price) == (Decimal("28000"), Decimal("27900"), Decimal("31500"))
    assert stop.status in OPEN_STATUSES and stop.status not in PROTECTING_STATUSES
    assert venue.balance("USDT") == (Decimal("9710"), Decimal("290"))  # only the entry's quote is locked
    assert venue.balance("BTC") == (0, 0)
    assert venue.sent(OTOCO) == 1 and venue.server.order_lists()[0]["listClientOrderId"] == LIST


def test_the_price_through_the_entry_fills_it_and_puts_the_protective_oco_on_the_book(venue: Venue) -> None:
    venue.place()

    venue.server.set_price(SYMBOL, "28990")

    entry, stop = venue.order(ENTRY), venue.order(STOP)
    assert (entry.status, entry.filled_quantity, entry.average_price) == (OrderStatus.FILLED, QTY, Decimal("29000"))
    assert (entry.fee, entry.fee_asset) == (Decimal("0.00001"), "BTC")  # a maker fill, from myTrades
    assert (stop.status, stop.type, stop.quantity) == (OrderStatus.NEW, OrderType.OCO, COVERED)
    held = held_quantity(entry, venue.exchange._market.symbol_info(SYMBOL))
    assert venue.balance("BTC") == (0, held) and held == COVERED  # the OCO locks exactly what the fill left
    assert venue.balance("USDT") == (Decimal("9710"), 0)


def test_after_the_fill_the_protective_oco_reads_and_cancels_like_one_place_stop_order_placed(venue: Venue) -> None:
    venue.place()
    venue.server.set_price(SYMBOL, "29000")
    attached = venue.order(STOP)
    venue.server.set_balance("BTC", COVERED, COVERED)  # as much again, for a reference OCO placed the usual way
    reference = venue.exchange.place_stop_order(SYMBOL, Side.SELL, COVERED, Decimal("28000"), Decimal("27900"),
                                                STOP + "9", target_price=Decimal("31500"))
    venue.server.cancel_by_hand(STOP + "9")

    cancelled = venue.exchange.cancel_order(SYMBOL, STOP)

    def shape(order):
        return (order.type, order.side, order.quantity, order.stop_price, order.price, order.target_price)

    assert shape(attached) == shape(reference) and attached.status is reference.status is OrderStatus.NEW
    assert cancelled.status is OrderStatus.CANCELED
    assert venue.order(TARGET).status is OrderStatus.CANCELED and venue.balance("BTC") == (2 * COVERED, 0)
    assert [r.path for r in venue.server.requests if r.method == "DELETE"] == [ORDER_LIST]


def test_after_the_fill_the_target_leg_trading_closes_the_protective_oco_at_the_target(venue: Venue) -> None:
    venue.place()
    venue.server.set_price(SYMBOL, "29000")

    venue.server.set_price(SYMBOL, "31600")

    stop = venue.order(STOP)
    assert (stop.status, stop.filled_quantity, stop.average_price) == (OrderStatus.FILLED, COVERED, Decimal("31500"))
    assert stop.fee_asset == "USDT"


def test_an_entry_that_fills_at_once_answers_filled_with_its_commission_and_its_oco_goes_live(venue: Venue) -> None:
    entry = venue.place(price=Decimal("30100"))  # above the market: trades at once, as the taker, at 30000

    assert (entry.status, entry.average_price, entry.fee, entry.fee_asset) == (
        OrderStatus.FILLED, Decimal("30000"), Decimal("0.00001"), "BTC")
    assert venue.order(STOP).status is OrderStatus.NEW
    assert venue.balance("BTC") == (0, COVERED)


# --- a partial fill: the gap robson closes -------------------------------------------------------


def test_a_partial_fill_leaves_the_protection_pending_and_only_the_rest_of_the_quote_locked(venue: Venue) -> None:
    venue.place()

    venue.server.fill_partly(ENTRY, "0.004")

    entry, stop = venue.order(ENTRY), venue.order(STOP)
    assert (entry.status, entry.filled_quantity, entry.average_price) == (
        OrderStatus.PARTIALLY_FILLED, Decimal("0.004"), Decimal("29000"))
    assert (entry.fee, entry.fee_asset) == (Decimal("0.000004"), "BTC")
    assert stop.status is OrderStatus.PENDING_NEW  # unprotected: Binance waits for the whole entry
    assert venue.balance("BTC") == (Decimal("0.003996"), 0)
    assert venue.balance("USDT") == (Decimal("9710"), Decimal("174"))


def test_a_partly_filled_entry_is_protected_by_cancelling_its_list_and_stopping_what_filled(venue: Venue) -> None:
    venue.place()
    venue.server.fill_partly(ENTRY, "0.004")

    ended = venue.exchange.cancel_order(SYMBOL, ENTRY)
    held = held_quantity(ended, venue.exchange._market.symbol_info(SYMBOL))
    next_stop = client_order_id(INTENT, OrderRole.STOP, 1)
    stop = venue.exchange.place_stop_order(SYMBOL, Side.SELL, held, LONG.stop_price, LONG.limit_price, next_stop,
                                           target_price=LONG.target_price, intent_id=INTENT)

    assert (ended.status, ended.filled_quantity, ended.fee) == (OrderStatus.CANCELED, Decimal("0.004"),
                                                                Decimal("0.000004"))
    assert venue.order(STOP).status is venue.order(TARGET).status is OrderStatus.CANCELED
    assert (stop.client_order_id, stop.type, stop.status, stop.quantity) == (next_stop, OrderType.OCO,
                                                                             OrderStatus.NEW, held)
    assert held == Decimal("0.00399")
    assert venue.balance("BTC") == (Decimal("0.000006"), held)  # exactly the stop's quantity is locked
    assert venue.balance("USDT") == (Decimal("9884"), 0)


def test_the_rest_filling_later_puts_the_protection_on_the_book(venue: Venue) -> None:
    venue.place()
    venue.server.fill_partly(ENTRY, "0.004")

    venue.server.set_price(SYMBOL, "29000")

    assert venue.order(ENTRY).status is OrderStatus.FILLED
    assert venue.order(STOP).status is OrderStatus.NEW
    assert venue.balance("BTC") == (0, COVERED)


# --- cancelling, and placing twice ---------------------------------------------------------------


@pytest.mark.parametrize("cancelled_id", [ENTRY, STOP], ids=["the entry", "its pending protection"])
def test_cancelling_a_working_entry_or_its_protection_cancels_the_whole_list(venue: Venue, cancelled_id: str) -> None:
    venue.place()

    venue.exchange.cancel_order(SYMBOL, cancelled_id)

    entry = venue.order(ENTRY)
    assert (entry.status, entry.filled_quantity) == (OrderStatus.CANCELED, 0)
    assert venue.order(STOP).status is venue.order(TARGET).status is OrderStatus.CANCELED
    assert venue.balance("USDT") == (Decimal("10000"), 0)
    assert venue.server.order_lists()[0]["listStatusType"] == "ALL_DONE"


def test_a_filled_entry_cannot_be_cancelled(venue: Venue) -> None:
    venue.place()
    venue.server.set_price(SYMBOL, "29000")

    with pytest.raises(OrderRejected, match="cannot be cancelled: it is FILLED"):
        venue.exchange.cancel_order(SYMBOL, ENTRY)


def test_placing_the_same_entry_twice_answers_the_first_and_places_nothing_more(venue: Venue) -> None:
    first = venue.place()

    again = venue.place()

    assert (again.client_order_id, again.status, again.exchange_order_id, again.intent_id) == (
        ENTRY, OrderStatus.NEW, first.exchange_order_id, INTENT)
    assert len(venue.server.orders()) == 3 and len(venue.server.order_lists()) == 1


@pytest.mark.parametrize("fault", [Fault.drop_connection(after_processing=True), Fault.http_5xx_after_accepting(),
                                   Fault.hold(max_seconds=3)], ids=["dropped", "5xx", "timed-out"])
def test_a_lost_answer_is_settled_by_looking_the_entry_up_never_by_sending_again(venue: Venue, fault: Fault) -> None:
    venue.server.inject(fault, "POST", OTOCO)

    entry = venue.place()

    assert (entry.client_order_id, entry.status, entry.intent_id) == (ENTRY, OrderStatus.NEW, INTENT)
    # Sent once: never two at a time (a held one is still in flight) nor one after the other. A held request is
    # recorded only when its answer is written, after the adapter gave up waiting for it.
    assert venue.server.peak_in_flight[OTOCO] == 1 and venue.sent(OTOCO) <= 1
    assert len(venue.server.orders()) == 3 and len(venue.server.order_lists()) == 1
    assert venue.order(STOP).status is OrderStatus.PENDING_NEW


def test_an_entry_lost_before_binance_took_it_is_reported_and_not_resent(venue: Venue) -> None:
    venue.server.inject(Fault.drop_connection(after_processing=False), "POST", OTOCO)

    with pytest.raises(AnswerLost, match="nothing was resent"):
        venue.place()

    assert venue.sent(OTOCO) == 1 and venue.server.orders() == []


# --- the other shapes: a lone stop, no protection, a stop entry, a sell -------------------------------


def test_a_limit_buy_without_a_target_carries_its_lone_stop_as_an_oto(venue: Venue) -> None:
    lone = Protection(LONG.stop_price, LONG.limit_price, None, STOP)
    venue.place(protection=lone)
    pending = venue.order(STOP)

    venue.server.set_price(SYMBOL, "29000")

    stop = venue.order(STOP)
    assert venue.sent(OTO) == 1
    assert (pending.type, pending.status, pending.target_price) == (OrderType.STOP_LOSS_LIMIT,
                                                                   OrderStatus.PENDING_NEW, None)
    assert (stop.status, stop.quantity, stop.stop_price, stop.price) == (OrderStatus.NEW, COVERED, Decimal("28000"),
                                                                         Decimal("27900"))
    assert venue.balance("BTC") == (0, COVERED)


def test_a_limit_buy_without_protection_is_a_plain_limit_order(venue: Venue) -> None:
    entry = venue.place(protection=None)

    venue.server.set_price(SYMBOL, "29000")

    filled = venue.order(ENTRY)
    assert (entry.type, entry.status) == (OrderType.LIMIT, OrderStatus.NEW)
    assert venue.sent(ORDER) == 1 and venue.server.orders()[0]["timeInForce"] == "GTC"
    assert (filled.status, filled.average_price, filled.fee) == (OrderStatus.FILLED, Decimal("29000"),
                                                                 Decimal("0.00001"))


def test_a_stop_buy_waits_for_a_rise_to_its_price_and_buys_up_to_its_limit(venue: Venue) -> None:
    entry = venue.place(order=EntryOrder.STOP, price=Decimal("30500"), stop_limit_price=Decimal("30600"),
                        protection=None)
    locked = venue.balance("USDT")

    venue.server.set_price(SYMBOL, "30400")
    waiting = venue.order(ENTRY)
    venue.server.set_price(SYMBOL, "30550")

    filled = venue.order(ENTRY)
    assert (entry.type, entry.status, entry.stop_price, entry.price) == (
        OrderType.STOP_LOSS_LIMIT, OrderStatus.NEW, Decimal("30500"), Decimal("30600"))
    assert venue.server.orders()[0]["type"] == "STOP_LOSS_LIMIT"
    assert locked == (Decimal("9694"), Decimal("306"))  # up to its limit
    assert waiting.status is OrderStatus.NEW
    assert (filled.status, filled.average_price, filled.fee_asset) == (OrderStatus.FILLED, Decimal("30550"), "BTC")


def test_a_stop_buy_at_or_below_the_market_is_refused_as_triggering_at_once(venue: Venue) -> None:
    with pytest.raises(OrderRejected, match="Order would trigger immediately"):
        venue.place(order=EntryOrder.STOP, price=Decimal("29900"), stop_limit_price=Decimal("30000"), protection=None)


def test_a_stop_entry_takes_no_attached_protection(venue: Venue) -> None:
    with pytest.raises(ValueError, match="only to a LIMIT entry"):
        venue.place(order=EntryOrder.STOP, price=Decimal("30500"))

    assert venue.server.orders() == []


def test_a_limit_sell_mirrors_it_with_the_protective_buy_oco_waiting_above_and_below(venue: Venue) -> None:
    venue.server.set_balance("BTC", "0.01")
    short = Protection(stop_price=Decimal("32000"), limit_price=Decimal("32100"), target_price=Decimal("29000"),
                       client_order_id=STOP)
    entry = venue.place(side=Side.SELL, price=Decimal("31000"), protection=short)
    pending = venue.order(STOP)
    sent = next(r.params for r in venue.server.requests if r.path == OTOCO)

    venue.server.set_price(SYMBOL, "31000")

    stop = venue.order(STOP)
    assert (entry.side, entry.status) == (Side.SELL, OrderStatus.NEW)
    assert (sent["pendingAboveType"], sent["pendingBelowType"]) == ("STOP_LOSS_LIMIT", "LIMIT_MAKER")
    assert (pending.side, pending.status, pending.quantity) == (Side.BUY, OrderStatus.PENDING_NEW, QTY)
    assert (stop.status, stop.stop_price, stop.target_price) == (OrderStatus.NEW, Decimal("32000"), Decimal("29000"))
    assert venue.balance("BTC") == (0, 0)
    assert venue.balance("USDT") == (Decimal("10309.69") - Decimal("321"), Decimal("321"))  # the buy-back at 32100


def test_a_stop_sell_waits_for_a_fall_to_its_price(venue: Venue) -> None:
    venue.server.set_balance("BTC", "0.01")
    venue.place(side=Side.SELL, order=EntryOrder.STOP, price=Decimal("29500"), stop_limit_price=Decimal("29400"),
                protection=None)

    venue.server.set_price(SYMBOL, "29600")
    waiting = venue.order(ENTRY)
    venue.server.set_price(SYMBOL, "29450")

    filled = venue.order(ENTRY)
    assert waiting.status is OrderStatus.NEW
    assert (filled.status, filled.average_price, filled.fee_asset) == (OrderStatus.FILLED, Decimal("29450"), "USDT")


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("protection", [LONG, None], ids=["otoco", "plain-limit"])
@pytest.mark.parametrize(("change", "error", "words"), [
    ({"price": Decimal("29000.001")}, OrderRejected,
     ("Filter failure: PRICE_FILTER", "entry price 29000.001 (min 0.01, tick 0.01)")),
    ({"quantity": Decimal("0.0003")}, OrderRejected,
     ("Filter failure: MIN_NOTIONAL", "quantity 0.0003 is below the minimum order value of 10 USDT")),
    ({"quantity": Decimal("1")}, InsufficientBalance, ("insufficient balance",)),
], ids=["price-filter", "min-notional", "balance"])
def test_an_entry_binance_refuses_raises_a_readable_error_and_places_nothing(
        venue: Venue, protection: Protection | None, change: dict, error: type, words: tuple[str, ...]) -> None:
    with pytest.raises(error) as raised:
        venue.place(protection=protection, **change)

    message = str(raised.value)
    assert all(word in message for word in words), message
    assert venue.server.orders() == [] and venue.balance("USDT") == (Decimal("10000"), 0)


def test_a_protection_price_off_the_tick_is_named_in_the_refusal(venue: Venue) -> None:
    off_tick = Protection(Decimal("28000.005"), LONG.limit_price, LONG.target_price, STOP)

    with pytest.raises(OrderRejected, match=r"stop price 28000\.005 \(min 0\.01, tick 0\.01\)"):
        venue.place(protection=off_tick)
