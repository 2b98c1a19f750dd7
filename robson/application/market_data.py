"""Use case: add imported candles to the local market, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robson.application.ports import Store
from robson.domain.market import Candle, ms_to_datetime, timeframe_ms
from robson.errors import InvalidInput


def import_candles(symbol: str, timeframe: str, candles: Sequence[Candle], *, store: Store) -> dict[str, Any]:
    """Store parsed candles in one transaction; raise InvalidInput for a bad symbol or timeframe."""
    symbol = symbol.strip().upper()
    if not symbol.isalnum():
        raise InvalidInput(f"symbol must be letters and digits like BTCUSDT, got '{symbol}'")
    timeframe_ms(timeframe)
    if not candles:
        raise InvalidInput("no candles to import")
    with store.transaction() as tx:
        written = tx.save_candles(symbol, timeframe, candles)
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": written,
        "first": ms_to_datetime(candles[0].open_time).isoformat(),
        "last": ms_to_datetime(candles[-1].open_time).isoformat(),
    }
