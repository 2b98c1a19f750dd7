"""The offline sample market: real Binance candles bundled with robson, replayed at any as-of time.

Files live in robson/data/market/SYMBOL/TIMEFRAME/YYYY-MM.csv.gz as gzip'd
``open_time,open,high,low,close,volume`` lines (see robson/data/README.md). A month is read only
when a call needs it and kept as raw text lines; only the rows a call returns become Decimals,
found by bisecting on the open_time column.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from robson.domain.candles import merge, resample
from robson.domain.market import (
    TIMEFRAME_MS,
    Candle,
    PriceQuote,
    SymbolInfo,
    datetime_to_ms,
    ms_to_datetime,
    timeframe_ms,
)
from robson.errors import InvalidInput, MarketDataError, NotFound

if TYPE_CHECKING:  # numpy loads only for the backtest
    from robson.adapters.market.history import HistorySeries

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "market"
# First bundled open and last bundled 5m close; a test checks them against the files.
SAMPLE_START = datetime(2020, 12, 1, 0, 0, tzinfo=UTC)
SAMPLE_END = datetime(2021, 7, 17, 21, 10, tzinfo=UTC)

ExtraCandles = Callable[[str, str, int | None, int | None], list[Candle]]
ImportedSeries = Callable[[], list[tuple[str, str, int]]]


class SampleMarket:
    """MarketData over the bundled candles plus imported ones, with a clock at as_of (default: end of data)."""

    name = "sample"

    def __init__(
        self,
        as_of: datetime | None = None,
        extra_candles: ExtraCandles | None = None,
        imported_series: ImportedSeries | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        """Set the clock; raise MarketDataError if as_of is before every candle the market has.

        extra_candles(symbol, timeframe, end_ms, limit) returns imported candles with
        open_time < end_ms, the last `limit` (all when None), oldest first. imported_series()
        lists the imported (symbol, timeframe, count); without it only the exact series asked
        for is looked up in extra_candles.
        """
        if as_of is not None and as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=UTC)  # naive times are taken as UTC, like every time in robson
        self._now = SAMPLE_END if as_of is None else as_of.astimezone(UTC)
        self._as_of_ms = datetime_to_ms(self._now)
        self._extra_candles = extra_candles
        self._imported_series = imported_series
        self._imported_pairs: set[tuple[str, str]] | None = None
        self._histories: dict[tuple[str, str], HistorySeries] = {}
        self._cache_dir = cache_dir  # where history() keeps parsed arrays (None: the user cache folder)
        if self._now < SAMPLE_START and not self._imported_before(self._as_of_ms + 1):
            raise MarketDataError(
                f"as-of {_fmt(self._as_of_ms)} is before the sample market's data, "
                f"which starts at {_fmt(datetime_to_ms(SAMPLE_START))}"
            )

    # --- MarketData --------------------------------------------------------

    def now(self) -> datetime:
        """Return the market clock: as_of, or the close of the last bundled 5m candle."""
        return self._now

    def symbols(self) -> list[str]:
        """Return bundled and imported symbols, sorted."""
        return sorted(set(_bundled_files()) | {symbol for symbol, _ in self._imported()})

    def symbol_info(self, symbol: str) -> SymbolInfo:
        """Return the bundled exchange filters; raise NotFound if unknown or only imported."""
        symbol = self._known(symbol)
        entry = _exchange_info().get(symbol)
        if entry is None:
            raise NotFound(
                f"no exchange filters for {symbol} in the sample market (it has only imported candles)",
                hint=f"symbols with bundled filters: {', '.join(sorted(_exchange_info()))}",
            )
        return SymbolInfo.from_exchange_info(entry)

    def last_price(self, symbol: str) -> PriceQuote:
        """Return the close of the last candle closed by now, on the finest timeframe held; raise NotFound or MarketDataError.

        Only candles closed by now exist: a clock inside a candle sees nothing of that candle.
        The quote is stamped with that candle's close, so a stale price shows its age.
        """
        symbol = self._known(symbol)
        best: tuple[Candle, int] | None = None
        for timeframe in sorted(self._timeframes(symbol), key=timeframe_ms):
            length = timeframe_ms(timeframe)
            rows = self._last(symbol, timeframe, self._as_of_ms - length + 1, 1)  # closed: open + length <= now
            if rows and (best is None or rows[0].open_time + length > best[0].open_time + best[1]):
                best = (rows[0], length)
            if best is not None and best[0].open_time + best[1] > self._as_of_ms - length:
                break  # closed within one candle of this timeframe: nothing coarser can close later
        if best is None:
            raise MarketDataError(f"no {symbol} candle closed by {_fmt(self._as_of_ms)} in the sample market")
        candle, length = best
        return PriceQuote(symbol=symbol, price=candle.close, at=ms_to_datetime(candle.open_time + length))

    def fill_price(self, symbol: str) -> PriceQuote:
        """Return the price a market order sent now trades at: the first trade at or after now.

        That is the open of the candle opening exactly at now on the finest timeframe held (a
        replay at a candle boundary); otherwise, inside a candle or past the end of the data,
        the last price. Nothing later than the first trade after now is looked at.
        """
        symbol = self._known(symbol)
        for timeframe in sorted(self._timeframes(symbol), key=timeframe_ms):
            if self._as_of_ms % timeframe_ms(timeframe) == 0:
                rows = self._last(symbol, timeframe, self._as_of_ms + 1, 1)
                if rows and rows[0].open_time == self._as_of_ms:
                    return PriceQuote(symbol=symbol, price=rows[0].open, at=self._now)
                break
        quote = self.last_price(symbol)
        return PriceQuote(symbol=symbol, price=quote.price, at=self._now)

    def candles(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        """Return up to limit candles closed by now, oldest first; raise InvalidInput, NotFound or MarketDataError."""
        target = timeframe_ms(timeframe)
        symbol = self._known(symbol)
        if limit < 1:
            raise InvalidInput(f"candle limit must be at least 1, got {limit}")
        source = self._source_timeframe(symbol, timeframe)
        closed_end = self._as_of_ms - target + 1  # open_time < closed_end <=> open_time + length <= now
        if source == timeframe:
            rows = self._last(symbol, timeframe, closed_end, limit)
        else:
            rows = self._resampled(symbol, source, target, limit)
            imported = self._imported_candles(symbol, timeframe, closed_end, limit)
            if imported:
                rows = merge(rows, imported)[-limit:]
        if not rows:
            raise MarketDataError(
                f"no {symbol} {timeframe} candles closed by {_fmt(self._as_of_ms)} in the sample market"
            )
        return rows

    def holds(self, symbol: str, timeframe: str) -> bool:
        """False when the sample knows symbol but nothing in it serves timeframe (held or resampled)."""
        try:
            self._source_timeframe(self._known(symbol), timeframe)
        except NotFound:
            return True  # fetching it says the symbol is unknown
        except MarketDataError:
            return False
        return True

    def symbols_with(self, timeframe: str) -> list[str]:
        """The symbols with exchange filters whose candles can serve timeframe (held or resampled)."""
        found = []
        for symbol in self.symbols():
            try:
                self.symbol_info(symbol)
                self._source_timeframe(symbol, timeframe)
            except (NotFound, MarketDataError):
                continue
            found.append(symbol)
        return found

    def history(self, symbol: str, timeframe: str, since_ms: int | None = None,
                until_ms: int | None = None) -> HistorySeries:
        """Return every candle of timeframe closed by now, as arrays with exact candles on demand (the backtest's view).

        The same series a scan at now is served (imported candles win over bundled ones; a
        timeframe the market does not hold is resampled from the finest one dividing it), all of
        it (since_ms and until_ms are for fetching markets: everything here is at hand). Raise InvalidInput,
        NotFound or MarketDataError as candles() does.
        """
        from robson.adapters.market.history import HistorySeries, resample_history

        target = timeframe_ms(timeframe)
        symbol = self._known(symbol)
        if (symbol, timeframe) in self._histories:
            return self._histories[(symbol, timeframe)]
        source = self._source_timeframe(symbol, timeframe)
        length = timeframe_ms(source)
        end = self._as_of_ms - length + 1  # candles opening before it are closed by now
        imported = self._imported_candles(symbol, source, end, None)
        series = _bundled_history(symbol, source, end, self._cache_dir) if not imported else None
        if series is None:
            rows: list[str | Candle] = list(_bundled_lines(symbol, source, end))
            if imported:
                by_time: dict[int, str | Candle] = {_open_time(line): line for line in rows}
                by_time.update((c.open_time, c) for c in imported)
                rows = [by_time[t] for t in sorted(by_time)]
            series = HistorySeries.from_rows(symbol, source, rows)
        if source != timeframe:
            series = resample_history(series, timeframe, target).until(self._as_of_ms)
        if not len(series):
            raise MarketDataError(
                f"no {symbol} {timeframe} candles closed by {_fmt(self._as_of_ms)} in the sample market"
            )
        self._histories[(symbol, timeframe)] = series
        return series

    # --- series selection ----------------------------------------------------

    def _known(self, symbol: str) -> str:
        normalized = symbol.strip().upper()
        known = self.symbols()
        if normalized not in known:
            raise NotFound(f"unknown symbol '{normalized}' (known: {', '.join(known)})")
        return normalized

    def _timeframes(self, symbol: str) -> set[str]:
        bundled = set(_bundled_files().get(symbol, {}))
        return bundled | {timeframe for s, timeframe in self._imported() if s == symbol}

    def _source_timeframe(self, symbol: str, timeframe: str) -> str:
        """Pick the timeframe itself if bundled, else the finest one dividing it; raise MarketDataError.

        An imported series of the timeframe itself is merged on top by the caller.
        """
        if timeframe in _bundled_files().get(symbol, {}):
            return timeframe
        available = self._timeframes(symbol)
        target = timeframe_ms(timeframe)
        divisors = sorted((timeframe_ms(tf), tf) for tf in available if target % timeframe_ms(tf) == 0)
        if divisors:
            return divisors[0][1]
        if self._imported_series is None and self._imported_candles(symbol, timeframe, None, 1):
            return timeframe  # unlisted imported series: found by asking for it
        raise MarketDataError(
            f"{symbol} has no {timeframe} candles in the sample market (available: {_describe(available)})"
        )

    def _resampled(self, symbol: str, source: str, target: int, limit: int) -> list[Candle]:
        """Resample the last closed target buckets from source, widening the window over gaps."""
        boundary = self._as_of_ms - self._as_of_ms % target  # buckets opening before it are closed
        latest = self._last(symbol, source, boundary, 1)
        if not latest:
            return []
        # Past the end of the data, start from the last candle rather than from now.
        end = min(boundary, latest[0].open_time - latest[0].open_time % target + target)
        span = limit * target
        while True:
            start = end - span
            rows = resample(self._window(symbol, source, start, end), target)
            if len(rows) >= limit or not self._last(symbol, source, start, 1):
                return rows[-limit:]
            span *= 2

    # --- bundled + imported rows -------------------------------------------

    def _last(self, symbol: str, timeframe: str, end: int, limit: int) -> list[Candle]:
        """Return the last limit candles opening before end, imported rows winning."""
        bundled = _bundled(symbol, timeframe, None, end, limit)
        imported = self._imported_candles(symbol, timeframe, end, limit)
        return merge(bundled, imported)[-limit:] if imported else bundled

    def _window(self, symbol: str, timeframe: str, start: int, end: int) -> list[Candle]:
        """Return the candles opening in [start, end), imported rows winning."""
        bundled = _bundled(symbol, timeframe, start, end, None)
        most = (end - start) // timeframe_ms(timeframe)  # aligned, unique open times
        imported = [c for c in self._imported_candles(symbol, timeframe, end, most) if c.open_time >= start]
        return merge(bundled, imported) if imported else bundled

    def _imported(self) -> set[tuple[str, str]]:
        if self._imported_pairs is None:
            series = self._imported_series() if self._imported_series and self._extra_candles else []
            self._imported_pairs = {
                (symbol.upper(), timeframe)
                for symbol, timeframe, count in series
                if count and timeframe in TIMEFRAME_MS
            }
        return self._imported_pairs

    def _imported_candles(self, symbol: str, timeframe: str, end: int | None, limit: int | None) -> list[Candle]:
        if self._extra_candles is None:
            return []
        if self._imported_series is not None and (symbol, timeframe) not in self._imported():
            return []
        rows = sorted(
            (c for c in self._extra_candles(symbol, timeframe, end, limit) if end is None or c.open_time < end),
            key=lambda c: c.open_time,
        )
        return rows[-limit:] if limit else rows

    def _imported_before(self, end: int) -> bool:
        return any(self._imported_candles(symbol, timeframe, end, 1) for symbol, timeframe in self._imported())


# --- bundled files (read once per process, on first use) -----------------------


@cache
def _bundled_files() -> dict[str, dict[str, list[tuple[int, Path]]]]:
    """Map symbol -> timeframe -> [(month start ms, file)] oldest first, from SYMBOL/TIMEFRAME/YYYY-MM.csv.gz."""
    files: dict[str, dict[str, list[tuple[int, Path]]]] = {}
    for path in sorted(DATA_DIR.glob("*/*/*.csv.gz")):
        month = datetime(int(path.name[:4]), int(path.name[5:7]), 1, tzinfo=UTC)
        files.setdefault(path.parent.parent.name, {}).setdefault(path.parent.name, []).append(
            (datetime_to_ms(month), path)
        )
    return files


@cache
def _lines(path: Path) -> list[str]:
    return zlib.decompress(path.read_bytes(), wbits=31).decode("ascii").splitlines()


@cache
def _exchange_info() -> dict[str, dict]:
    import json  # only symbol_info needs it

    info = json.loads((DATA_DIR / "exchangeinfo.json").read_text())
    return {entry["symbol"]: entry for entry in info["symbols"]}


def _bundled_history(symbol: str, timeframe: str, end: int, folder: Path | None) -> HistorySeries | None:
    """The bundled series opening before end from cached arrays, or None when floats cannot give its decimals back."""
    import numpy as np

    from robson.adapters.market.history import HistorySeries, cache_dir, float_candle, month_arrays
    from robson.adapters.signal_engine import Series

    parts = []
    for month_start, path in _bundled_files().get(symbol, {}).get(timeframe, []):
        if month_start >= end:
            break
        rows, exact = month_arrays(path, _lines, cache_dir(folder))
        if not exact:
            return None
        parts.append(rows)
    rows = np.concatenate(parts) if parts else np.zeros((0, 6))
    rows = rows[rows[:, 0] < end]
    times = rows[:, 0].astype(np.int64)
    series = Series(times, *(np.ascontiguousarray(rows[:, k]) for k in range(1, 6)))
    return HistorySeries(symbol, timeframe, series, lambda i: float_candle(times[i], rows[i, 1:]))


def _bundled_lines(symbol: str, timeframe: str, end: int) -> list[str]:
    """Every bundled line of a series opening before end, oldest first."""
    picked: list[str] = []
    for month_start, path in _bundled_files().get(symbol, {}).get(timeframe, []):
        if month_start >= end:
            break
        lines = _lines(path)
        picked.extend(lines[: bisect_left(lines, end, key=_open_time)])
    return picked


def _open_time(line: str) -> int:
    return int(line[: line.index(",")])


def _bundled(symbol: str, timeframe: str, start: int | None, end: int, limit: int | None) -> list[Candle]:
    """Return bundled candles opening in [start, end), at most the last limit, reading only the months needed."""
    picked: list[str] = []
    for month_start, path in reversed(_bundled_files().get(symbol, {}).get(timeframe, [])):
        if month_start >= end:
            continue
        lines = _lines(path)
        high = bisect_left(lines, end, key=_open_time)
        low = 0 if start is None else bisect_left(lines, start, hi=high, key=_open_time)
        if limit is not None:
            low = max(low, high - (limit - len(picked)))
        picked[:0] = lines[low:high]
        if (limit is not None and len(picked) >= limit) or (start is not None and month_start <= start):
            break
    return [_candle(line) for line in picked]


def _candle(line: str) -> Candle:
    open_time, open_, high, low, close, volume = line.split(",")
    return Candle(int(open_time), Decimal(open_), Decimal(high), Decimal(low), Decimal(close), Decimal(volume))


def _describe(timeframes: set[str]) -> str:
    """Describe the derivable timeframes, e.g. '1h and above'."""
    lengths = [timeframe_ms(tf) for tf in timeframes]
    derivable = [tf for tf, ms in TIMEFRAME_MS.items() if any(ms % length == 0 for length in lengths)]
    if not derivable:
        return "none"
    names = list(TIMEFRAME_MS)
    if derivable == names[names.index(derivable[0]) :]:
        return f"{derivable[0]} and above"
    return ", ".join(derivable)


def _fmt(ms: int) -> str:
    return ms_to_datetime(ms).strftime("%Y-%m-%d %H:%M UTC")
