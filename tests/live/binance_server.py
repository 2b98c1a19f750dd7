"""A Binance-spot-compatible REST server on 127.0.0.1 for tests: real paths, signing, filters, fills, faults.

python-binance talks to it unpatched:
    client = Client(key, secret, ping=False); client.API_URL = server.base_url + "/api"
Payloads, error codes and messages follow Binance's spot API (binance-spot-api.yaml and errors.md);
symbols, filters and rate limits are the real October 2021 exchangeInfo for BTCUSDT and ETHUSDT.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import random
import re
import socket
import socketserver
import string
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

ZERO = Decimal(0)
EIGHT_PLACES = Decimal("0.00000001")
DEFAULT_PRICES = {"BTCUSDT": Decimal("30000"), "ETHUSDT": Decimal("2000")}
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
AHEAD_TOLERANCE_MS = 1000  # Binance refuses timestamps more than 1 s ahead of its clock
# An order list's pending order (PENDING_NEW) is open too: it counts against MAX_NUM_ORDERS, shows in openOrders
# and keeps its client id taken, but it is not on the book until its working order has fully filled.
OPEN_STATUSES = ("PENDING_NEW", "NEW", "PARTIALLY_FILLED")
ON_BOOK_STATUSES = ("NEW", "PARTIALLY_FILLED")  # matched against the price
CONDITIONAL_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
MARKET_LIKE_TYPES = ("MARKET", "STOP_LOSS", "TAKE_PROFIT")  # execute at market: no limit price
ORDER_TYPES = ("LIMIT", "MARKET", *CONDITIONAL_TYPES, "LIMIT_MAKER")
OCO_LEG_TYPES = ("STOP_LOSS_LIMIT", "STOP_LOSS", "LIMIT_MAKER")
WORKING_TYPES = ("LIMIT", "LIMIT_MAKER")  # an OTO's or OTOCO's working order
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESPONSE_TYPES = ("ACK", "RESULT", "FULL")
KLINE_INTERVALS_MS = {
    "1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000, "1M": 2_592_000_000,
}
NUMBER_PATTERN = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
CLIENT_ID_PATTERN = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")

INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
TOO_MUCH_WEIGHT = ("Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
                   "Please use WebSocket Streams for live updates to avoid polling the API.")
IP_BANNED = ("Way too much request weight used; IP banned until {until}. "
             "Please use WebSocket Streams for live updates to avoid bans.")
UNKNOWN_ORDER = "Unknown order sent."
CANCEL_RESTRICTED = "Order was not canceled due to cancel restrictions."
CANCEL_REPLACE_MODES = ("STOP_ON_FAILURE", "ALLOW_FAILURE")
CANCEL_RESTRICTIONS = ("ONLY_NEW", "ONLY_PARTIALLY_FILLED")
# What cancelReplace reads itself; every other parameter describes the new order, as for POST /api/v3/order.
CANCEL_REPLACE_OWN = ("cancelReplaceMode", "cancelRestrictions", "cancelNewClientOrderId", "cancelOrigClientOrderId",
                      "cancelOrderId", "orderRateLimitExceededMode")
SEND_STATUS_UNKNOWN = "Timeout waiting for response from backend server. Send status unknown; execution status unknown."


class ApiError(Exception):
    """A Binance error answer: an HTTP status and the body {"code": ..., "msg": ...} (cancelReplace adds "data")."""

    def __init__(self, code: int, msg: str, status: int = 400, data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status, self.data = code, msg, status, data

    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = {"code": self.code, "msg": self.msg}
        return document if self.data is None else document | {"data": self.data}


def _mandatory(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _one_of(first: str, second: str) -> ApiError:
    return ApiError(-1102, f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


def _illegal(name: str, legal: str) -> ApiError:
    return ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'.")


def _s(value: Decimal) -> str:
    """Format like Binance: eight decimals, no exponent."""
    return format(value.quantize(EIGHT_PLACES), "f")


def _random_id() -> str:
    return "".join(random.choices(string.ascii_letters + string.digits, k=22))


def _exchange_info_2021() -> dict[str, Any]:
    """Return Binance's real exchangeInfo for BTCUSDT and ETHUSDT (mainnet, 2021-10-22)."""

    def symbol(name: str, base: str, lot_step: str, market_max_qty: str) -> dict[str, Any]:
        return {
            "symbol": name, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": True,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
                 "tickSize": "0.01000000"},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "5", "multiplierDown": "0.2", "avgPriceMins": 5},
                {"filterType": "LOT_SIZE", "minQty": lot_step, "maxQty": "9000.00000000", "stepSize": lot_step},
                {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000", "applyToMarket": True,
                 "avgPriceMins": 5},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": market_max_qty,
                 "stepSize": "0.00000000"},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": ["SPOT", "MARGIN"],
        }

    return {
        "timezone": "UTC",
        "serverTime": 1634942465856,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 6100},
        ],
        "exchangeFilters": [],
        "symbols": [symbol("BTCUSDT", "BTC", "0.00001000", "112.21108820"),
                    symbol("ETHUSDT", "ETH", "0.00010000", "1630.44517663")],
    }


