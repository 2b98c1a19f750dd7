"""Candle history as arrays, for the backtest: fast to load, exact on demand.

A HistorySeries holds one symbol's closed candles of one timeframe as numpy arrays (what the
signal engine evaluates and what the exit search scans) and gives back any candle exactly, as
Decimals read from the source text, for the money decisions (robson/domain/lifecycle.py and
the candle walk) that follow. STYLE 17: vectorised at the edges, exact at the core.

Resampling to a longer timeframe happens here on the arrays, and gives bit for bit the floats
the sample market's Decimal resampling gives (volumes are summed in whole multiples of 1e-8,
then divided once), so a scan and a backtest evaluate the very same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from robson.adapters.signal_engine import Series
from robson.domain.candles import resample
from robson.config import cache_dir as cache_dir  # where the arrays are kept; re-exported for the market adapters
from robson.domain.market import Candle

VOLUME_SCALE = 10**8
SEARCH_CHUNK = 512  # candles scanned at once when looking for the next exit candidate


def parse_lines(lines: Sequence[str]) -> Series:
    """Parse ``open_time,open,high,low,close,volume`` lines (oldest first) into arrays."""
    if not lines:
        empty = np.zeros(0)
        return Series(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
    values = np.fromstring(",".join(lines), sep=",").reshape(-1, 6)
    return Series(values[:, 0].astype(np.int64), *(np.ascontiguousarray(values[:, k]) for k in range(1, 6)))


@cache
def month_arrays(path: Path, read_lines: Callable[[Path], Sequence[str]], folder: Path) -> tuple[Any, bool]:
    """Return a bundled month file's rows as an (n, 6) float64 array and whether floats give its decimals back exactly.

    Parsed once, then kept in the cache folder (keyed by the file's name, size and time), so a
    backtest reads binary arrays instead of parsing text. Exact means every number's shortest float
    text reads as the same decimal, so exact candles can be rebuilt from the arrays alone.
    """
    stat = path.stat()
    key = f"{path.parent.parent.name}-{path.parent.name}-{path.name.split('.')[0]}-{stat.st_size}-{stat.st_mtime_ns}"
    cached = folder / "arrays" / f"{key}.npz"
    try:
        with np.load(cached) as stored:
            return stored["rows"], bool(stored["exact"])
    except (OSError, KeyError, ValueError):
        pass
    lines = read_lines(path)
    rows = np.fromstring(",".join(lines), sep=",").reshape(-1, 6) if lines else np.zeros((0, 6))
    exact = all(Decimal(repr(float(token))) == Decimal(token) for line in lines for token in line.split(",")[1:])
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(partial, rows=rows, exact=np.array(exact))
        partial.replace(cached)
    except OSError:
        pass  # no cache folder (read-only home): parse again next time
    return rows, exact


def float_candle(open_time: int, values: Sequence[float]) -> Candle:
    """A candle rebuilt from floats that are known to give back the source's decimals exactly."""
    o, h, lo, c, v = (Decimal(repr(float(x))) for x in values)
    return Candle(int(open_time), o, h, lo, c, v)


def line_candle(line: str) -> Candle:
    open_time, open_, high, low, close, volume = line.split(",")
    return Candle(int(open_time), Decimal(open_), Decimal(high), Decimal(low), Decimal(close), Decimal(volume))


def candle_line(candle: Candle) -> str:
    return ",".join((str(candle.open_time), *(format(getattr(candle, k), "f")
                                              for k in ("open", "high", "low", "close", "volume"))))


class HistorySeries:
    """One symbol's closed candles of one timeframe: arrays for the engine, exact candles on demand."""

    def __init__(self, symbol: str, timeframe: str, series: Series, exact: Callable[[int], Candle]) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.series = series
        self._exact = exact
        self._cache: dict[int, Candle] = {}

    @classmethod
    def from_rows(cls, symbol: str, timeframe: str, rows: Sequence[str | Candle]) -> HistorySeries:
        """Build from source rows oldest first: text lines (parsed in bulk) or Candles (imported ones)."""
        lines = [row if isinstance(row, str) else candle_line(row) for row in rows]
        return cls(symbol, timeframe, parse_lines(lines),
                   lambda i: rows[i] if isinstance(rows[i], Candle) else line_candle(rows[i]))

    def __len__(self) -> int:
        return len(self.series)

    def open_time(self, index: int) -> int:
        return int(self.series.open_time[index])

    def index_at_or_after(self, open_ms: int) -> int:
        """The index of the first candle opening at or after open_ms (len when none)."""
        return int(np.searchsorted(self.series.open_time, open_ms, side="left"))

    def candle(self, index: int) -> Candle:
        """The candle at index, exactly as the source has it."""
        found = self._cache.get(index)
        if found is None:
            found = self._cache[index] = self._exact(index)
        return found

    def candles(self, start: int, stop: int) -> list[Candle]:
        return [self.candle(i) for i in range(max(0, start), min(stop, len(self)))]

    def until(self, end_ms: int) -> HistorySeries:
        """The candles closed by end_ms (open + length ≤ end_ms), given the timeframe's length in ms."""
        from robson.domain.market import timeframe_ms

        stop = int(np.searchsorted(self.series.open_time, end_ms - timeframe_ms(self.timeframe), side="right"))
        exact = self._exact
        return HistorySeries(self.symbol, self.timeframe, self.series.slice(0, stop),
                             lambda i: exact(i) if i < stop else _outside(i))

    def first_event(self, start: int, stop: int, *, low_at_or_below: float | None = None,
                    high_at_or_above: float | None = None) -> int | None:
        """The first index in [start, stop) whose low reaches low_at_or_below or high reaches high_at_or_above.

        Compared in float: a candle that touches a price exactly is always found (rounding a
        decimal to a float never reverses an order), so the result never skips a candle the exact
        walk would act on; it may stop at one it then finds untouched.
        """
        low, high = self.series.low, self.series.high
        position, chunk = start, SEARCH_CHUNK
        while position < stop:
            end = min(stop, position + chunk)
            hits = np.zeros(end - position, dtype=bool)
            if low_at_or_below is not None:
                hits |= low[position:end] <= low_at_or_below
            if high_at_or_above is not None:
                hits |= high[position:end] >= high_at_or_above
            found = int(hits.argmax())
            if hits[found]:
                return position + found
            position, chunk = end, chunk * 2
        return None


def _outside(index: int) -> Candle:
    raise IndexError(f"candle {index} is after the end of this history")


def resample_history(fine: HistorySeries, timeframe: str, target_ms: int) -> HistorySeries:
    """Aggregate a finer series into epoch-aligned target_ms buckets (gaps stay gaps), as domain.candles.resample does."""
    series = fine.series
    if len(series) == 0:
        return HistorySeries(fine.symbol, timeframe, series, _outside)
    buckets = series.open_time - series.open_time % target_ms
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.append(starts[1:], len(series))
    scaled = np.rint(series.volume * VOLUME_SCALE)
    if np.array_equal(scaled / VOLUME_SCALE, series.volume) and scaled.max(initial=0) < 2**53 / 1024:
        volume = np.add.reduceat(scaled, starts) / VOLUME_SCALE  # exact sums, one correctly rounded division
    else:  # volumes finer than 1e-8: sum the exact decimals
        volume = np.array([float(sum((fine.candle(i).volume for i in range(a, b)), Decimal(0)))
                           for a, b in zip(starts, ends, strict=True)])
    resampled = Series(buckets[starts], series.open[starts], np.maximum.reduceat(series.high, starts),
                       np.minimum.reduceat(series.low, starts), series.close[ends - 1], volume)

    def exact(index: int) -> Candle:
        return resample(fine.candles(int(starts[index]), int(ends[index])), target_ms)[0]

    return HistorySeries(fine.symbol, timeframe, resampled, exact)


def as_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def describe_range(series: HistorySeries) -> tuple[int, int] | None:
    """(first open, last open) of a non-empty series."""
    if not len(series):
        return None
    return series.open_time(0), series.open_time(len(series) - 1)


__all__: list[Any] = ["HistorySeries", "parse_lines", "resample_history"]
