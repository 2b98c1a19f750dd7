"""Scale-out protection on Binance: one protective OCO per ladder part, reduced and moved without a gap.

The adapter through python-binance against the loopback server. A resting order locks the base
asset it would sell, so every part has its own OCO (its target plus its share of the stop) and the
quantity held always equals the quantity protected. A reduction is an order amend keepPriority (the
order never leaves the book); a move to a lone stop is one cancelReplace; a move to a new OCO is a
cancel then a place, as Binance has no replace for an order list.
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
from robson.domain.market import Side
from robson.domain.orders import OrderRole, OrderStatus, OrderType, client_order_id
from robson.errors import AnswerLost, OrderRejected, ReplacementRefused
from tests.live.binance_server import BinanceTestServer, Fault
from tests.live.conftest import API_KEY, API_SECRET

SYMBOL = "BTCUSDT"
INTENT = "pl-7f3a9c2e"
AMEND, CANCEL_REPLACE = "/api/v3/order/amend/keepPriority", "/api/v3/order/cancelReplace"
HELD = Decimal("0.01")
STOP, LIMIT = Decimal("29000"), Decimal("28900")
# The ladder 1R / 2R / 3R of a long entered at 30000 with its stop at 29000: 50 %, 30 %, the rest.
PARTS = {1: (Decimal("0.005"), Decimal("31000")), 2: (Decimal("0.003"), Decimal("32000")),
         3: (Decimal("0.002"), Decimal("33000"))}
BREAK_EVEN, BREAK_EVEN_LIMIT = Decimal("30060"), Decimal("29960")


def stop_id(part: int, generation: int = 0) -> str:
    return client_order_id(INTENT, OrderRole.STOP, generation, part=part)


@dataclass
class Venue:
    server: BinanceTestServer
    exchange: BinanceExchange

    def protect(self, part: int, generation: int = 0):
        quantity, target = PARTS[part]
        return self.exchange.place_stop_order(SYMBOL, Side.SELL, quantity, STOP, LIMIT, stop_id(part, generation),
                                              target_price=target, intent_id=INTENT)

    def held(self) -> Decimal:
        return self.server.balances()["BTC"].free + self.server.balances()["BTC"].locked

    def protected(self) -> Decimal:
        """What the open stop orders would sell: each OCO counted once, by its stop leg."""
        return sum((Decimal(o["origQty"]) - Decimal(o["executedQty"]) for o in self.server.open_orders()
                    if o["type"] == "STOP_LOSS_LIMIT"), Decimal(0))

    def sent(self, method: str, path: str) -> int:
        return sum(1 for r in self.server.requests if r.method == method and r.path == path)

    def move(self, part: int, generation: int, *, target: bool = True):
        quantity, target_price = PARTS[part]
        return self.exchange.replace_stop_order(SYMBOL, Side.SELL, quantity, BREAK_EVEN, BREAK_EVEN_LIMIT,
                                                stop_id(part, generation - 1), stop_id(part, generation),
                                                target_price=target_price if target else None, intent_id=INTENT)


@pytest.fixture
def venue() -> Iterator[Venue]:
    with BinanceTestServer(api_key=API_KEY, api_secret=API_SECRET, prices={SYMBOL: Decimal("30000")}) as server:
        server.set_balance("BTC", HELD)
        gateway = BinanceGateway(ApiKeys(API_KEY, API_SECRET, "test"), base_url=server.base_url, timeout_seconds=1,
                                 sleep=lambda seconds: None)
        yield Venue(server, BinanceExchange(gateway, BinanceMarket(gateway)))


@pytest.fixture
def laddered(venue: Venue) -> Venue:
    for part in PARTS:
        venue.protect(part)
    venue.server.set_price(SYMBOL, "30500")  # on its way to target 1: the stops may move to break-even
    return venue


def test_one_oco_per_part_protects_all_that_is_held_and_none_asks_for_more(laddered):
    orders = {part: laddered.exchange.get_order(SYMBOL, stop_id(part)) for part in PARTS}

    assert {part: (o.type, o.quantity, o.stop_price, o.target_price) for part, o in orders.items()} == {
        part: (OrderType.OCO, quantity, STOP, target) for part, (quantity, target) in PARTS.items()}
    assert laddered.server.balances()["BTC"] == (Decimal(0), HELD)
    assert laddered.protected() == laddered.held() == HELD
    assert sorted(lst["listClientOrderId"] for lst in laddered.server.order_lists()) == [
        "rb-pl-7f3a9c2e-P1L", "rb-pl-7f3a9c2e-P2L", "rb-pl-7f3a9c2e-P3L"]


def test_after_each_target_the_protective_orders_cover_exactly_what_is_held(laddered):
    laddered.server.set_price(SYMBOL, "31000")  # target 1
    first = laddered.exchange.get_order(SYMBOL, stop_id(1))
    assert (first.status, first.filled_quantity, first.average_price) == (OrderStatus.FILLED, Decimal("0.005"),
                                                                           Decimal("31000"))
    assert laddered.protected() == laddered.held() == Decimal("0.005")

    for part in (2, 3):  # the rest to break-even, each keeping its target on the book
        moved = laddered.move(part, 1)
        assert (moved.type, moved.stop_price, moved.target_price) == (OrderType.OCO, BREAK_EVEN, PARTS[part][1])
        assert laddered.protected() == laddered.held() == Decimal("0.005")

    laddered.server.set_price(SYMBOL, "32000")  # target 2
    assert laddered.exchange.get_order(SYMBOL, stop_id(2, 1)).status is OrderStatus.FILLED
    assert laddered.protected() == laddered.held() == Decimal("0.002")

    laddered.server.set_price(SYMBOL, "30000")  # back down through the last part's break-even stop
    assert laddered.exchange.get_order(SYMBOL, stop_id(3, 1)).status is OrderStatus.FILLED
    assert laddered.protected() == laddered.held() == Decimal(0)


def test_a_move_to_a_lone_stop_is_one_cancel_replace_with_no_moment_unprotected(laddered):
    moved = laddered.move(3, 1, target=False)

    assert (moved.type, moved.status, moved.stop_price, moved.quantity) == (
        OrderType.STOP_LOSS_LIMIT, OrderStatus.NEW, BREAK_EVEN, Decimal("0.002"))
    assert laddered.exchange.get_order(SYMBOL, stop_id(3)).status is OrderStatus.CANCELED
    assert (laddered.sent("POST", CANCEL_REPLACE), laddered.sent("DELETE", "/api/v3/orderList")) == (1, 0)
    assert laddered.protected() == laddered.held() == HELD


def test_a_replacement_binance_already_shows_is_not_sent_again(laddered):
    first = laddered.move(3, 1, target=False)

    again = laddered.move(3, 1, target=False)

    assert again.exchange_order_id == first.exchange_order_id
    assert laddered.sent("POST", CANCEL_REPLACE) == 1


def test_a_lost_cancel_replace_answer_is_settled_by_looking_the_new_stop_up(laddered):
    laddered.server.inject(Fault.http_5xx_after_accepting(), "POST", CANCEL_REPLACE)

    moved = laddered.move(3, 1, target=False)

    assert (moved.status, moved.stop_price, moved.intent_id) == (OrderStatus.NEW, BREAK_EVEN, INTENT)
    assert laddered.sent("POST", CANCEL_REPLACE) == 1
    assert laddered.protected() == laddered.held() == HELD


def test_a_lost_cancel_replace_that_binance_never_executed_is_not_resent(laddered):
    laddered.server.inject(Fault.drop_connection(after_processing=False), "POST", CANCEL_REPLACE)

    with pytest.raises(AnswerLost):
        laddered.move(3, 1, target=False)

    assert laddered.sent("POST", CANCEL_REPLACE) == 1
    assert laddered.exchange.get_order(SYMBOL, stop_id(3)).status is OrderStatus.NEW


def test_a_stop_that_has_traded_is_not_replaced_and_nothing_is_placed(venue):
    venue.exchange.place_stop_order(SYMBOL, Side.SELL, HELD, STOP, LIMIT, stop_id(1), intent_id=INTENT)
    venue.server.fill_partly(stop_id(1), "0.004", "28950")  # it is selling: ONLY_NEW keeps it

    with pytest.raises(OrderRejected, match="was not replaced: Binance could not cancel it"):
        venue.exchange.replace_stop_order(SYMBOL, Side.SELL, HELD, BREAK_EVEN, BREAK_EVEN_LIMIT, stop_id(1),
                                          stop_id(1, 1), intent_id=INTENT)

    assert [o["clientOrderId"] for o in venue.server.open_orders()] == [stop_id(1)]


def test_a_replacement_refused_after_the_cancel_says_what_is_unprotected(laddered):
    laddered.server.set_price(SYMBOL, "30050")  # the break-even stop would trigger at once

    with pytest.raises(ReplacementRefused, match="UNPROTECTED") as refused:
        laddered.move(3, 1, target=False)

    assert refused.value.cancelled == stop_id(3)
    assert "Order would trigger immediately." in str(refused.value)
    assert laddered.protected() == Decimal("0.008") and laddered.held() == HELD


def test_a_replacement_breaking_a_filter_changes_nothing(laddered):
    with pytest.raises(OrderRejected, match="PRICE_FILTER.*stop price 30060.001"):
        laddered.exchange.replace_stop_order(SYMBOL, Side.SELL, Decimal("0.002"), Decimal("30060.001"),
                                             BREAK_EVEN_LIMIT, stop_id(3), stop_id(3, 1), intent_id=INTENT)

    assert laddered.exchange.get_order(SYMBOL, stop_id(3)).status is OrderStatus.NEW


def test_reducing_a_part_keeps_its_oco_on_the_book_and_frees_only_what_it_no_longer_asks_for(laddered):
    before = laddered.exchange.get_order(SYMBOL, stop_id(2))

    reduced = laddered.exchange.reduce_order(SYMBOL, stop_id(2), Decimal("0.002"))

    assert (reduced.client_order_id, reduced.exchange_order_id, reduced.quantity) == (
        stop_id(2), before.exchange_order_id, Decimal("0.002"))
    assert (reduced.type, reduced.target_price) == (OrderType.OCO, Decimal("32000"))
    target_leg = laddered.server.orders()[3]
    assert (target_leg["clientOrderId"], target_leg["origQty"]) == ("rb-pl-7f3a9c2e-P2T", "0.00200000")
    assert laddered.server.balances()["BTC"] == (Decimal("0.001"), Decimal("0.009"))
    assert laddered.sent("PUT", AMEND) == 1 and laddered.sent("DELETE", "/api/v3/orderList") == 0


def test_a_reduction_already_made_is_not_sent_again(laddered):
    laddered.exchange.reduce_order(SYMBOL, stop_id(2), Decimal("0.002"))

    again = laddered.exchange.reduce_order(SYMBOL, stop_id(2), Decimal("0.002"))

    assert again.quantity == Decimal("0.002") and laddered.sent("PUT", AMEND) == 1


def test_a_lost_amend_answer_is_settled_by_looking_the_order_up(laddered):
    laddered.server.inject(Fault.drop_connection(after_processing=True), "PUT", AMEND)

    reduced = laddered.exchange.reduce_order(SYMBOL, stop_id(2), Decimal("0.002"))

    assert reduced.quantity == Decimal("0.002") and laddered.sent("PUT", AMEND) == 1


def test_a_lost_amend_binance_never_made_leaves_the_order_whole_and_may_be_sent_again(laddered):
    laddered.server.inject(Fault.drop_connection(after_processing=False), "PUT", AMEND)

    with pytest.raises(AnswerLost, match="unchanged"):
        laddered.exchange.reduce_order(SYMBOL, stop_id(2), Decimal("0.002"))
    assert laddered.exchange.get_order(SYMBOL, stop_id(2)).quantity == Decimal("0.003")

    assert laddered.exchange.reduce_order(SYMBOL, stop_id(2), Decimal("0.002")).quantity == Decimal("0.002")


@pytest.mark.parametrize(("quantity", "message"), [
    (Decimal("0.004"), "cannot grow"), (Decimal("0.000001"), "LOT_SIZE"),
])
def test_a_reduction_that_cannot_be_made_is_refused(laddered, quantity, message):
    with pytest.raises(OrderRejected, match=message):
        laddered.exchange.reduce_order(SYMBOL, stop_id(2), quantity)

    assert laddered.exchange.get_order(SYMBOL, stop_id(2)).quantity == Decimal("0.003")


def test_an_order_no_longer_open_is_not_reduced(laddered):
    laddered.server.set_price(SYMBOL, "31000")

    with pytest.raises(OrderRejected, match="cannot be reduced: it is FILLED"):
        laddered.exchange.reduce_order(SYMBOL, stop_id(1), Decimal("0.001"))