def _notional_filter(min_notional: str) -> dict[str, Any]:
    """Today's NOTIONAL filter, which replaced MIN_NOTIONAL on Binance spot."""
    return {"filterType": "NOTIONAL", "minNotional": _s(Decimal(min_notional)), "applyMinToMarket": True,
            "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}


# --- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Fault:
    """One thing that goes wrong with a request; build it with the factory methods below."""

    kind: str
    status: int = 0
    code: int = 0
    msg: str = ""
    after_processing: bool = True
    release: threading.Event | None = None
    max_seconds: float = 0.0
    retry_after: int = 0
    action: Callable[[], None] | None = None
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    applied: threading.Event = field(default_factory=threading.Event, repr=False)  # set when it takes effect

    @classmethod
    def http_5xx_after_accepting(cls, status: int = 503) -> Fault:
        """Process the request (the order IS placed), then answer 5xx -1007: send status unknown."""
        return cls("5xx", status=status, code=-1007, msg=SEND_STATUS_UNKNOWN)

    @classmethod
    def drop_connection(cls, after_processing: bool = True) -> Fault:
        """Close the socket without an answer, after or before processing the request."""
        return cls("drop", after_processing=after_processing)

    @classmethod
    def hold(cls, release: threading.Event | None = None, max_seconds: float = 5.0,
             after_processing: bool = True) -> Fault:
        """Hold the answer until `release` is set or max_seconds pass (processing first by default)."""
        return cls("hold", release=release, max_seconds=max_seconds, after_processing=after_processing)

    @classmethod
    def latency(cls, seconds: float) -> Fault:
        """Answer `seconds` late."""
        return cls.hold(None, max_seconds=seconds)

    @classmethod
    def rate_limited(cls, status: int = 429, retry_after: int = 60) -> Fault:
        """Refuse with 429 (too much weight) or 418 (IP banned), -1003 and a Retry-After header."""
        return cls("rate_limited", status=status, code=-1003, retry_after=retry_after, after_processing=False)

    @classmethod
    def first(cls, action: Callable[[], None]) -> Fault:
        """Run action (e.g. move the price) just before the request is processed: a race won by the market."""
        return cls("first", action=action, after_processing=False)

    @classmethod
    def raw(cls, status: int, body: str | bytes, *, content_type: str = "application/json;charset=UTF-8",
            after_processing: bool = True) -> Fault:
        """Answer with this status and body, exactly as given (a malformed answer, a proxy's HTML page)."""
        data = body.encode() if isinstance(body, str) else body
        return cls("raw", status=status, body=data, content_type=content_type, after_processing=after_processing)

    @classmethod
    def error(cls, code: int, msg: str, status: int = 400) -> Fault:
        """Refuse with this Binance error instead of processing the request."""
        return cls("error", status=status, code=code, msg=msg, after_processing=False)


class RecordedRequest(NamedTuple):
    """One request as the server saw it (never the signature); status None when the socket was dropped."""

    method: str
    path: str
    params: dict[str, str]
    status: int | None


class Balance(NamedTuple):
    """One asset's balance, as Decimals."""

    free: Decimal
    locked: Decimal


# --- the exchange: orders, balances, matching ---------------------------------------------------


@dataclass(eq=False)
class _Lock:
    """Funds held by a resting order, shared by the two legs of an OCO."""

    asset: str
    amount: Decimal


@dataclass(eq=False)
class _Trade:
    trade_id: int
    order: _Order
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool

    def fill(self) -> dict[str, Any]:
        return {"price": _s(self.price), "qty": _s(self.qty), "commission": _s(self.commission),
                "commissionAsset": self.commission_asset, "tradeId": self.trade_id}

    def my_trade(self) -> dict[str, Any]:
        return {"symbol": self.order.symbol, "id": self.trade_id, "orderId": self.order.order_id,
                "orderListId": self.order.order_list_id, "price": _s(self.price), "qty": _s(self.qty),
                "quoteQty": _s(self.price * self.qty), "commission": _s(self.commission),
                "commissionAsset": self.commission_asset, "time": self.time_ms,
                "isBuyer": self.order.side == "BUY", "isMaker": self.is_maker, "isBestMatch": True}


@dataclass(eq=False)
class _Order:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    stop_price: Decimal
    time_ms: int
    order_list_id: int = -1
    orig_quote_qty: Decimal = ZERO
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    quote_qty: Decimal = ZERO
    update_ms: int = 0
    working_ms: int = -1  # Binance shows -1 until a conditional order triggers
    triggered: bool = False
    lock: _Lock | None = None
    fills: list[_Trade] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def on_book(self) -> bool:
        return self.status in ON_BOOK_STATUSES

    @property
    def is_conditional(self) -> bool:
        return self.type in CONDITIONAL_TYPES

    def details(self) -> dict[str, Any]:
        """The GET /api/v3/order and openOrders shape."""
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
                "clientOrderId": self.client_order_id, "price": _s(self.price), "origQty": _s(self.quantity),
                "executedQty": _s(self.executed_qty), "cummulativeQuoteQty": _s(self.quote_qty),
                "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
                "stopPrice": _s(self.stop_price), "icebergQty": _s(ZERO), "time": self.time_ms,
                "updateTime": self.update_ms, "isWorking": self.working_ms != -1,
                "workingTime": self.working_ms, "origQuoteOrderQty": _s(self.orig_quote_qty),
                "selfTradePreventionMode": "NONE"}

    def ack(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
                "clientOrderId": self.client_order_id, "transactTime": self.update_ms}

    def result(self) -> dict[str, Any]:
        """The RESULT shape of a new order (also an OCO's orderReports entry)."""
        out = self.ack() | {
            "price": _s(self.price), "origQty": _s(self.quantity), "executedQty": _s(self.executed_qty),
            "origQuoteOrderQty": _s(self.orig_quote_qty), "cummulativeQuoteQty": _s(self.quote_qty),
            "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side}
        if self.is_conditional:
            out["stopPrice"] = _s(self.stop_price)
        return out | {"workingTime": self.working_ms, "selfTradePreventionMode": "NONE"}

    def full(self) -> dict[str, Any]:
        return self.result() | {"fills": [trade.fill() for trade in self.fills]}

    def amended(self, orig_client_id: str) -> dict[str, Any]:
        """The amendedOrder shape of PUT /api/v3/order/amend/keepPriority (its quantity is "qty")."""
        out = {"symbol": self.symbol, "orderId": self.order_id, "orderListId": self.order_list_id,
               "origClientOrderId": orig_client_id, "clientOrderId": self.client_order_id,
               "price": _s(self.price), "qty": _s(self.quantity), "executedQty": _s(self.executed_qty),
               "preventedQty": _s(ZERO), "quoteOrderQty": _s(self.orig_quote_qty),
               "cumulativeQuoteQty": _s(self.quote_qty), "status": self.status,
               "timeInForce": self.time_in_force, "type": self.type, "side": self.side}
        if self.is_conditional:
            out["stopPrice"] = _s(self.stop_price)
        if self.working_ms != -1:
            out["workingTime"] = self.working_ms
        return out | {"selfTradePreventionMode": "NONE"}

    def cancel_report(self, cancel_client_id: str) -> dict[str, Any]:
        """The DELETE /api/v3/order shape: the cancel request's id becomes clientOrderId."""
        out = {"symbol": self.symbol, "origClientOrderId": self.client_order_id, "orderId": self.order_id,
               "orderListId": self.order_list_id, "clientOrderId": cancel_client_id,
               "transactTime": self.update_ms, "price": _s(self.price), "origQty": _s(self.quantity),
               "executedQty": _s(self.executed_qty), "cummulativeQuoteQty": _s(self.quote_qty),
               "status": self.status, "timeInForce": self.time_in_force, "type": self.type, "side": self.side}
        if self.is_conditional:
            out["stopPrice"] = _s(self.stop_price)
        return out | {"selfTradePreventionMode": "NONE"}


@dataclass(eq=False)
class _OrderList:
    order_list_id: int
    list_client_order_id: str
    symbol: str
    legs: list[_Order]
    time_ms: int
    done: bool = False  # an OCO leg was activated (triggered or filled) or the list was cancelled
    contingency_type: str = "OCO"  # or OTO, OTOCO
    working: _Order | None = None  # an OTO's or OTOCO's working order: the others wait for it to fill

    @property
    def pending(self) -> list[_Order]:
        """The orders that go on the book only once the working order has fully filled (all legs of an OCO)."""
        return [leg for leg in self.legs if leg is not self.working]

    def summary(self) -> dict[str, Any]:
        """The GET /api/v3/orderList shape."""
        done = self.done or not any(leg.is_open for leg in self.legs)
        return {"orderListId": self.order_list_id, "contingencyType": self.contingency_type,
                "listStatusType": "ALL_DONE" if done else "EXEC_STARTED",
                "listOrderStatus": "ALL_DONE" if done else "EXECUTING",
                "listClientOrderId": self.list_client_order_id, "transactionTime": self.time_ms,
                "symbol": self.symbol,
                "orders": [{"symbol": leg.symbol, "orderId": leg.order_id, "clientOrderId": leg.client_order_id}
                           for leg in self.legs]}

    def status(self) -> dict[str, Any]:
        """The listStatus shape an amend answers with."""
        summary = self.summary()
        return {key: summary[key] for key in ("orderListId", "contingencyType", "listOrderStatus",
                                              "listClientOrderId", "symbol", "orders")}


@dataclass(frozen=True)
class _Leg:
    type: str
    price: Decimal
    stop_price: Decimal
    time_in_force: str
    client_order_id: str


class _Exchange:
    """Binance spot's rules for one account: validation, filters, balances, matching against a set price."""

    def __init__(self, prices: dict[str, Decimal], commission_rate: Decimal, now_ms: Callable[[], int]) -> None:
        self.lock = threading.RLock()
        self.commission_rate = commission_rate
        self._initial_prices = dict(prices)
        self._now = now_ms
        self.reset()

    def reset(self) -> None:
        self.info = _exchange_info_2021()
        self.symbols = {entry["symbol"]: entry for entry in self.info["symbols"]}
        self.prices = dict(self._initial_prices)
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}
        self.orders: list[_Order] = []
        self.lists: list[_OrderList] = []
        self.trades: list[_Trade] = []
        self.candles: dict[tuple[str, str], list[list[Any]]] = {}
        # Candles made at request time from the server's clock: (how many, the row for an open time).
        self.kline_series: dict[tuple[str, str], tuple[int, Callable[[int], list[Any]]]] = {}
        self.market_fill_caps: dict[str, list[Decimal]] = {}  # per symbol, the caps of the next MARKET orders
        self._order_ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._execution_ids = itertools.count(1)

    # --- parameters ----------------------------------------------------------------------

    def _symbol(self, params: dict[str, str], required: bool = True) -> dict[str, Any] | None:
        name = params.get("symbol")
        if not name:
            if required:
                raise _mandatory("symbol")
            return None
        if name not in self.symbols:
            raise ApiError(-1121, "Invalid symbol.")
        return self.symbols[name]

    @staticmethod
    def _decimal(params: dict[str, str], name: str, required: bool = False) -> Decimal:
        raw = params.get(name)
        if raw is None or raw == "":
            if required:
                raise _mandatory(name)
            return ZERO
        if not NUMBER_PATTERN.match(raw):
            raise _illegal(name, r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
        value = Decimal(raw)
        if value != 0 and -value.normalize().as_tuple().exponent > 8:
            raise ApiError(-1111, "Precision is over the maximum defined for this asset.")
        return value

    @staticmethod
    def _integer(params: dict[str, str], name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        if not re.fullmatch(r"-?[0-9]{1,20}", raw):
            raise _illegal(name, "^[0-9]{1,20}$")
        return int(raw)

    @staticmethod
    def _client_id(params: dict[str, str], name: str) -> str:
        value = params.get(name) or _random_id()
        if not CLIENT_ID_PATTERN.match(value):
            raise _illegal(name, r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
        return value

    @staticmethod
    def _enum(params: dict[str, str], name: str, allowed: tuple[str, ...], error: ApiError) -> str:
        value = params.get(name)
        if not value:
            raise _mandatory(name)
        if value not in allowed:
            raise error
        return value

    # --- public market data -----------------------------------------------------------------

    def ping(self, params: dict[str, str]) -> dict[str, Any]:
        return {}

    def time(self, params: dict[str, str]) -> dict[str, Any]:
        return {"serverTime": self._now()}

    def exchange_info(self, params: dict[str, str]) -> dict[str, Any]:
        selected = [self._symbol(params)] if params.get("symbol") else self.info["symbols"]
        return self.info | {"serverTime": self._now(), "symbols": selected}

    def ticker_price(self, params: dict[str, str]) -> Any:
        info = self._symbol(params, required=False)
        names = [info["symbol"]] if info else list(self.symbols)
        tickers = [{"symbol": name, "price": _s(self.prices[name])} for name in names]
        return tickers[0] if info else tickers

    def klines(self, params: dict[str, str]) -> list[list[Any]]:
        info = self._symbol(params)
        interval = params.get("interval")
        if not interval:
            raise _mandatory("interval")
        if interval not in KLINE_INTERVALS_MS:
            raise ApiError(-1120, "Invalid interval.")
        limit = min(self._integer(params, "limit") or 500, 1000)
        start, end = self._integer(params, "startTime"), self._integer(params, "endTime")
        rows = [row for row in self._kline_rows(info["symbol"], interval)
                if (start is None or row[0] >= start) and (end is None or row[0] <= end)]
        return rows[:limit] if start is not None else rows[-limit:]

    def _kline_rows(self, symbol: str, interval: str) -> list[list[Any]]:
        """The candles set for (symbol, interval), or a series ending with the candle forming now, as Binance's does."""
        if (symbol, interval) not in self.kline_series:
            return self.candles.get((symbol, interval), [])
        count, row_at = self.kline_series[(symbol, interval)]
        step = KLINE_INTERVALS_MS[interval]
        forming = self._now() // step * step
        return [kline_row(row_at(forming - back * step), step) for back in range(count - 1, -1, -1)]

    # --- account ---------------------------------------------------------------------------

    def account(self, params: dict[str, str]) -> dict[str, Any]:
        assets = {entry[key] for entry in self.info["symbols"] for key in ("baseAsset", "quoteAsset")}
        balances = [{"asset": asset, "free": _s(self.free.get(asset, ZERO)),
                     "locked": _s(self.locked.get(asset, ZERO))}
                    for asset in sorted(assets | set(self.free) | set(self.locked))]
        rate, bips = _s(self.commission_rate), int(self.commission_rate * 10000)
        return {"makerCommission": bips, "takerCommission": bips, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": _s(ZERO), "seller": _s(ZERO)},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self._now(),
                "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 354937868}

    def my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        info = self._symbol(params)
        order_id, from_id = self._integer(params, "orderId"), self._integer(params, "fromId")
        limit = min(self._integer(params, "limit") or 500, 1000)
        trades = [t for t in self.trades if t.order.symbol == info["symbol"]
                  and (order_id is None or t.order.order_id == order_id)
                  and (from_id is None or t.trade_id >= from_id)]
        return [t.my_trade() for t in trades[:limit]]

    def _move(self, asset: str, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + free
        self.locked[asset] = self.locked.get(asset, ZERO) + locked

    def _reserve(self, asset: str, amount: Decimal) -> _Lock:
        if self.free.get(asset, ZERO) < amount:
            raise ApiError(-2010, INSUFFICIENT_BALANCE)
        self._move(asset, free=-amount, locked=amount)
        return _Lock(asset, amount)

    def _release(self, lock: _Lock | None) -> None:
        if lock is not None and lock.amount:
            self._move(lock.asset, free=lock.amount, locked=-lock.amount)
            lock.amount = ZERO

    # --- new orders ------------------------------------------------------------------------

    def new_order(self, params: dict[str, str], *, test: bool = False) -> dict[str, Any]:
        info = self._symbol(params)
        symbol = info["symbol"]
        side = self._enum(params, "side", ("BUY", "SELL"), ApiError(-1117, "Invalid side."))
        order_type = self._enum(params, "type", ORDER_TYPES, ApiError(-1116, "Invalid orderType."))
        if order_type not in info["orderTypes"]:
            raise ApiError(-1116, "Invalid orderType.")
        self._check_sent_when_not_required(params, order_type)
        time_in_force = "GTC"
        if order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            time_in_force = self._enum(params, "timeInForce", TIME_IN_FORCE, ApiError(-1115, "Invalid timeInForce."))
        market = self.prices[symbol]
        quantity, quote_order_qty = self._decimal(params, "quantity"), self._decimal(params, "quoteOrderQty")
        if order_type == "MARKET" and not quantity and not quote_order_qty:
            raise _one_of("quantity", "quoteOrderQty")
        if order_type != "MARKET" and not quantity:
            raise _mandatory("quantity")
        if quote_order_qty:  # buy or sell for this much quote; the quantity is rounded down to the lot step
            step = Decimal(self._filter(info, "LOT_SIZE")["stepSize"])
            quantity = (quote_order_qty / market).quantize(step, rounding=ROUND_DOWN)
        price = self._decimal(params, "price", required=order_type not in MARKET_LIKE_TYPES)
        stop_price = self._decimal(params, "stopPrice", required=order_type in CONDITIONAL_TYPES)
        client_id = self._client_id(params, "newClientOrderId")
        response_type = self._response_type(params, "FULL" if order_type in ("MARKET", "LIMIT") else "ACK")

        leg = _Leg(order_type, price, stop_price, time_in_force, client_id)
        self._check_filters(info, leg, quantity, market, new_orders=1, new_algo=int(leg.type in CONDITIONAL_TYPES))
        self._check_not_immediate(side, leg, market)
        if test:
            return {}
        self._check_not_duplicate([client_id], None)
        now = self._now()
        order = _Order(next(self._order_ids), symbol, client_id, side, order_type, time_in_force, quantity,
                       price, stop_price, now, orig_quote_qty=quote_order_qty, update_ms=now)
        if order_type == "MARKET":
            self._execute_market(order, info, market)
        else:
            order.lock = self._reserve(*self._funds_needed(info, side, quantity, price or stop_price))
            self._rest(order, market)
        self.orders.append(order)
        return {"ACK": order.ack, "RESULT": order.result, "FULL": order.full}[response_type]()

    def test_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self.new_order(params, test=True)

    @staticmethod
    def _response_type(params: dict[str, str], default: str) -> str:
        response_type = params.get("newOrderRespType") or default
        if response_type not in RESPONSE_TYPES:
            raise _illegal("newOrderRespType", "ACK, RESULT, FULL")
        return response_type

    @staticmethod
    def _check_sent_when_not_required(params: dict[str, str], order_type: str, prefix: str = "") -> None:
        """Refuse a parameter order_type does not take (-1106); prefix names an order list's order (`pending`)."""
        not_required = {
            "MARKET": ("price", "stopPrice", "timeInForce"), "LIMIT": ("stopPrice", "quoteOrderQty"),
            "LIMIT_MAKER": ("stopPrice", "timeInForce", "quoteOrderQty"),
            "STOP_LOSS": ("price", "timeInForce", "quoteOrderQty"),
            "TAKE_PROFIT": ("price", "timeInForce", "quoteOrderQty"),
        }.get(order_type, ("quoteOrderQty",))
        for name in not_required:
            if prefix:  # an order list's orders take no quoteOrderQty at all; the rest carry the order's prefix
                if name == "quoteOrderQty":
                    continue
                name = prefix + name[0].upper() + name[1:]
            if params.get(name):
                raise ApiError(-1106, f"Parameter '{name}' sent when not required.")

    @staticmethod
    def _filter(info: dict[str, Any], kind: str) -> dict[str, Any]:
        return next(f for f in info["filters"] if f["filterType"] == kind)

    def _funds_needed(self, info: dict[str, Any], side: str, quantity: Decimal, price: Decimal) -> tuple[str, Decimal]:
        if side == "SELL":
            return info["baseAsset"], quantity
        return info["quoteAsset"], quantity * price

    def _check_filters(self, info: dict[str, Any], leg: _Leg, quantity: Decimal, market: Decimal,
                       *, new_orders: int, new_algo: int) -> None:
        """Apply the symbol's filters in exchangeInfo order; the first failure names the filter (-1013)."""
        is_market = leg.type in MARKET_LIKE_TYPES
        notional = quantity * (market if leg.type == "MARKET" else (leg.price or leg.stop_price))
        open_orders = [o for o in self.orders if o.symbol == info["symbol"] and o.is_open]
        for f in info["filters"]:
            kind = f["filterType"]
            if kind == "PRICE_FILTER":
                ok = all(_price_fits(f, p) for p in (leg.price, leg.stop_price) if p)
            elif kind == "PERCENT_PRICE":
                ok = not leg.price or (market * Decimal(f["multiplierDown"]) <= leg.price
                                       <= market * Decimal(f["multiplierUp"]))
            elif kind == "LOT_SIZE":
                ok = _lot_fits(f, quantity)
            elif kind == "MARKET_LOT_SIZE":
                ok = not is_market or _lot_fits(f, quantity)
            elif kind == "MIN_NOTIONAL":
                ok = (is_market and not f["applyToMarket"]) or notional >= Decimal(f["minNotional"])
            elif kind == "NOTIONAL":
                ok = ((is_market and not f["applyMinToMarket"]) or notional >= Decimal(f["minNotional"])) and (
                    (is_market and not f["applyMaxToMarket"]) or notional <= Decimal(f["maxNotional"]))
            elif kind == "MAX_NUM_ORDERS":
                ok = len(open_orders) + new_orders <= f["maxNumOrders"]
            elif kind == "MAX_NUM_ALGO_ORDERS":
                algo = sum(o.is_conditional for o in open_orders)
                ok = not new_algo or algo + new_algo <= f["maxNumAlgoOrders"]
            else:
                ok = True
            if not ok:
                raise ApiError(-1013, f"Filter failure: {kind}")

    @staticmethod
    def _check_not_immediate(side: str, leg: _Leg, market: Decimal) -> None:
        if leg.type in CONDITIONAL_TYPES and _stop_reached(side, leg.type, leg.stop_price, market):
            raise ApiError(-2010, "Order would trigger immediately.")
        if leg.type == "LIMIT_MAKER" and _limit_reached(side, leg.price, market):
            raise ApiError(-2010, "Order would immediately match and take.")

    def _check_not_duplicate(self, client_ids: list[str], list_client_id: str | None) -> None:
        open_ids = {o.client_order_id for o in self.orders if o.is_open}
        open_lists = {lst.list_client_order_id for lst in self.lists if any(leg.is_open for leg in lst.legs)}
        if open_ids.intersection(client_ids) or list_client_id in open_lists:
            raise ApiError(-2010, DUPLICATE_ORDER)

    def _execute_market(self, order: _Order, info: dict[str, Any], market: Decimal) -> None:
        asset, needed = self._funds_needed(info, order.side, order.quantity, market)
        if self.free.get(asset, ZERO) < needed:
            raise ApiError(-2010, INSUFFICIENT_BALANCE)
        order.working_ms = order.time_ms
        caps = self.market_fill_caps.get(order.symbol) or [None]
        cap = caps.pop(0)
        filled = order.quantity if cap is None else min(order.quantity, cap)
        if filled:
            self._fill(order, filled, market, is_maker=False)
        if filled < order.quantity:  # the book ran out: Binance expires the rest of a market order
            order.status = "EXPIRED"

    def _rest(self, order: _Order, market: Decimal) -> None:
        """Put a funded non-market order on the book, filling it at once if it is marketable."""
        if order.is_conditional:
            return
        order.working_ms = order.time_ms
        if _limit_reached(order.side, order.price, market):
            self._fill(order, order.quantity, market, is_maker=False)
        elif order.time_in_force in ("IOC", "FOK"):
            self._close(order, "EXPIRED")

    # --- OCO -------------------------------------------------------------------------------

    def new_oco(self, params: dict[str, str]) -> dict[str, Any]:
        info = self._symbol(params)
        symbol = info["symbol"]
        side = self._enum(params, "side", ("BUY", "SELL"), ApiError(-1117, "Invalid side."))
        quantity = self._decimal(params, "quantity", required=True)
        list_client_id = self._client_id(params, "listClientOrderId")
        limit_leg, stop_leg = self._oco_pair(side, self._oco_leg(params, "above"), self._oco_leg(params, "below"))
        market = self.prices[symbol]
        if not (_limit_above(side, limit_leg.price, market) and _limit_above(side, market, stop_leg.stop_price)):
            raise ApiError(-2010, "The relationship of the prices for the orders is not correct.")
        for leg in (stop_leg, limit_leg):
            self._check_filters(info, leg, quantity, market, new_orders=2, new_algo=1)
        self._check_not_duplicate([stop_leg.client_order_id, limit_leg.client_order_id], list_client_id)
        highest = max(limit_leg.price, stop_leg.price or stop_leg.stop_price)
        lock = self._reserve(*self._funds_needed(info, side, quantity, highest))
        now = self._now()
        order_list = _OrderList(next(self._list_ids), list_client_id, symbol, [], now)
        for leg in (stop_leg, limit_leg):
            order = _Order(next(self._order_ids), symbol, leg.client_order_id, side, leg.type, leg.time_in_force,
                           quantity, leg.price, leg.stop_price, now, order_list_id=order_list.order_list_id,
                           update_ms=now, working_ms=-1 if leg.type in CONDITIONAL_TYPES else now, lock=lock)
            order_list.legs.append(order)
            self.orders.append(order)
        self.lists.append(order_list)
        return order_list.summary() | {"orderReports": [leg.result() for leg in order_list.legs]}

    @staticmethod
    def _oco_pair(side: str, above: _Leg, below: _Leg) -> tuple[_Leg, _Leg]:
        """Return an OCO's (take-profit, stop) legs: a SELL takes profit above and stops below; a BUY the mirror."""
        limit_leg, stop_leg = (above, below) if side == "SELL" else (below, above)
        if limit_leg.type != "LIMIT_MAKER" or stop_leg.type == "LIMIT_MAKER":
            raise ApiError(-1158, "Order type not supported in OCO.")
        return limit_leg, stop_leg

    def _oco_leg(self, params: dict[str, str], prefix: str) -> _Leg:
        order_type = params.get(f"{prefix}Type")
        if not order_type:
            raise _mandatory(f"{prefix}Type")
        if order_type not in OCO_LEG_TYPES:
            raise ApiError(-1158, "Order type not supported in OCO.")
        time_in_force = "GTC"
        if order_type == "STOP_LOSS_LIMIT":
            time_in_force = self._enum(params, f"{prefix}TimeInForce", TIME_IN_FORCE,
                                       ApiError(-1115, "Invalid timeInForce."))
        return _Leg(order_type,
                    self._decimal(params, f"{prefix}Price", required=order_type != "STOP_LOSS"),
                    self._decimal(params, f"{prefix}StopPrice", required=order_type != "LIMIT_MAKER"),
                    time_in_force, self._client_id(params, f"{prefix}ClientOrderId"))

    # --- OTO and OTOCO: a working order whose fill places the pending order(s) ---------------

    def new_oto(self, params: dict[str, str]) -> dict[str, Any]:
        """POST /api/v3/orderList/oto: a working LIMIT (or LIMIT_MAKER) and one pending order of any type."""
        info, working, working_qty = self._working_order(params)
        pending_side, pending_qty = self._pending_side_and_quantity(params)
        pending = self._pending_leg(params)
        self._check_list_filters(info, working, working_qty, [pending], pending_qty)
        return self._place_list(info, "OTO", params, working, working_qty, pending_side, pending_qty, [pending])

    def new_otoco(self, params: dict[str, str]) -> dict[str, Any]:
        """POST /api/v3/orderList/otoco: a working order and a pending OCO pair (pending above and below)."""
        info, working, working_qty = self._working_order(params)
        pending_side, pending_qty = self._pending_side_and_quantity(params)
        limit_leg, stop_leg = self._oco_pair(pending_side, self._oco_leg(params, "pendingAbove"),
                                             self._oco_leg(params, "pendingBelow"))
        # The pair is checked against itself, not the market: it goes on the book only after the working order filled.
        if not _limit_above(pending_side, limit_leg.price, stop_leg.stop_price):
            raise ApiError(-2010, "The relationship of the prices for the orders is not correct.")
        self._check_list_filters(info, working, working_qty, [stop_leg, limit_leg], pending_qty)
        return self._place_list(info, "OTOCO", params, working, working_qty, pending_side, pending_qty,
                                [stop_leg, limit_leg])

    def _working_order(self, params: dict[str, str]) -> tuple[dict[str, Any], _Leg, Decimal]:
        info = self._symbol(params)
        self._response_type(params, "ACK")
        order_type = self._enum(params, "workingType", WORKING_TYPES, ApiError(-1116, "Invalid orderType."))
        self._check_sent_when_not_required(params, order_type, "working")
        self._enum(params, "workingSide", ("BUY", "SELL"), ApiError(-1117, "Invalid side."))
        time_in_force = "GTC"
        if order_type == "LIMIT":
            time_in_force = self._enum(params, "workingTimeInForce", TIME_IN_FORCE,
                                       ApiError(-1115, "Invalid timeInForce."))
        price = self._decimal(params, "workingPrice", required=True)
        quantity = self._decimal(params, "workingQuantity", required=True)
        return info, _Leg(order_type, price, ZERO, time_in_force, self._client_id(params, "workingClientOrderId")), (
            quantity)

    def _pending_side_and_quantity(self, params: dict[str, str]) -> tuple[str, Decimal]:
        side = self._enum(params, "pendingSide", ("BUY", "SELL"), ApiError(-1117, "Invalid side."))
        return side, self._decimal(params, "pendingQuantity", required=True)

    def _pending_leg(self, params: dict[str, str]) -> _Leg:
        """An OTO's pending order: any type but a MARKET by quoteOrderQty (which a list cannot send)."""
        order_type = self._enum(params, "pendingType", ORDER_TYPES, ApiError(-1116, "Invalid orderType."))
        self._check_sent_when_not_required(params, order_type, "pending")
        time_in_force = "GTC"
        if order_type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            time_in_force = self._enum(params, "pendingTimeInForce", TIME_IN_FORCE,
                                       ApiError(-1115, "Invalid timeInForce."))
        return _Leg(order_type, self._decimal(params, "pendingPrice", required=order_type not in MARKET_LIKE_TYPES),
                    self._decimal(params, "pendingStopPrice", required=order_type in CONDITIONAL_TYPES),
                    time_in_force, self._client_id(params, "pendingClientOrderId"))

    def _check_list_filters(self, info: dict[str, Any], working: _Leg, working_qty: Decimal, pending: list[_Leg],
                            pending_qty: Decimal) -> None:
        """Each order of the list meets the filters; all of them count against MAX_NUM_ORDERS at once."""
        market = self.prices[info["symbol"]]
        new_orders, new_algo = 1 + len(pending), sum(leg.type in CONDITIONAL_TYPES for leg in pending)
        self._check_filters(info, working, working_qty, market, new_orders=new_orders, new_algo=new_algo)
        for leg in pending:
            self._check_filters(info, leg, pending_qty, market, new_orders=new_orders, new_algo=new_algo)

    def _place_list(self, info: dict[str, Any], contingency: str, params: dict[str, str], working_leg: _Leg,
                    working_qty: Decimal, pending_side: str, pending_qty: Decimal,
                    pending_legs: list[_Leg]) -> dict[str, Any]:
        """Reserve the working order's funds and rest it; the pending orders wait (PENDING_NEW), locking nothing."""
        symbol, side, market = info["symbol"], params["workingSide"], self.prices[info["symbol"]]
        list_client_id = self._client_id(params, "listClientOrderId")
        self._check_not_immediate(side, working_leg, market)
        self._check_not_duplicate([working_leg.client_order_id, *(leg.client_order_id for leg in pending_legs)],
                                  list_client_id)
        lock = self._reserve(*self._funds_needed(info, side, working_qty, working_leg.price))
        now = self._now()
        order_list = _OrderList(next(self._list_ids), list_client_id, symbol, [], now, contingency_type=contingency)

        def order(leg: _Leg, order_side: str, quantity: Decimal, status: str) -> _Order:
            return _Order(next(self._order_ids), symbol, leg.client_order_id, order_side, leg.type, leg.time_in_force,
                          quantity, leg.price, leg.stop_price, now, order_list_id=order_list.order_list_id,
                          status=status, update_ms=now)

        working = order(working_leg, side, working_qty, "NEW")
        working.lock = lock
        pending = [order(leg, pending_side, pending_qty, "PENDING_NEW") for leg in pending_legs]
        order_list.legs, order_list.working = [working, *pending], working
        self.orders += order_list.legs
        self.lists.append(order_list)
        # Binance answers with the pending orders as placed, PENDING_NEW even when the working order filled at once.
        pending_reports = [leg.result() for leg in pending]
        self._rest(working, market)
        return order_list.summary() | {"orderReports": [working.result(), *pending_reports]}

    def _place_pending(self, order_list: _OrderList) -> None:
        """The working order has fully filled: put the pending orders on the book, locking their funds once.

        Funds the account no longer has (the fill's commission, a withdrawal) expire them instead.
        """
        pending = [leg for leg in order_list.pending if leg.status == "PENDING_NEW"]
        if not pending:
            return
        symbol, side, quantity = order_list.symbol, pending[0].side, pending[0].quantity
        market = self.prices[symbol]
        highest = max(leg.price or leg.stop_price or market for leg in pending)
        asset, needed = self._funds_needed(self.symbols[symbol], side, quantity, highest)
        if self.free.get(asset, ZERO) < needed:
            order_list.done = True
            for leg in pending:
                self._close(leg, "EXPIRED")
            return
        lock, now = self._reserve(asset, needed), self._now()
        for leg in pending:
            leg.status, leg.update_ms, leg.lock = "NEW", now, lock
            if not leg.is_conditional:
                leg.working_ms = now
        for leg in pending:
            if leg.on_book:  # an OCO sibling may have expired it already
                self._match(leg, market)

    def _list(self, params: dict[str, str], id_name: str, client_id_name: str) -> _OrderList | None:
        list_id, client_id = self._integer(params, id_name), params.get(client_id_name)
        for order_list in reversed(self.lists):
            if list_id is not None and order_list.order_list_id == list_id:
                return order_list
            if list_id is None and order_list.list_client_order_id == client_id:
                return order_list
        return None

    def query_order_list(self, params: dict[str, str]) -> dict[str, Any]:
        if not params.get("orderListId") and not params.get("origClientOrderId"):
            raise ApiError(-1128, "Combination of optional parameters invalid. "
                                  "Recommendation: 'orderListId' should also be sent.")
        order_list = self._list(params, "orderListId", "origClientOrderId")
        if order_list is None:
            raise ApiError(-2013, "Order list does not exist.")
        return order_list.summary()

    def cancel_order_list(self, params: dict[str, str]) -> dict[str, Any]:
        self._symbol(params)
        if not params.get("orderListId") and not params.get("listClientOrderId"):
            raise _one_of("listClientOrderId", "orderListId")
        order_list = self._list(params, "orderListId", "listClientOrderId")
        if order_list is None or not any(leg.is_open for leg in order_list.legs):
            raise ApiError(-2011, "Order list does not exist.")
        self._cancel_list(order_list)
        cancel_id = params.get("newClientOrderId") or _random_id()
        return order_list.summary() | {"orderReports": [leg.cancel_report(cancel_id) for leg in order_list.legs]}

    def _cancel_list(self, order_list: _OrderList) -> None:
        order_list.done = True
        for leg in order_list.legs:
            if leg.is_open:
                self._close(leg, "CANCELED")

    # --- amending and replacing ------------------------------------------------------------

    def amend_keep_priority(self, params: dict[str, str]) -> dict[str, Any]:
        """PUT /api/v3/order/amend/keepPriority: reduce an open order's quantity in place, keeping its time priority.

        The two legs of an OCO always have the same quantity, so amending either amends both; only the
        amended order takes newClientOrderId (a random one when none is sent, as Binance does). Engine
        refusals are -2038 ORDER_AMEND_REJECTED; a quantity that breaks a filter is -1013 and changes nothing.
        """
        info = self._symbol(params)
        new_qty = self._decimal(params, "newQty", required=True)
        if not new_qty:
            raise _mandatory("newQty")
        order = self._find_order(params, ApiError(-2038, UNKNOWN_ORDER))
        if not order.is_open:
            raise ApiError(-2038, UNKNOWN_ORDER)
        if new_qty > order.quantity:
            raise ApiError(-2038, "Order amend (quantity increase) is not supported.")
        if new_qty == order.quantity:
            raise ApiError(-2038, "The requested action would change no state; rejecting")
        order_list = self._list_of(order)
        legs = [leg for leg in (order_list.legs if order_list else [order]) if leg.is_open]
        market = self.prices[info["symbol"]]
        for leg in legs:
            shape = _Leg(leg.type, leg.price, leg.stop_price, leg.time_in_force, leg.client_order_id)
            self._check_filters(info, shape, new_qty, market, new_orders=0, new_algo=0)
        new_client_id = self._client_id(params, "newClientOrderId")
        if new_client_id != order.client_order_id:
            self._check_not_duplicate([new_client_id], None)
        now = self._now()
        lock = order.lock
        if lock is not None and lock.amount and order.quantity > order.executed_qty:
            # What the lock still holds covers the unfilled rest; free the share of it that is no longer asked for.
            freed = (lock.amount * (order.quantity - new_qty) / (order.quantity - order.executed_qty)).quantize(
                EIGHT_PLACES, rounding=ROUND_DOWN)
            self._move(lock.asset, free=freed, locked=-freed)
            lock.amount -= freed
        for leg in legs:
            leg.quantity, leg.update_ms = new_qty, now
            if leg.executed_qty >= new_qty:  # nothing left to trade: the order is done
                leg.status = "FILLED"
                self._activate(leg)
        order.client_order_id = new_client_id
        answer = {"transactTime": now, "executionId": next(self._execution_ids), "amendedOrder": order.amended(
            params.get("origClientOrderId") or order.client_order_id)}
        if order_list is not None:
            answer["listStatus"] = order_list.status()
        return answer

    def cancel_replace(self, params: dict[str, str]) -> dict[str, Any]:
        """POST /api/v3/order/cancelReplace: cancel an order and place a new one on the same symbol, in one request.

        The new order's parameters and filters are checked first (a failure there is a plain error and
        nothing happens). Then the cancel: an unknown or closed order, or one cancelRestrictions excludes,
        fails with -2011; cancelling a leg of an OCO cancels the whole list, as DELETE /api/v3/order does.
        STOP_ON_FAILURE does not attempt the new order after a failed cancel (-2022, HTTP 400);
        ALLOW_FAILURE does. One of the two failing is -2021 (HTTP 409), both failing -2022 (HTTP 400).
        """
        self._symbol(params)
        mode = self._enum(params, "cancelReplaceMode", CANCEL_REPLACE_MODES, _mandatory("cancelReplaceMode"))
        restrictions = params.get("cancelRestrictions")
        if restrictions and restrictions not in CANCEL_RESTRICTIONS:
            raise ApiError(-1145, "Invalid cancelRestrictions")
        if not params.get("cancelOrderId") and not params.get("cancelOrigClientOrderId"):
            raise _one_of("cancelOrigClientOrderId", "cancelOrderId")
        new_params = {name: value for name, value in params.items() if name not in CANCEL_REPLACE_OWN}
        try:
            self.new_order(new_params, test=True)
        except ApiError as error:
            if error.code != -2010:  # the matching engine's refusals come after the cancel, in the answer's data
                raise
        cancel_response = self._cancel_for_replace(params, restrictions)
        cancelled = "code" not in cancel_response
        if not cancelled and mode == "STOP_ON_FAILURE":
            raise ApiError(-2022, "Order cancel-replace failed.", 400, {
                "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                "cancelResponse": cancel_response, "newOrderResponse": None})
        try:
            new_response, placed = self.new_order(new_params), True
        except ApiError as error:
            new_response, placed = {"code": error.code, "msg": error.msg}, False
        data = {"cancelResult": "SUCCESS" if cancelled else "FAILURE",
                "newOrderResult": "SUCCESS" if placed else "FAILURE",
                "cancelResponse": cancel_response, "newOrderResponse": new_response}
        if cancelled and placed:
            return data
        if cancelled or placed:
            raise ApiError(-2021, "Order cancel-replace partially failed.", 409, data)
        raise ApiError(-2022, "Order cancel-replace failed.", 400, data)

    def _cancel_for_replace(self, params: dict[str, str], restrictions: str | None) -> dict[str, Any]:
        """Cancel the order cancelReplace names; return its cancel report, or the error document of a failed cancel."""
        lookup = {"symbol": params["symbol"], "orderId": params.get("cancelOrderId", ""),
                  "origClientOrderId": params.get("cancelOrigClientOrderId", "")}
        try:
            order = self._find_order(lookup, ApiError(-2011, UNKNOWN_ORDER))
        except ApiError as error:
            return {"code": error.code, "msg": error.msg}
        if not order.is_open:
            return {"code": -2011, "msg": UNKNOWN_ORDER}
        if (restrictions == "ONLY_NEW" and order.status != "NEW") or (
                restrictions == "ONLY_PARTIALLY_FILLED" and order.status != "PARTIALLY_FILLED"):
            return {"code": -2011, "msg": CANCEL_RESTRICTED}
        order_list = self._list_of(order)
        if order_list is not None:
            self._cancel_list(order_list)
        else:
            self._close(order, "CANCELED")
        return order.cancel_report(params.get("cancelNewClientOrderId") or _random_id())

    def _list_of(self, order: _Order) -> _OrderList | None:
        if order.order_list_id == -1:
            return None
        return next(lst for lst in self.lists if lst.order_list_id == order.order_list_id)

    # --- existing orders -------------------------------------------------------------------

    def _find_order(self, params: dict[str, str], missing: ApiError) -> _Order:
        symbol = self._symbol(params)["symbol"]
        order_id, client_id = self._integer(params, "orderId"), params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise _one_of("origClientOrderId", "orderId")
        for order in reversed(self.orders):  # a reused client id names its latest order
            if order.symbol == symbol and (order_id is None or order.order_id == order_id) and (
                    not client_id or order.client_order_id == client_id):
                return order
        raise missing

    def query_order(self, params: dict[str, str]) -> dict[str, Any]:
        return self._find_order(params, ApiError(-2013, "Order does not exist.")).details()

    def cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        unknown = ApiError(-2011, "Unknown order sent.")
        order = self._find_order(params, unknown)
        if not order.is_open:
            raise unknown
        if order.order_list_id != -1:  # cancelling one leg cancels the whole OCO
            self._cancel_list(next(lst for lst in self.lists if lst.order_list_id == order.order_list_id))
        else:
            self._close(order, "CANCELED")
        return order.cancel_report(params.get("newClientOrderId") or _random_id())

    def open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        info = self._symbol(params, required=False)
        return [o.details() for o in self.orders if o.is_open and (info is None or o.symbol == info["symbol"])]

    def _close(self, order: _Order, status: str) -> None:
        """End an order; the funds it locked go back once no open order shares them.

        A working order that ends unfilled (cancelled, expired) takes its pending orders with it.
        """
        order.status, order.update_ms = status, self._now()
        if order.lock is not None and not any(o.is_open and o.lock is order.lock for o in self.orders):
            self._release(order.lock)
        order_list = self._list_of(order)
        if order_list is not None and order is order_list.working:
            order_list.done = True
            for leg in order_list.pending:
                if leg.is_open:
                    self._close(leg, status)

    def _list_of(self, order: _Order) -> _OrderList | None:
        if order.order_list_id == -1:
            return None
        return next(lst for lst in self.lists if lst.order_list_id == order.order_list_id)

    # --- matching --------------------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the market: trigger stops, fill limits that the price reached, expire OCO siblings."""
        self.prices[symbol] = price
        for order in [o for o in self.orders if o.symbol == symbol and o.on_book]:
            if order.on_book:  # not expired by its OCO sibling earlier in this pass
                self._match(order, price)

    def _match(self, order: _Order, price: Decimal) -> None:
        """Trade an order on the book against the market: trigger a stop the price reached, fill a limit it reached."""
        rest = order.quantity - order.executed_qty
        if order.type == "MARKET":  # an OTO's pending market order, just placed
            self._fill(order, rest, price, is_maker=False)
        elif order.is_conditional and not order.triggered:
            if _stop_reached(order.side, order.type, order.stop_price, price):
                self._trigger(order)
                if order.type in MARKET_LIKE_TYPES or _limit_reached(order.side, order.price, price):
                    self._fill(order, rest, price, is_maker=False)
        elif _limit_reached(order.side, order.price, price):
            # a resting limit order is hit by the market at its own price
            self._fill(order, rest, order.price, is_maker=True)

    def _trigger(self, order: _Order) -> None:
        order.triggered, order.working_ms = True, self._now()
        self._activate(order)

    def _activate(self, order: _Order) -> None:
        """An order of a list traded or triggered.

        A working order that has fully filled places the pending orders; an OCO leg (also an OTOCO's
        pending pair) expires the other leg and ends the list.
        """
        order_list = self._list_of(order)
        if order_list is None:
            return
        if order is order_list.working:
            if order.status == "FILLED":
                self._place_pending(order_list)
            return
        order_list.done = True
        for leg in order_list.pending:
            if leg is not order and leg.is_open:
                self._close(leg, "EXPIRED")

    def _unlock(self, order: _Order, qty: Decimal) -> None:
        """Free the share of the order's locked funds that a trade of qty uses (all that is left on its last trade)."""
        lock = order.lock
        if lock is None or not lock.amount:
            return
        rest = order.quantity - order.executed_qty
        share = lock.amount if qty >= rest else (lock.amount * qty / rest).quantize(EIGHT_PLACES, rounding=ROUND_DOWN)
        self._move(lock.asset, free=share, locked=-share)
        lock.amount -= share

    def _fill(self, order: _Order, qty: Decimal, price: Decimal, *, is_maker: bool) -> None:
        """Trade qty at price: settle both assets, charge commission in the asset received."""
        base, quote = self.symbols[order.symbol]["baseAsset"], self.symbols[order.symbol]["quoteAsset"]
        self._unlock(order, qty)
        quote_amount = qty * price
        if order.side == "BUY":
            commission, asset = (qty * self.commission_rate).quantize(EIGHT_PLACES), base
            self._move(quote, free=-quote_amount)
            self._move(base, free=qty - commission)
        else:
            commission, asset = (quote_amount * self.commission_rate).quantize(EIGHT_PLACES), quote
            self._move(base, free=-qty)
            self._move(quote, free=quote_amount - commission)
        trade = _Trade(next(self._trade_ids), order, price, qty, commission, asset, self._now(), is_maker)
        self.trades.append(trade)
        order.fills.append(trade)
        order.executed_qty += qty
        order.quote_qty += quote_amount
        order.status = "FILLED" if order.executed_qty == order.quantity else "PARTIALLY_FILLED"
        order.update_ms = trade.time_ms
        self._activate(order)


def kline_row(row: list[Any], step: int) -> list[Any]:
    """Return Binance's 12-field kline row for a short [open_time_ms, open, high, low, close, volume] one."""
    if len(row) >= 12:
        return list(row)

    def text(value: Any) -> str:
        return _s(Decimal(str(value)))

    return [int(row[0]), *map(text, row[1:6]), int(row[0]) + step - 1, text(0), 0, text(0), text(0), "0"]


def _price_fits(f: dict[str, Any], price: Decimal) -> bool:
    low, high, tick = Decimal(f["minPrice"]), Decimal(f["maxPrice"]), Decimal(f["tickSize"])
    return (not low or price >= low) and (not high or price <= high) and (not tick or (price - low) % tick == 0)


def _lot_fits(f: dict[str, Any], qty: Decimal) -> bool:
    low, high, step = Decimal(f["minQty"]), Decimal(f["maxQty"]), Decimal(f["stepSize"])
    return qty >= low and (not high or qty <= high) and (not step or (qty - low) % step == 0)


def _limit_above(side: str, higher: Decimal, lower: Decimal) -> bool:
    """For a SELL OCO prices must rise from stop to limit; for a BUY they fall."""
    return higher > lower if side == "SELL" else higher < lower


def _limit_reached(side: str, limit: Decimal, market: Decimal) -> bool:
    return market >= limit if side == "SELL" else market <= limit


def _stop_reached(side: str, order_type: str, stop: Decimal, market: Decimal) -> bool:
    # A SELL stop-loss and a BUY take-profit trigger on the way down; the other two on the way up.
    rises = order_type.startswith("TAKE_PROFIT") == (side == "SELL")
    return market >= stop if rises else market <= stop


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    handler: str
    weight: int
    signed: bool = False
    weight_without_symbol: int | None = None


# Weights from binance-spot-api.yaml ("Weight(IP)") and Binance's live documentation.
ROUTES = {
    ("GET", "/api/v3/ping"): _Route("ping", 1),
    ("GET", "/api/v3/time"): _Route("time", 1),
    ("GET", "/api/v3/exchangeInfo"): _Route("exchange_info", 20),  # the yaml says 10; live Binance says 20
    ("GET", "/api/v3/ticker/price"): _Route("ticker_price", 2, weight_without_symbol=4),
    ("GET", "/api/v3/klines"): _Route("klines", 2),
    ("GET", "/api/v3/account"): _Route("account", 20, signed=True),
    ("POST", "/api/v3/order"): _Route("new_order", 1, signed=True),
    ("POST", "/api/v3/order/test"): _Route("test_order", 1, signed=True),
    ("GET", "/api/v3/order"): _Route("query_order", 4, signed=True),
    ("DELETE", "/api/v3/order"): _Route("cancel_order", 1, signed=True),
    ("PUT", "/api/v3/order/amend/keepPriority"): _Route("amend_keep_priority", 4, signed=True),
    ("POST", "/api/v3/order/cancelReplace"): _Route("cancel_replace", 1, signed=True),
    ("GET", "/api/v3/openOrders"): _Route("open_orders", 6, signed=True, weight_without_symbol=80),
    ("POST", "/api/v3/orderList/oco"): _Route("new_oco", 1, signed=True),
    ("POST", "/api/v3/orderList/oto"): _Route("new_oto", 1, signed=True),
    ("POST", "/api/v3/orderList/otoco"): _Route("new_otoco", 1, signed=True),
    ("GET", "/api/v3/orderList"): _Route("query_order_list", 4, signed=True),
    ("DELETE", "/api/v3/orderList"): _Route("cancel_order_list", 1, signed=True),
    ("GET", "/api/v3/myTrades"): _Route("my_trades", 20, signed=True),
}


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: str
    body: str
    api_key: str | None


@dataclass
class _Reply:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is instead of the payload's JSON
    content_type: str = "application/json;charset=UTF-8"


@dataclass
class _Injected:
    fault: Fault
    method: str | None
    path: str | None
    remaining: int


class _HttpServer(ThreadingHTTPServer):
    request_queue_size = 64
    binance: BinanceTestServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.binance.com
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.binance._connections.add(self.connection)

    def finish(self) -> None:
        self.server.binance._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        reply = self.server.binance._dispatch(
            _Request(method, url.path, url.query, body, self.headers.get("X-MBX-APIKEY")))
        if reply is None:  # injected drop: close without a word
            self.close_connection = True
            return
        data = reply.raw if reply.raw is not None else json.dumps(reply.payload, separators=(",", ":")).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up waiting (its timeout) before the answer came
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass


class BinanceTestServer:
    """A local Binance spot REST API on 127.0.0.1 (random port); use it as a context manager."""

    def __init__(self, api_key: str = "test-api-key", api_secret: str = "test-api-secret", *,
                 prices: dict[str, Decimal] | None = None, commission_rate: Decimal | str = "0.001") -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.clock_offset_ms = 0
        self.enforce_weight_limit = True  # benchmarks switch it off; the header still counts
        self.requests: list[RecordedRequest] = []
        self.handling_seconds = 0.0
        self._exchange = _Exchange({**DEFAULT_PRICES, **(prices or {})}, Decimal(str(commission_rate)),
                                   self.server_time_ms)
        self._lock = self._exchange.lock
        self._faults: list[_Injected] = []
        self._weight_minute, self._weight_used = 0, 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}  # path -> most requests to it being handled at once

    def __repr__(self) -> str:  # never the secret
        return f"BinanceTestServer(base_url={self.base_url!r})"

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> BinanceTestServer:
        """Listen on 127.0.0.1 at a free port and serve from a daemon thread."""
        self._stopping.clear()
        self._http = _HttpServer(("127.0.0.1", 0), _Handler)
        self._http.binance = self
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="binance-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release held answers and close every open connection."""
        if self._http is None:
            return
        self._stopping.set()
        self._http.shutdown()
        for connection in self._connections.copy():
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = self._thread = None

    def __enter__(self) -> BinanceTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._http is None:
            return "http://127.0.0.1:0"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def client(self, api_key: str | None = None, api_secret: str | None = None, timeout: float = 2.0) -> Any:
        """Return a python-binance Client pointed at this server, as robson's adapter builds it."""
        from binance.client import Client

        client = Client(api_key or self.api_key, api_secret or self.api_secret, ping=False,
                        requests_params={"timeout": timeout})
        client.API_URL = self.base_url + "/api"
        return client

    # --- market and account setup --------------------------------------------------------------

    def server_time_ms(self) -> int:
        """Return the server's clock: wall time plus clock_offset_ms."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def set_balance(self, asset: str, free: Decimal | str, locked: Decimal | str = "0") -> None:
        with self._lock:
            self._exchange.free[asset] = Decimal(str(free))
            self._exchange.locked[asset] = Decimal(str(locked))

    def set_price(self, symbol: str, price: Decimal | str) -> None:
        """Set the last price; resting orders trigger and fill against it."""
        with self._lock:
            self._exchange.set_price(symbol, Decimal(str(price)))

    def set_ticker_price(self, symbol: str, price: Decimal | str) -> None:
        """Set only the last price the ticker reports, matching no resting order (a trade the book left behind)."""
        with self._lock:
            self._exchange.prices[symbol] = Decimal(str(price))

    def price(self, symbol: str) -> Decimal:
        with self._lock:
            return self._exchange.prices[symbol]

    def set_klines(self, symbol: str, interval: str, rows: list[list[Any]]) -> None:
        """Serve these candles: Binance's 12-field rows, or [open_time_ms, open, high, low, close, volume]."""
        step = KLINE_INTERVALS_MS[interval]
        full = [kline_row(row, step) for row in rows]
        with self._lock:
            self._exchange.kline_series.pop((symbol, interval), None)
            self._exchange.candles[(symbol, interval)] = sorted(full, key=lambda row: row[0])

    def serve_kline_series(self, symbol: str, interval: str, row_at: Callable[[int], list[Any]],
                           count: int = 300) -> None:
        """Serve `count` candles made at each request, the last one forming on the server's clock (never stale).

        row_at(open_time_ms) returns [open_time_ms, open, high, low, close, volume]; set_klines replaces the series.
        """
        with self._lock:
            self._exchange.kline_series[(symbol, interval)] = (count, row_at)

    def limit_next_market_fill(self, symbol: str, max_qty: Decimal | str, times: int = 1, after: int = 0) -> None:
        """Let the next `times` MARKET orders on symbol (after `after` unlimited ones) fill at most max_qty each.

        The rest of each capped order EXPIRES.
        """
        with self._lock:
            self._exchange.market_fill_caps[symbol] = [None] * after + [Decimal(str(max_qty))] * times

    def cancel_by_hand(self, client_order_id: str, status: str = "CANCELED") -> None:
        """End an open order (its whole OCO) outside robson, as a trader on Binance's website (or an expiry) would."""
        with self._lock:
            exchange = self._exchange
            order = next(o for o in reversed(exchange.orders) if o.client_order_id == client_order_id and o.is_open)
            legs = [order]
            if order.order_list_id != -1:
                order_list = next(lst for lst in exchange.lists if lst.order_list_id == order.order_list_id)
                order_list.done, legs = True, order_list.legs
            for leg in legs:
                if leg.is_open:
                    exchange._close(leg, status)

    def fill_partly(self, client_order_id: str, quantity: Decimal | str, price: Decimal | str | None = None) -> None:
        """Trigger an order on the book and fill only `quantity` of it at price (default its limit), as a thin book would.

        A resting limit order trades as the maker; a stop just triggered, as the taker. Filling the rest
        of an OTO's working order places its pending orders, as on Binance. An order list's pending order
        (PENDING_NEW) is not on the book and cannot be filled.
        """
        with self._lock:
            exchange = self._exchange
            order = next((o for o in reversed(exchange.orders) if o.client_order_id == client_order_id and o.on_book),
                         None)
            if order is None:
                raise ValueError(f"no order {client_order_id} is on the book")
            was_resting = not order.is_conditional or order.triggered
            if order.is_conditional and not order.triggered:
                exchange._trigger(order)  # an OCO's other leg expires
            fill_price = order.price if price is None else Decimal(str(price))
            exchange._fill(order, Decimal(str(quantity)), fill_price, is_maker=was_resting)

    def forget_order(self, client_order_id: str) -> None:
        """Drop an order from the book, as Binance does with old cancelled orders: queries answer -2013."""
        with self._lock:
            self._exchange.orders = [o for o in self._exchange.orders if o.client_order_id != client_order_id]

    def open_orders(self) -> list[dict[str, Any]]:
        """The orders still open, oldest first."""
        return [order for order in self.orders() if order["status"] in OPEN_STATUSES]

    def add_symbol(self, symbol: str, base: str, price: Decimal | str, *, lot_step: str = "0.00100000",
                   delisted: bool = False) -> None:
        """List another USDT spot symbol with BTCUSDT's filters (its own lot step) and a last price.

        delisted: exchangeInfo still lists it, but every other endpoint answers -1121 "Invalid symbol.",
        as Binance does for a symbol delisted since the client read exchangeInfo.
        """
        import copy

        with self._lock:
            entry = copy.deepcopy(self._exchange.symbols["BTCUSDT"])
            entry["symbol"], entry["baseAsset"] = symbol, base
            for f in entry["filters"]:
                if f["filterType"] == "LOT_SIZE":
                    f["minQty"] = f["stepSize"] = _s(Decimal(lot_step))
            self._exchange.info["symbols"].append(entry)
            if not delisted:
                self._exchange.symbols[symbol] = entry
                self._exchange.prices[symbol] = Decimal(str(price))

    def set_weight_limit(self, per_minute: int) -> None:
        """Serve (and enforce) this REQUEST_WEIGHT per minute in exchangeInfo instead of 1200."""
        with self._lock:
            for limit in self._exchange.info["rateLimits"]:
                if limit["rateLimitType"] == "REQUEST_WEIGHT":
                    limit["limit"] = per_minute

    def set_tick_size(self, symbol: str, tick_size: Decimal | str) -> None:
        """Change the symbol's PRICE_FILTER tick and min price (as Binance does now and then), and enforce them."""
        with self._lock:
            for f in self._exchange.symbols[symbol]["filters"]:
                if f["filterType"] == "PRICE_FILTER":
                    f["tickSize"] = f["minPrice"] = _s(Decimal(str(tick_size)))

    def use_notional_filter(self, min_notional: str = "5") -> None:
        """Serve today's NOTIONAL filter instead of the 2021 MIN_NOTIONAL, and enforce it."""
        with self._lock:
            for entry in self._exchange.info["symbols"]:
                entry["filters"] = [_notional_filter(min_notional) if f["filterType"] == "MIN_NOTIONAL" else f
                                    for f in entry["filters"]]

    # --- faults and weight ---------------------------------------------------------------------

    def inject(self, fault: Fault, method: str | None = None, path: str | None = None, times: int = 1) -> None:
        """Apply fault to the next `times` requests matching method and path (None matches any)."""
        with self._lock:
            self._faults.append(_Injected(fault, method and method.upper(), path, times))

    def clear_faults(self) -> None:
        """Forget every fault not yet applied (the outage is over)."""
        with self._lock:
            self._faults.clear()

    @property
    def used_weight(self) -> int:
        """Request weight used in the current server minute."""
        with self._lock:
            return self._weight_used if self._weight_minute == self.server_time_ms() // 60000 else 0

    @used_weight.setter
    def used_weight(self, value: int) -> None:
        with self._lock:
            self._weight_minute, self._weight_used = self.server_time_ms() // 60000, value

    def _add_weight(self, weight: int) -> int:
        minute = self.server_time_ms() // 60000
        if minute != self._weight_minute:
            self._weight_minute, self._weight_used = minute, 0
        self._weight_used += weight
        return self._weight_used

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for injected in self._faults:
            if injected.method in (None, method) and injected.path in (None, path):
                injected.remaining -= 1
                if injected.remaining <= 0:
                    self._faults.remove(injected)
                return injected.fault
        return None

    # --- introspection -------------------------------------------------------------------------

    def orders(self) -> list[dict[str, Any]]:
        """Every order ever placed, oldest first, as GET /api/v3/order shows it."""
        with self._lock:
            return [order.details() for order in self._exchange.orders]

    def order_lists(self) -> list[dict[str, Any]]:
        """Every OCO, oldest first, as GET /api/v3/orderList shows it."""
        with self._lock:
            return [order_list.summary() for order_list in self._exchange.lists]

    def trades(self) -> list[dict[str, Any]]:
        """Every fill, as GET /api/v3/myTrades shows it."""
        with self._lock:
            return [trade.my_trade() for trade in self._exchange.trades]

    def balances(self) -> dict[str, Balance]:
        with self._lock:
            assets = set(self._exchange.free) | set(self._exchange.locked)
            return {asset: Balance(self._exchange.free.get(asset, ZERO), self._exchange.locked.get(asset, ZERO))
                    for asset in sorted(assets)}

    def reset(self) -> None:
        """Forget orders, balances, prices, candles, faults, weight, clock offset and recorded requests."""
        with self._lock:
            self._exchange.reset()
            self._faults.clear()
            self.requests.clear()
            self.handling_seconds = 0.0
            self.clock_offset_ms = 0
            self._weight_minute, self._weight_used = 0, 0

    # --- request handling ----------------------------------------------------------------------

    def _dispatch(self, request: _Request) -> _Reply | None:
        """Answer one request: weight, faults, authentication, the endpoint; None means drop the socket."""
        started = time.perf_counter()
        with self._lock:
            flying = self._in_flight[request.path] = self._in_flight.get(request.path, 0) + 1
            self.peak_in_flight[request.path] = max(self.peak_in_flight.get(request.path, 0), flying)
        pairs = parse_qsl(request.query, keep_blank_values=True) + parse_qsl(request.body, keep_blank_values=True)
        params = dict(pairs)
        route = ROUTES.get((request.method, request.path))
        reply: _Reply | None = None
        try:
            with self._lock:
                weight = 0 if route is None else route.weight
                if route is not None and route.weight_without_symbol and not params.get("symbol"):
                    weight = route.weight_without_symbol
                used = self._add_weight(weight)
                fault = self._take_fault(request.method, request.path)
            if fault is not None and not fault.after_processing:
                reply = self._before_processing(fault, request, route, params, pairs)
            elif route is not None and self.enforce_weight_limit and used > self._weight_limit():
                retry_after = 60 - (self.server_time_ms() // 1000) % 60
                reply = _Reply(429, {"code": -1003, "msg": TOO_MUCH_WEIGHT.format(limit=self._weight_limit())},
                               {"Retry-After": str(retry_after)})
            else:
                reply = self._process(request, route, params, pairs)
                if fault is not None:
                    reply = self._after_processing(fault, reply)
            if reply is not None:
                reply.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            return reply
        finally:  # before the answer is written, so a test that got its answer sees the record
            recorded = {name: value for name, value in params.items() if name != "signature"}
            with self._lock:
                self._in_flight[request.path] -= 1
                self.requests.append(RecordedRequest(request.method, request.path, recorded,
                                                     None if reply is None else reply.status))
                self.handling_seconds += time.perf_counter() - started

    def _before_processing(self, fault: Fault, request: _Request, route: _Route | None,
                           params: dict[str, str], pairs: list[tuple[str, str]]) -> _Reply | None:
        fault.applied.set()
        if fault.kind == "drop":
            return None
        if fault.kind == "hold":
            self._hold(fault)
            return self._process(request, route, params, pairs)
        if fault.kind == "first" and fault.action is not None:
            fault.action()
            return self._process(request, route, params, pairs)
        return self._fault_reply(fault)

    def _after_processing(self, fault: Fault, reply: _Reply) -> _Reply | None:
        fault.applied.set()
        if fault.kind == "drop":
            return None
        if fault.kind == "hold":
            self._hold(fault)
            return reply
        return self._fault_reply(fault)

    def _fault_reply(self, fault: Fault) -> _Reply:
        if fault.kind == "raw":
            return _Reply(fault.status, None, raw=fault.body, content_type=fault.content_type)
        if fault.kind != "rate_limited":
            return _Reply(fault.status, {"code": fault.code, "msg": fault.msg})
        if fault.status == 418:
            msg = IP_BANNED.format(until=self.server_time_ms() + fault.retry_after * 1000)
        else:
            msg = TOO_MUCH_WEIGHT.format(limit=self._weight_limit())
        return _Reply(fault.status, {"code": -1003, "msg": msg}, {"Retry-After": str(fault.retry_after)})

    def _hold(self, fault: Fault) -> None:
        deadline = time.monotonic() + fault.max_seconds
        release = fault.release or threading.Event()
        while not release.is_set() and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            release.wait(min(remaining, 0.01))  # short waits so stop() never waits on a held answer

    def _weight_limit(self) -> int:
        return next(limit["limit"] for limit in self._exchange.info["rateLimits"]
                    if limit["rateLimitType"] == "REQUEST_WEIGHT")

    def _process(self, request: _Request, route: _Route | None, params: dict[str, str],
                 pairs: list[tuple[str, str]]) -> _Reply:
        if route is None:
            return _Reply(404, {"code": -1000, "msg": f"Unknown endpoint {request.method} {request.path}."})
        try:
            if len(params) != len(pairs):
                raise ApiError(-1101, "Duplicate values for a parameter detected.")
            if route.signed:
                self._authenticate(request, params)
            with self._lock:
                return _Reply(200, getattr(self._exchange, route.handler)(params))
        except ApiError as error:
            return _Reply(error.status, error.body())
        except Exception:  # a bug in this server: show it, answer like Binance's internal error
            traceback.print_exc()
            return _Reply(500, {"code": -1000, "msg": "An unknown error occurred while processing the request."})

    def _authenticate(self, request: _Request, params: dict[str, str]) -> None:
        """Check key, timestamp window and the HMAC-SHA256 of query string + body, as Binance does."""
        if not request.api_key:
            raise ApiError(-2014, "API-key format invalid.", 401)
        if request.api_key != self.api_key:
            raise ApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        timestamp = _Exchange._integer(params, "timestamp")
        if timestamp is None:
            raise _mandatory("timestamp")
        recv_window = _Exchange._integer(params, "recvWindow") or DEFAULT_RECV_WINDOW_MS
        if recv_window > MAX_RECV_WINDOW_MS:
            raise ApiError(-1131, "recvWindow must be less than 60000.")
        signature = params.get("signature")
        if not signature:
            raise _mandatory("signature")
        total_params = _without_signature(request.query) + _without_signature(request.body)
        expected = hmac.new(self.api_secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()
        if signature.lower() != expected:
            raise ApiError(-1022, "Signature for this request is not valid.")
        now = self.server_time_ms()
        if timestamp > now + AHEAD_TOLERANCE_MS:
            raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > recv_window:
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")


def _without_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and not part.startswith("signature="))
