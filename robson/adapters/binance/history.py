"""Binance klines for the backtest, fetched once and kept in a local cache so a second run is offline.

Each (symbol, timeframe) is one text file of ``open_time,open,high,low,close,volume`` lines, the
exact strings Binance sent, oldest first, in <cache_dir>/klines/binance/ (the cache_dir setting or
the user cache folder). A backtest asks for the candles since a time; only what the file does not
hold yet is fetched (forward in pages of 1000, within the request weight), and only closed candles
are ever kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from robson.adapters.binance.gateway import BinanceGateway
from robson.adapters.binance.market import KLINES_PER_REQUEST, WEIGHT_KLINES, BinanceMarket
from robson.adapters.market.history import HistorySeries, cache_dir
from robson.domain.market import SymbolInfo, datetime_to_ms, timeframe_ms
from robson.errors import MarketDataError

DEFAULT_DAYS = 30  # what a backtest on Binance replays when --from is not given


class BinanceHistory:
    """The History port over Binance klines with a local cache."""

    name = "binance"

    def __init__(self, gateway: BinanceGateway, market: BinanceMarket, *, folder: Path | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        self._gateway = gateway
        self._market = market
        self._folder = folder or cache_dir() / "klines" / "binance"
        self._now_ms = now_ms or gateway.server_time_ms
        self._series: dict[tuple[str, str, int | None, int | None], HistorySeries] = {}

    def symbol_info(self, symbol: str) -> SymbolInfo:
        return self._market.symbol_info(symbol)

    def symbols_with(self, timeframe: str) -> list[str]:
        """Binance holds every symbol's klines: the caller names the symbols (or the config's scan.symbols)."""
        return []

    def history(self, symbol: str, timeframe: str, since_ms: int | None = None,
                until_ms: int | None = None) -> HistorySeries:
        """Every closed candle of timeframe from since_ms (default: DEFAULT_DAYS days back) to until_ms (default: now).

        Only what the cache does not hold is fetched: a range the cache covers makes no request.
        """
        symbol = symbol.strip().upper()
        key = (symbol, timeframe, since_ms, until_ms)
        if key in self._series:
            return self._series[key]
        self.symbol_info(symbol)
        length = timeframe_ms(timeframe)
        now = self._now_ms() if until_ms is None else min(self._now_ms(), until_ms)
        end = now // length * length  # candles opening before it are closed (by until_ms)
        start = since_ms if since_ms is not None else end - DEFAULT_DAYS * 86_400_000
        start = start - start % length
        lines = self._read(symbol, timeframe)
        fetched = []
        if not lines or _open_time(lines[0]) > start:
            fetched += self._fetch(symbol, timeframe, start, _open_time(lines[0]) if lines else end)
        last = _open_time(lines[-1]) if lines else None
        if last is not None and last + length < end:
            fetched += self._fetch(symbol, timeframe, last + length, end)
        if fetched:
            merged = {_open_time(line): line for line in lines}
            merged.update((_open_time(line), line) for line in fetched)
            lines = [merged[t] for t in sorted(merged)]
            self._write(symbol, timeframe, lines)
        rows = [line for line in lines if start <= _open_time(line) < end]
        if not rows:
            raise MarketDataError(f"Binance has no closed {timeframe} candles of {symbol} since "
                                  f"{datetime.fromtimestamp(start / 1000, UTC):%Y-%m-%d %H:%M} UTC")
        series = HistorySeries.from_rows(symbol, timeframe, rows)
        self._series[key] = series
        return series

    def _fetch(self, symbol: str, timeframe: str, start: int, end: int) -> list[str]:
        """Closed candles opening in [start, end), paging forward 1000 at a time."""
        length = timeframe_ms(timeframe)
        collected: list[str] = []
        cursor = start
        while cursor < end:
            rows = self._gateway.call(
                lambda c, at=cursor: c.get_klines(symbol=symbol, interval=timeframe, startTime=at,
                                                  endTime=end - 1, limit=KLINES_PER_REQUEST),
                weight=WEIGHT_KLINES,
            )
            page = [_line(row) for row in rows if int(row[0]) + length <= self._now_ms() and int(row[0]) < end]
            collected += [line for line in page if _open_time(line) >= cursor]
            if len(rows) < KLINES_PER_REQUEST or not page:
                break
            cursor = _open_time(page[-1]) + length
        return collected

    def _path(self, symbol: str, timeframe: str) -> Path:
        return self._folder / f"{symbol}-{timeframe}.csv"

    def _read(self, symbol: str, timeframe: str) -> list[str]:
        try:
            return [line for line in self._path(symbol, timeframe).read_text(encoding="ascii").splitlines() if line]
        except (OSError, UnicodeDecodeError):
            return []

    def _write(self, symbol: str, timeframe: str, lines: list[str]) -> None:
        path = self._path(symbol, timeframe)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            partial.write_text("\n".join(lines) + "\n", encoding="ascii")
            partial.replace(path)
        except OSError:
            pass  # no cache folder: the next run fetches again


def since(start: datetime | None, warm_up_candles: int, timeframe: str) -> int | None:
    """The first open time to fetch for a replay from start, with warm_up_candles before it."""
    if start is None:
        return None
    return datetime_to_ms(start - timedelta(milliseconds=warm_up_candles * timeframe_ms(timeframe)))


def _open_time(line: str) -> int:
    return int(line[: line.index(",")])


def _line(row: list[Any]) -> str:
    return ",".join(str(value) for value in row[:6])
