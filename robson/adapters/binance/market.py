"""Live market data from Binance: symbol filters (cached), last price, closed klines with pagination."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from robson.adapters.binance.gateway import BinanceGateway
from robson.domain.market import Candle, PriceQuote, SymbolInfo, timeframe_ms
from robson.errors import MarketDataError, NotFound, TemporaryExchangeError

KLINES_PER_REQUEST = 1000  # Binance's maximum
# Request weights from the spot API (../shared/data/specs/binance-spot-api.yaml).
WEIGHT_EXCHANGE_INFO = 20
WEIGHT_TICKER = 2
WEIGHT_KLINES = 2


class BinanceMarket:
    """MarketData on the live exchange; its clock is Binance's (this machine's, corrected by the measured offset)."""

    name = "binance"

    def __init__(self, gateway: BinanceGateway, *, exchange_info_ttl_seconds: int = 3600,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._gateway = gateway
        self._ttl = exchange_info_ttl_seconds
        self._monotonic = monotonic
        self._info: dict[str, SymbolInfo] | None = None
        self._info_loaded_at = 0.0
        # The scan's worker threads all start by asking for filters: one of them loads, the others wait.
        self._info_lock = threading.Lock()

    def now(self) -> datetime:
        """Return Binance's time: a machine clock minutes off never makes fresh data look stale (or stale data fresh)."""
        try:
            server_ms = self._gateway.server_time_ms()
        except TemporaryExchangeError:  # Binance unreachable: nothing stamped now can fetch data to judge either
            return datetime.now(UTC)
        return datetime.fromtimestamp(server_ms / 1000, UTC)

    # --- exchangeInfo ----------------------------------------------------------------------

    def _exchange_info(self) -> dict[str, SymbolInfo]:
        with self._info_lock:
            return self._load_exchange_info()

    def _load_exchange_info(self) -> dict[str, SymbolInfo]:
        if self._info is None or self._monotonic() - self._info_loaded_at > self._ttl:
            self._info, weight_limit = self._gateway.call(lambda c: c.get_exchange_info(),
                                                          weight=WEIGHT_EXCHANGE_INFO, parse=_exchange_info)
            self._info_loaded_at = self._monotonic()
            if weight_limit is not None:
                self._gateway.limiter.limit = weight_limit
        return self._info

    def symbols(self) -> list[str]:
        return sorted(self._exchange_info())

    def symbol_info(self, symbol: str) -> SymbolInfo:
        try:
            return self._exchange_info()[symbol.upper()]
        except KeyError:
            raise NotFound(f"symbol {symbol} is not listed on Binance") from None

    # --- prices ----------------------------------------------------------------------------

    def last_price(self, symbol: str) -> PriceQuote:
        self.symbol_info(symbol)
        price = self._gateway.call(lambda c: c.get_symbol_ticker(symbol=symbol.upper()), weight=WEIGHT_TICKER,
                                   parse=lambda answer: Decimal(answer["price"]))
        return PriceQuote(symbol=symbol.upper(), price=price, at=self.now())

    def fill_price(self, symbol: str) -> PriceQuote:
        """Return the last traded price: on the live exchange a market order trades at the market."""
        return self.last_price(symbol)

    def holds(self, symbol: str, timeframe: str) -> bool:
        """Binance serves every interval of every listed symbol (an unlisted one fails when fetched)."""
        return True

    def candles(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        """Return the last `limit` candles closed by now, oldest first, paging 1000 at a time."""
        length = timeframe_ms(timeframe)
        self.symbol_info(symbol)
        now_ms = self._gateway.server_time_ms()
        # The candle still forming opens at the last boundary; everything before it is closed.
        end_ms = now_ms // length * length - 1
        collected: list[Candle] = []
        while len(collected) < limit:
            want = min(KLINES_PER_REQUEST, limit - len(collected))
            rows = self._klines(symbol.upper(), timeframe, end_ms, want)
            if not rows:
                break
            page = [candle for candle in rows if candle.open_time + length <= now_ms]
            collected = page + collected
            if len(rows) < want:
                break
            end_ms = rows[0].open_time - 1
        if not collected:
            raise MarketDataError(f"Binance has no closed {timeframe} candles for {symbol}")
        return collected[-limit:]

    def _klines(self, symbol: str, timeframe: str, end_ms: int, limit: int) -> list[Candle]:
        return self._gateway.call(
            lambda c: c.get_klines(symbol=symbol, interval=timeframe, endTime=end_ms, limit=limit),
            weight=WEIGHT_KLINES, parse=lambda rows: [_candle(row) for row in rows],
        )


def _exchange_info(raw: dict[str, Any]) -> tuple[dict[str, SymbolInfo], int | None]:
    """Read exchangeInfo: each symbol's filters, and the request weight allowed per minute (None if not said)."""
    infos = {entry["symbol"]: SymbolInfo.from_exchange_info(entry) for entry in raw.get("symbols", [])}
    weight_limit = None
    for limit in raw.get("rateLimits", []):
        if limit.get("rateLimitType") == "REQUEST_WEIGHT" and limit.get("interval") == "MINUTE":
            weight_limit = int(limit["limit"]) // max(int(limit.get("intervalNum", 1)), 1)
    return infos, weight_limit


def _candle(row: list[Any]) -> Candle:
    return Candle(open_time=int(row[0]), open=Decimal(row[1]), high=Decimal(row[2]), low=Decimal(row[3]),
                  close=Decimal(row[4]), volume=Decimal(row[5]))
