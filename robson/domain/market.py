"""Market vocabulary: sides, timeframes, candles and a symbol's exchange filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from robson.domain.money import ZERO, fmt, is_multiple, round_down_to_step, round_to_tick
from robson.errors import InvalidInput


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a long (profit when price rises), -1 for a short."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 3 * 60_000,
    "5m": 5 * 60_000,
    "15m": 15 * 60_000,
    "30m": 30 * 60_000,
    "1h": 60 * 60_000,
    "2h": 2 * 60 * 60_000,
    "4h": 4 * 60 * 60_000,
    "6h": 6 * 60 * 60_000,
    "8h": 8 * 60 * 60_000,
    "12h": 12 * 60 * 60_000,
    "1d": 24 * 60 * 60_000,
}


def timeframe_ms(timeframe: str) -> int:
    """Return the length of a timeframe in milliseconds; raise InvalidInput if unknown."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        known = ", ".join(TIMEFRAME_MS)
        raise InvalidInput(f"unknown timeframe '{timeframe}' (known: {known})") from None


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def check_not_before(now: datetime, moment: datetime | None, what: str) -> None:
    """Refuse to write at market time now when it is earlier than moment, the latest time of what is touched.

    A replay (--as-of) may move the clock anywhere, but history is never written backwards: an
    operation is not closed before it opened, an intent not executed before it was validated.
    Raise InvalidInput (exit 2) naming both times.
    """
    if moment is not None and now < moment:
        raise InvalidInput(
            f"market time {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC is before {what} at "
            f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC: robson never writes history backwards",
            hint=f"use --as-of {moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S} or later",
        )


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV bar; open_time is epoch milliseconds (UTC), the bar closes at open_time + length."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """The last traded price of a symbol and when it was observed."""

    symbol: str
    price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """A spot symbol and the exchange filters every order on it must satisfy."""

    symbol: str
    base_asset: str
    quote_asset: str
    status: str = "TRADING"
    spot_allowed: bool = True
    tick_size: Decimal = ZERO
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    step_size: Decimal = ZERO
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    min_notional: Decimal = ZERO
    max_notional: Decimal = ZERO

    @property
    def tradable(self) -> bool:
        return self.status == "TRADING" and self.spot_allowed

    def round_quantity(self, quantity: Decimal) -> Decimal:
        """Round a quantity down to LOT_SIZE step (never up past a risk budget)."""
        return round_down_to_step(quantity, self.step_size)

    def round_price(self, price: Decimal, *, up: bool) -> Decimal:
        """Round a price to PRICE_FILTER tick, up or down."""
        return round_to_tick(price, self.tick_size, up=up)

    def quantity_on_step(self, quantity: Decimal) -> bool:
        return is_multiple(quantity - self.min_qty if self.min_qty else quantity, self.step_size)

    def price_on_tick(self, price: Decimal) -> bool:
        return is_multiple(price - self.min_price if self.min_price else price, self.tick_size)

    def below_minimum(self, quantity: Decimal, price: Decimal | None) -> bool:
        """True when no order can trade quantity: nothing, under LOT_SIZE min, or worth less than MIN_NOTIONAL at price."""
        return (quantity <= 0 or quantity < self.min_qty
                or (price is not None and quantity * price < self.min_notional))

    def dust_reason(self, quantity: Decimal, price: Decimal | None) -> str:
        """Say why quantity is below what the exchange trades (below_minimum), with the filter's numbers."""
        if quantity <= 0 or quantity < self.min_qty:
            return f"{fmt(quantity)} {self.base_asset} is below the LOT_SIZE minimum of {fmt(self.min_qty)}"
        value = fmt(quantity * price, 2) if price is not None else "?"
        return (f"{fmt(quantity)} {self.base_asset} is worth {value} {self.quote_asset}, below the minimum order "
                f"value of {fmt(self.min_notional)} {self.quote_asset}")

    @classmethod
    def from_exchange_info(cls, entry: dict) -> SymbolInfo:
        """Build from one `symbols[]` entry of Binance exchangeInfo (NOTIONAL or MIN_NOTIONAL)."""
        filters = {f["filterType"]: f for f in entry.get("filters", [])}
        price = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        permissions = entry.get("permissions") or []
        spot = entry.get("isSpotTradingAllowed")
        if spot is None:
            spot = "SPOT" in permissions or not permissions
        return cls(
            symbol=entry["symbol"],
            base_asset=entry["baseAsset"],
            quote_asset=entry["quoteAsset"],
            status=entry.get("status", "TRADING"),
            spot_allowed=bool(spot),
            tick_size=Decimal(price.get("tickSize", "0")).normalize(),
            min_price=Decimal(price.get("minPrice", "0")).normalize(),
            max_price=Decimal(price.get("maxPrice", "0")).normalize(),
            step_size=Decimal(lot.get("stepSize", "0")).normalize(),
            min_qty=Decimal(lot.get("minQty", "0")).normalize(),
            max_qty=Decimal(lot.get("maxQty", "0")).normalize(),
            min_notional=Decimal(notional.get("minNotional", "0")).normalize(),
            max_notional=Decimal(notional.get("maxNotional", "0")).normalize(),
        )
