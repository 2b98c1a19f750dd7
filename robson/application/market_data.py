"""Use case: import candles from a file into the local market, all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robson.application.ports import Store
from robson.domain.market import ms_to_datetime, timeframe_ms
from robson.errors import InvalidInput


def import_candles(path: Path, symbol: str, timeframe: str, *, store: Store) -> dict[str, Any]:
    """Parse and store candles in one transaction; raise DataImportError listing every bad row."""
    from robson.adapters.market.importer import parse_candle_file

    symbol = symbol.strip().upper()
    if not symbol.isalnum():
        raise InvalidInput(f"symbol must be letters and digits like BTCUSDT, got '{symbol}'")
    timeframe_ms(timeframe)
    candles = parse_candle_file(path, timeframe)
    with store.transaction() as tx:
        written = tx.save_candles(symbol, timeframe, candles)
    return {
        "symbol": symbol,
        "timeframe": timeframe,
        "candles": written,
        "first": ms_to_datetime(candles[0].open_time).isoformat(),
        "last": ms_to_datetime(candles[-1].open_time).isoformat(),
    }
