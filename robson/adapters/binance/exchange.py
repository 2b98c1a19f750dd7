"""The live exchange: Binance spot orders through the gateway, idempotent by client order id.

Placing an order is never retried blindly. When its answer is lost (timeout, dropped connection,
5XX, or an answer robson cannot read) the order is looked up by its client id; only what Binance
shows is believed. Every answer is read inside the gateway's call, so a malformed one is AnswerLost.

An entry that waits for its price uses Binance's own order lists where they fit: a LIMIT entry with
its protection is an OTOCO (the protective OCO, target and stop) or an OTO (a lone stop), whose
pending orders go on the book only once the entry has fully filled. Until then Binance shows them
PENDING_NEW; after it, the protective OCO is the one place_stop_order would have placed, under the
same client ids. A partial fill leaves them pending: robson cancels the list and protects what
filled itself. A STOP entry is a STOP_LOSS_LIMIT: a BUY triggers on a rise to its stop price and a
SELL on a fall to it (Binance's TAKE_PROFIT types trigger the other way); nothing can be attached to
it, so robson places the protection after the fill.

A scale-out ladder covers each part with its own protective OCO (ids `rb-<intent>-P<i>S<gen>`, its
take-profit `-P<i>T<gen>`, the list `-P<i>L<gen>`; robson.domain.orders.client_order_id), so what
is held always equals what is protected and no order asks for more than is held. A part is reduced
with an order amend keepPriority (reduce_order): the order stays on the book, so there is no gap, its
take-profit keeps its place in the queue, and an amend of either OCO leg resizes both. A stop moves
with cancelReplace (replace_stop_order) when what replaces it is a lone stop: one request, cancel and
new order together in the matching engine. Binance offers no replace for an order list (cancelReplace
places one order; cancelling one leg of an OCO cancels the list), so a move that keeps the part's
target on the book is the cancel of the old OCO and then the new one, one round trip apart.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from decimal import ROUND_UP, Decimal
from typing import Any

from robson.adapters.binance.gateway import (
    FILTER_FAILURE,
    NO_SUCH_ORDER,
    BinanceFailure,
    BinanceGateway,
    BinanceRefusal,
)
from robson.adapters.binance.market import BinanceMarket
from robson.application.ports import Balance
from robson.domain.intent import EntryOrder
from robson.domain.market import Side, SymbolInfo, ms_to_datetime
from robson.domain.money import ZERO, fmt
from robson.domain.orders import OPEN_STATUSES, Order, OrderStatus, OrderType, Protection
from robson.errors import (
    AnswerLost,
    DuplicateOrder,
    ExchangeError,
    OrderRejected,
    ReplacementRefused,
    TemporaryExchangeError,
)

WEIGHT_ACCOUNT = 20
WEIGHT_ORDER = 1
WEIGHT_QUERY_ORDER = 4
WEIGHT_OPEN_ORDERS = 6
WEIGHT_ORDER_LIST = 4
WEIGHT_MY_TRADES = 20
WEIGHT_AMEND = 4
AMEND_REJECTED = -2038
NO_CHANGE = "would change no state"  # an amend to the quantity the order already has
LOOKUPS_AFTER_LOST_ANSWER = 3
# A request Binance has not executed within its recvWindow is refused for good; allow this much more for clocks.
ARRIVAL_MARGIN_MS = 5000
EIGHT_PLACES = Decimal("0.00000001")  # Binance's precision for a commission

_STATUSES = {
    "PENDING_NEW": OrderStatus.PENDING_NEW,
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}


# Any other type robson places is a stop-limit; a LIMIT_MAKER is an OCO's take-profit leg, a limit order.
_TYPES = {"MARKET": OrderType.MARKET, "LIMIT": OrderType.LIMIT, "LIMIT_MAKER": OrderType.LIMIT}
_STOP_TYPES = ("STOP_LOSS_LIMIT", "STOP_LOSS")  # an OCO's stop leg, whose take-profit leg get_order looks up too
_STOP_SUFFIX = re.compile(r"S(\d*)$")


def leg_ids(stop_client_id: str) -> tuple[str, str]:
    """Return the client ids of an OCO's take-profit leg and of the order list, derived from the stop's id.

    A re-placed stop carries a generation (`-S2`); its legs keep it (`-T2`, `-L2`) so that no two
    generations share a client id.
    """
    match = _STOP_SUFFIX.search(stop_client_id)
    if match is None:
        return stop_client_id[:-1] + "T", stop_client_id[:-1] + "L"
    head, generation = stop_client_id[:match.start()], match.group(1)
    return f"{head}T{generation}", f"{head}L{generation}"


class BinanceExchange:
    """The Exchange protocol on Binance spot."""

    name = "binance"
    live = True

    def __init__(self, gateway: BinanceGateway, market: BinanceMarket, *,
                 sleep: Callable[[float], None] | None = None) -> None:
        self._gateway = gateway
        self._market = market
        self._sleep = sleep or (lambda seconds: None)
        self._commission: Decimal | None = None

    # --- account ---------------------------------------------------------------------------

    def balances(self) -> dict[str, Balance]:
        def parse(answer: dict[str, Any]) -> dict[str, Balance]:
            result = {}
            for row in answer.get("balances", []):
                free, locked = Decimal(row["free"]), Decimal(row["locked"])
                if free or locked:
                    result[row["asset"]] = Balance(row["asset"], free, locked)
            return result

        return self._gateway.call(lambda c: c.get_account(omitZeroBalances="true"), weight=WEIGHT_ACCOUNT, signed=True,
                                  parse=parse)

    # --- the clock that decides whether a lost order can still appear ----------------------

    def send_stamp(self) -> int:
        """Return Binance's clock in ms, recorded just before an order is sent."""
        return self._gateway.server_time_ms()

    def may_still_arrive(self, send_stamp: int) -> bool:
        """True while an order sent at send_stamp could still be executed (its recvWindow is open)."""
        self._gateway.sync_clock()
        return self._gateway.server_time_ms() <= send_stamp + self._gateway.recv_window_ms + ARRIVAL_MARGIN_MS

    # --- orders ----------------------------------------------------------------------------

    def get_order(self, symbol: str, client_order_id: str) -> Order | None:
        """Look an order up by client id (with its fills); None if Binance never saw it.

        An order list's pending order is PENDING_NEW until the list's working order has fully filled,
        NEW after. An OCO's stop leg (an OTOCO's too) comes back as one OCO order with its target.
        """
        found = self._look_up(symbol, client_order_id)
        return found[1] if found is not None else None

    def _look_up(self, symbol: str, client_order_id: str) -> tuple[dict[str, Any], Order] | None:
        """Return the order as Binance shows it and as robson reads it; None if Binance never saw it."""
        raw = self._query(symbol, client_order_id)
        if raw is None:
            return None
        target = None
        if raw.get("orderListId", -1) != -1 and raw["type"] in _STOP_TYPES:
            target_id, _ = leg_ids(client_order_id)
            target = self._query(symbol, target_id)
            if target is not None and target.get("orderListId") != raw["orderListId"]:
                target = None  # the id names no leg of this list: an OTO's lone stop has none
        # When the take-profit leg traded (all or part), its trades carry the fill's commission, not the stop leg's.
        filled = target if _traded(target) else raw
        return raw, self._order(raw, target_leg=target, fills=self._fills(symbol, filled))

    def _query(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        try:
            return self._gateway.call(lambda c: c.get_order(symbol=symbol, origClientOrderId=client_order_id),
                                      weight=WEIGHT_QUERY_ORDER, signed=True, parse=self._readable)
        except BinanceRefusal as e:
            if e.failure.code == NO_SUCH_ORDER:
                return None
            raise

    def _fills(self, symbol: str, raw: dict[str, Any]) -> list[dict[str, Any]]:
        if Decimal(raw.get("executedQty", "0")) == 0:
            return []
        return self._gateway.call(lambda c: c.get_my_trades(symbol=symbol, orderId=raw["orderId"]),
                                  weight=WEIGHT_MY_TRADES, signed=True, parse=_trades)

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        params = {"symbol": symbol} if symbol else {}
        return self._gateway.call(lambda c: c.get_open_orders(**params), weight=WEIGHT_OPEN_ORDERS, signed=True,
                                  parse=lambda rows: [self._order(row) for row in rows])

    def test_order(self, symbol: str, side: Side, quantity: Decimal) -> None:
        """Ask Binance to check a market order without placing it; raise OrderRejected naming the filter."""
        info = self._market.symbol_info(symbol)
        try:
            self._gateway.call(lambda c: c.create_test_order(symbol=symbol, side=side.value, type="MARKET",
                                                             quantity=fmt(quantity)),
                               weight=WEIGHT_ORDER, signed=True)
        except BinanceRefusal as e:
            raise self._rejection(e, info, quantity, {}) from None

    def place_market_order(self, symbol: str, side: Side, quantity: Decimal, client_order_id: str, *,
                           intent_id: str | None = None) -> Order:
        info = self._market.symbol_info(symbol)
        params = {"symbol": symbol, "side": side.value, "type": "MARKET", "quantity": fmt(quantity),
                  "newClientOrderId": client_order_id, "newOrderRespType": "FULL"}
        return self._send(lambda c: c.create_order(**params), symbol, client_order_id, info, quantity, {},
                          lambda raw: self._order(raw, fills=raw.get("fills", []), intent_id=intent_id), intent_id)

    def place_stop_order(self, symbol: str, side: Side, quantity: Decimal, stop_price: Decimal, limit_price: Decimal,
                         client_order_id: str, *, target_price: Decimal | None = None,
                         intent_id: str | None = None) -> Order:
        """Place a STOP_LOSS_LIMIT, or an OCO whose other leg is a LIMIT_MAKER at the target."""
        info = self._market.symbol_info(symbol)
        prices = {"stop": stop_price, "limit": limit_price}
        if target_price is None:
            params = {"symbol": symbol, "side": side.value, "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC",
                      "quantity": fmt(quantity), "stopPrice": fmt(stop_price), "price": fmt(limit_price),
                      "newClientOrderId": client_order_id}
            return self._send(lambda c: c.create_order(**params), symbol, client_order_id, info, quantity, prices,
                              lambda raw: self._order(raw, intent_id=intent_id), intent_id)
        target_id, list_id = leg_ids(client_order_id)
        above, below = _protective_oco(side, stop_price, limit_price, target_price, client_order_id)
        params = {"symbol": symbol, "side": side.value, "quantity": fmt(quantity), "listClientOrderId": list_id,
                  **_prefixed("above", above), **_prefixed("below", below)}

        def parse(raw: dict[str, Any]) -> Order:
            reports = {r["clientOrderId"]: r for r in raw.get("orderReports", [])}
            return self._order(reports[client_order_id], target_leg=reports.get(target_id), intent_id=intent_id)

        return self._send(lambda c: c.create_oco_order(**params), symbol, client_order_id, info, quantity,
                          {**prices, "target": target_price}, parse, intent_id)

    def place_entry_order(self, symbol: str, side: Side, quantity: Decimal, client_order_id: str, *,
                          order: EntryOrder, price: Decimal, stop_limit_price: Decimal | None = None,
                          protection: Protection | None = None, intent_id: str | None = None) -> Order:
        """Place an entry that waits for its price; return the entry as Binance shows it (NEW, or further along).

        LIMIT: a GTC limit at price. With protection it is the working order of an OTOCO (the target
        and the stop, the OCO place_stop_order places, under the same ids) or of an OTO (a lone stop),
        whose pending orders go live only once the entry has fully filled and cover what the fill
        leaves (see _protected_quantity). STOP: a STOP_LOSS_LIMIT triggered at price, trading up to
        stop_limit_price (price when none is given). Raise InsufficientBalance, OrderRejected (a
        filter failure names the value and the filter's numbers) or ExchangeError; ValueError for a
        MARKET entry, or a STOP entry with protection, which Binance cannot attach to it.
        """
        if order is EntryOrder.MARKET:
            raise ValueError("a market entry is placed by place_market_order")
        if order is EntryOrder.STOP and protection is not None:
            raise ValueError("Binance attaches orders only to a LIMIT entry: a stop entry is protected after its fill")
        info = self._market.symbol_info(symbol)
        if protection is not None:
            return self._place_protected_entry(info, side, quantity, client_order_id, price, protection, intent_id)
        params = {"symbol": symbol, "side": side.value, "timeInForce": "GTC", "quantity": fmt(quantity),
                  "newClientOrderId": client_order_id, "newOrderRespType": "FULL"}
        prices = {"entry": price}
        if order is EntryOrder.STOP:
            limit = price if stop_limit_price is None else stop_limit_price
            params |= {"type": "STOP_LOSS_LIMIT", "stopPrice": fmt(price), "price": fmt(limit)}
            prices["limit"] = limit
        else:
            params |= {"type": "LIMIT", "price": fmt(price)}
        return self._send(lambda c: c.create_order(**params), symbol, client_order_id, info, quantity, prices,
                          lambda raw: self._order(raw, fills=raw.get("fills", []), intent_id=intent_id), intent_id)

    def _place_protected_entry(self, info: SymbolInfo, side: Side, quantity: Decimal, client_order_id: str,
                               price: Decimal, protection: Protection, intent_id: str | None) -> Order:
        """Send a LIMIT entry as an OTOCO's (with a target) or an OTO's working order; its protection waits for the fill."""
        symbol, stop_id = info.symbol, protection.client_order_id
        _, list_id = leg_ids(stop_id)
        params = {"symbol": symbol, "listClientOrderId": list_id, "workingType": "LIMIT", "workingSide": side.value,
                  "workingClientOrderId": client_order_id, "workingPrice": fmt(price),
                  "workingQuantity": fmt(quantity), "workingTimeInForce": "GTC", "pendingSide": side.opposite.value,
                  "pendingQuantity": fmt(self._protected_quantity(info, side, quantity))}
        prices = {"entry": price, "stop": protection.stop_price, "limit": protection.limit_price}
        if protection.target_price is None:
            params |= _prefixed("pending", _stop_leg(protection.stop_price, protection.limit_price, stop_id))
            request = lambda c: c.v3_post_order_list_oto(**params)  # noqa: E731
        else:
            above, below = _protective_oco(side.opposite, protection.stop_price, protection.limit_price,
                                           protection.target_price, stop_id)
            params |= _prefixed("pendingAbove", above) | _prefixed("pendingBelow", below)
            prices["target"] = protection.target_price
            request = lambda c: c.v3_post_order_list_otoco(**params)  # noqa: E731

        def parse(raw: dict[str, Any]) -> Order:
            reports = {r["clientOrderId"]: r for r in raw["orderReports"]}
            return self._order(reports[client_order_id], intent_id=intent_id)

        placed = self._send(request, symbol, client_order_id, info, quantity, prices, parse, intent_id)
        if placed.filled_quantity and placed.fee_asset is None:
            # Filled at once: a list's answer carries no fills, so the commission comes from myTrades. Should that
            # read fail, the entry is placed all the same: the next get_order reads the commission.
            try:
                placed = dataclasses.replace(self.get_order(symbol, client_order_id) or placed, intent_id=intent_id)
            except ExchangeError:
                pass
        return placed

    def _protected_quantity(self, info: SymbolInfo, side: Side, quantity: Decimal) -> Decimal:
        """What a fill of quantity leaves to protect, as an order list must say before the fill.

        A BUY pays its commission in the base asset it receives (unless the account pays in BNB), so its
        protection covers the quantity less the commission at the account's highest rate, rounded down
        to the LOT_SIZE step: Binance would refuse a pending SELL for more than the fill left. A SELL's
        protection buys the whole quantity back.
        """
        if side is Side.SELL:
            return quantity
        commission = (quantity * self._commission_rate()).quantize(EIGHT_PLACES, rounding=ROUND_UP)
        return info.round_quantity(quantity - commission)

    def _commission_rate(self) -> Decimal:
        """The account's highest commission rate, maker or taker (read once: Binance changes it monthly at most)."""
        if self._commission is None:
            def parse(answer: dict[str, Any]) -> Decimal:
                rates = answer.get("commissionRates")
                if rates:
                    return max(Decimal(rates["maker"]), Decimal(rates["taker"]))
                return Decimal(max(answer["makerCommission"], answer["takerCommission"])) / 10000  # in bips

            self._commission = self._gateway.call(lambda c: c.get_account(omitZeroBalances="true"),
                                                  weight=WEIGHT_ACCOUNT, signed=True, parse=parse)
        return self._commission

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel an open order and return its final state, with what it filled; raise OrderRejected if it is not open.

        An order of a list goes with its whole list, as Binance cancels it: an OCO's two legs, and an
        OTO's or OTOCO's working order with its pending orders (cancelling a pending PENDING_NEW
        protection cancels the entry it waits for).
        """
        found = self._look_up(symbol, client_order_id)
        if found is None or found[1].status not in OPEN_STATUSES:
            state = found[1].status.value if found else "unknown to Binance"
            raise OrderRejected(f"order {client_order_id} cannot be cancelled: it is {state}")
        raw, current = found
        list_id = raw.get("orderListId", -1)
        if list_id != -1:
            request = lambda c: c.v3_delete_order_list(symbol=symbol, orderListId=list_id)  # noqa: E731
        else:
            request = lambda c: c.cancel_order(symbol=symbol, origClientOrderId=client_order_id)  # noqa: E731
        try:
            self._gateway.call(request, weight=WEIGHT_ORDER, signed=True, idempotent=False)
        except AnswerLost:
            pass  # the lookup below tells what happened
        return self.get_order(symbol, client_order_id) or current

    # --- changing a protective order in place -----------------------------------------------

    def reduce_order(self, symbol: str, client_order_id: str, quantity: Decimal) -> Order:
        """Reduce an open order to quantity where it rests (both legs of an OCO), keeping its client id.

        Binance's order amend keepPriority: the order never leaves the book, so what it protects is never
        without a stop, a take-profit keeps its place in the queue, and the base asset no longer asked
        for is freed. An amend names the quantity it leaves, so it is idempotent: an order already at
        quantity is returned as it is, and a lost answer is settled by looking the order up (an amend
        that arrives late changes nothing). Raise OrderRejected if the order is not open, is smaller
        than quantity, or quantity breaks a filter; AnswerLost if Binance shows the order unchanged.
        """
        info = self._market.symbol_info(symbol)
        current = self._open(symbol, client_order_id, "reduced")
        if current.quantity == quantity:
            return current
        if current.quantity < quantity:
            raise OrderRejected(f"order {client_order_id} holds {fmt(current.quantity)}: it cannot grow to "
                                f"{fmt(quantity)} in place")
        params = {"symbol": symbol, "origClientOrderId": client_order_id, "newClientOrderId": client_order_id,
                  "newQty": fmt(quantity)}

        def parse(answer: dict[str, Any]) -> Order:
            amended = answer["amendedOrder"]
            raw = {**amended, "origQty": amended["qty"], "cummulativeQuoteQty": amended["cumulativeQuoteQty"]}
            order = self._order(raw)
            # An OCO is amended through its stop leg; its take-profit leg is the same order list, resized with it.
            return dataclasses.replace(order, type=current.type, target_price=current.target_price,
                                       intent_id=current.intent_id)

        try:
            return self._gateway.call(lambda c: c._put("order/amend/keepPriority", True, data=params),
                                      weight=WEIGHT_AMEND, signed=True, idempotent=False, parse=parse)
        except BinanceRefusal as e:
            if e.failure.code == AMEND_REJECTED and NO_CHANGE in e.failure.message:
                return self._open(symbol, client_order_id, "reduced")
            raise self._rejection(e, info, quantity, {}) from None
        except AnswerLost as lost:
            found = self.get_order(symbol, client_order_id)
            if found is not None and found.quantity == quantity:
                return found
            raise AnswerLost(f"the reduction of {client_order_id} to {fmt(quantity)} was sent but its answer was lost "
                             f"({lost}), and Binance shows the order unchanged",
                             hint="run the monitor again: sending the same reduction twice changes nothing") from None

    def replace_stop_order(self, symbol: str, side: Side, quantity: Decimal, stop_price: Decimal,
                           limit_price: Decimal, cancel_client_order_id: str, client_order_id: str, *,
                           target_price: Decimal | None = None, intent_id: str | None = None) -> Order:
        """Replace the open protective order cancel_client_order_id with a stop (an OCO with target_price).

        A lone stop replaces it in one request, Binance's cancelReplace (STOP_ON_FAILURE, ONLY_NEW): the
        old order (a whole OCO, for one of its legs) is cancelled and the new stop placed by the matching
        engine together, so there is no moment without a stop, and an old order that has begun to trade
        is not cancelled at all. Binance has no such request for an order list (cancelReplace places a
        single order), so a new OCO follows the cancel of the old one, one round trip later. Idempotent by
        client id: a replacement Binance already shows is returned as it is. Raise OrderRejected, nothing
        having changed, when the old order is no longer open (it traded or was cancelled) or the new one
        breaks a filter; ReplacementRefused when the old order was cancelled and the new one refused;
        AnswerLost when the answer was lost and Binance does not show the new order.
        """
        info = self._market.symbol_info(symbol)
        existing = self.get_order(symbol, client_order_id)
        if existing is not None:
            return dataclasses.replace(existing, intent_id=intent_id)
        if target_price is not None:
            self.cancel_order(symbol, cancel_client_order_id)
            try:
                return self.place_stop_order(symbol, side, quantity, stop_price, limit_price, client_order_id,
                                             target_price=target_price, intent_id=intent_id)
            except OrderRejected as e:
                raise _unprotected(cancel_client_order_id, client_order_id, str(e)) from None
        prices = {"stop": stop_price, "limit": limit_price}
        params = {"symbol": symbol, "side": side.value, "type": "STOP_LOSS_LIMIT", "timeInForce": "GTC",
                  "quantity": fmt(quantity), "stopPrice": fmt(stop_price), "price": fmt(limit_price),
                  "newClientOrderId": client_order_id, "newOrderRespType": "RESULT",
                  "cancelReplaceMode": "STOP_ON_FAILURE", "cancelRestrictions": "ONLY_NEW",
                  "cancelOrigClientOrderId": cancel_client_order_id}

        def refused(failure: BinanceFailure) -> ExchangeError | None:
            """Say which half of a cancelReplace failed (-2021 / -2022); None for a refusal of the whole request."""
            data = failure.data
            if not data:
                return None
            if data.get("cancelResult") == "SUCCESS":
                refusal = data.get("newOrderResponse") or {}
                return _unprotected(cancel_client_order_id, client_order_id, refusal.get("msg", ""))
            reason = (data.get("cancelResponse") or {}).get("msg", "")
            return OrderRejected(f"order {cancel_client_order_id} was not replaced: Binance could not cancel it "
                                 f"({reason}); nothing was placed",
                                 hint="it has traded or was cancelled: look it up before anything else")

        return self._send(lambda c: c.cancel_replace_order(**params), symbol, client_order_id, info, quantity,
                          prices, lambda raw: self._order(raw["newOrderResponse"], intent_id=intent_id), intent_id,
                          refused=refused)

    def _open(self, symbol: str, client_order_id: str, what: str) -> Order:
        """Return the open order client_order_id; raise OrderRejected when Binance shows it closed or not at all."""
        found = self.get_order(symbol, client_order_id)
        if found is None or found.status not in OPEN_STATUSES:
            state = found.status.value if found else "unknown to Binance"
            raise OrderRejected(f"order {client_order_id} cannot be {what}: it is {state}")
        return found

    # --- sending ---------------------------------------------------------------------------

    def _send(self, request: Callable[[Any], Any], symbol: str, client_order_id: str, info: SymbolInfo,
              quantity: Decimal, prices: dict[str, Decimal], parse: Callable[[dict[str, Any]], Order],
              intent_id: str | None, *,
              refused: Callable[[BinanceFailure], ExchangeError | None] | None = None) -> Order:
        """Send an order once and parse Binance's answer; after a lost answer or a duplicate, return what Binance shows.

        An order found by its client id is the intent's as much as one parsed from the answer. refused
        may read a refusal first (None: the usual OrderRejected, naming the filter that failed).
        """
        try:
            return self._gateway.call(request, weight=WEIGHT_ORDER, signed=True, idempotent=False, parse=parse)
        except DuplicateOrder:
            found = self.get_order(symbol, client_order_id)
            if found is None:
                raise
            return dataclasses.replace(found, intent_id=intent_id)
        except BinanceRefusal as e:
            raise (refused and refused(e.failure)) or self._rejection(e, info, quantity, prices) from None
        except AnswerLost as lost:
            return dataclasses.replace(self._find_after_lost_answer(symbol, client_order_id, lost), intent_id=intent_id)

    def _find_after_lost_answer(self, symbol: str, client_order_id: str, lost: AnswerLost) -> Order:
        for attempt in range(LOOKUPS_AFTER_LOST_ANSWER):
            try:
                found = self.get_order(symbol, client_order_id)
            except TemporaryExchangeError:
                found = None
            if found is not None:
                return found
            self._sleep(0.2 * 2 ** attempt)
        raise AnswerLost(
            f"order {client_order_id} was sent but its answer was lost ({lost}), and Binance does not show it: "
            "nothing was resent",
            hint="run `robson reconcile`: it settles the order once Binance can no longer accept it",
        )

    @staticmethod
    def _rejection(error: BinanceRefusal, info: SymbolInfo, quantity: Decimal,
                   prices: dict[str, Decimal]) -> ExchangeError:
        failure = error.failure
        if failure.code != FILTER_FAILURE:
            return OrderRejected(f"Binance rejected the order: {failure.message} (code {failure.code})")
        return OrderRejected(f"Binance rejected the order: {failure.message}: "
                             + explain_filter(failure.message, info, quantity, prices),
                             hint="plan again; robson rounds to the filters it knows, so they may have changed")

    # --- mapping ---------------------------------------------------------------------------

    def _readable(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Return an order as Binance shows it once it is known to map (a malformed one raises, in the gateway)."""
        self._order(raw)
        return raw

    def _order(self, raw: dict[str, Any], *, target_leg: dict[str, Any] | None = None,
               fills: list[dict[str, Any]] | None = None, intent_id: str | None = None) -> Order:
        executed = Decimal(raw.get("executedQty", "0"))
        quote = Decimal(raw.get("cummulativeQuoteQty", "0"))
        fee, fee_asset = ZERO, None
        for fill in fills or []:
            fee += Decimal(fill["commission"])
            fee_asset = fill["commissionAsset"]
        status = _STATUSES.get(raw["status"], OrderStatus.NEW)
        filled_leg = raw
        if _traded(target_leg):
            # The take-profit traded, so Binance expired the stop leg: what the OCO sold (and whether it is
            # still working) is the take-profit's, in full (FILLED), in part and resting, or in part then ended.
            status, filled_leg = _STATUSES.get(target_leg["status"], OrderStatus.NEW), target_leg
            executed = Decimal(target_leg.get("executedQty", "0"))
            quote = Decimal(target_leg.get("cummulativeQuoteQty", "0"))
        created = raw.get("time") or raw.get("transactTime") or raw.get("workingTime") or 0
        updated = filled_leg.get("updateTime") or filled_leg.get("transactTime") or created
        stop = Decimal(raw["stopPrice"]) if Decimal(raw.get("stopPrice") or "0") else None
        price = Decimal(raw["price"]) if Decimal(raw.get("price") or "0") else None
        kind = OrderType.OCO if target_leg is not None else _TYPES.get(raw["type"], OrderType.STOP_LOSS_LIMIT)
        return Order(
            client_order_id=raw["clientOrderId"], exchange=self.name, symbol=raw["symbol"], side=Side(raw["side"]),
            type=kind, quantity=Decimal(raw["origQty"]), status=status,
            created_at=ms_to_datetime(int(created)), updated_at=ms_to_datetime(int(updated)),
            price=price, stop_price=stop,
            target_price=Decimal(target_leg["price"]) if target_leg is not None else None,
            filled_quantity=executed, average_price=quote / executed if executed else None,
            fee=fee, fee_asset=fee_asset, exchange_order_id=str(raw.get("orderId")), intent_id=intent_id,
        )


def _stop_leg(stop_price: Decimal, limit_price: Decimal, stop_id: str) -> dict[str, str]:
    """A protective STOP_LOSS_LIMIT as an order list's order (its parameters without the list's prefix)."""
    return {"Type": "STOP_LOSS_LIMIT", "StopPrice": fmt(stop_price), "Price": fmt(limit_price), "TimeInForce": "GTC",
            "ClientOrderId": stop_id}


def _protective_oco(side: Side, stop_price: Decimal, limit_price: Decimal, target_price: Decimal,
                    stop_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """Return the (above, below) orders of a protective OCO on side: the stop, and a LIMIT_MAKER at the target.

    A SELL protects a long: the target is above the price, the stop below. A BUY mirrors it. The
    target's id derives from the stop's (leg_ids).
    """
    target_id, _ = leg_ids(stop_id)
    stop_leg = _stop_leg(stop_price, limit_price, stop_id)
    target_leg = {"Type": "LIMIT_MAKER", "Price": fmt(target_price), "ClientOrderId": target_id}
    return (target_leg, stop_leg) if side is Side.SELL else (stop_leg, target_leg)


def _prefixed(prefix: str, order: dict[str, str]) -> dict[str, str]:
    """An order list's order as parameters: `above` + `StopPrice` is `aboveStopPrice`."""
    return {prefix + name: value for name, value in order.items()}


def _unprotected(cancelled: str, refused: str, reason: str) -> ReplacementRefused:
    return ReplacementRefused(f"order {cancelled} was cancelled but Binance refused its replacement {refused}"
                              f"{': ' + reason if reason else ''}: what it protected is UNPROTECTED",
                              cancelled=cancelled, hint="run `robson monitor --once`: it places a stop again or exits")


def _trades(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep what robson reads of an order's trades (myTrades)."""
    return [{"price": t["price"], "qty": t["qty"], "commission": t["commission"],
             "commissionAsset": t["commissionAsset"]} for t in trades]


def _traded(leg: dict[str, Any] | None) -> bool:
    """True when an OCO leg has executed any quantity."""
    return leg is not None and Decimal(leg.get("executedQty") or "0") > 0


def explain_filter(message: str, info: SymbolInfo, quantity: Decimal, prices: dict[str, Decimal]) -> str:
    """Say which value broke which filter, with the filter's numbers.

    prices names each price of the order (stop, limit, target): a PRICE_FILTER failure names the
    ones off the tick or range robson knows, or all of them when the filter changed under robson.
    """
    if "LOT_SIZE" in message:
        return f"quantity {fmt(quantity)} (min {fmt(info.min_qty)}, max {fmt(info.max_qty)}, step {fmt(info.step_size)})"
    if "PRICE_FILTER" in message and prices:
        outside = {name: price for name, price in prices.items() if not _price_fits(info, price)}
        named = ", ".join(f"{name} price {fmt(price)}" for name, price in (outside or prices).items())
        return f"{named} (min {fmt(info.min_price)}, tick {fmt(info.tick_size)})"
    if "NOTIONAL" in message:
        return f"quantity {fmt(quantity)} is below the minimum order value of {fmt(info.min_notional)} {info.quote_asset}"
    return ", ".join([f"quantity {fmt(quantity)}", *(f"{name} price {fmt(price)}" for name, price in prices.items())])


def _price_fits(info: SymbolInfo, price: Decimal) -> bool:
    """True when price is on the PRICE_FILTER tick and within its range, as robson knows the filter."""
    return (info.price_on_tick(price) and price >= info.min_price
            and (not info.max_price or price <= info.max_price))
