"""The scan's indicators over whole series: numpy arrays in, one float64 array per output out.

The one place that knows pandas-ta (SPEC §3). The window indicators are computed here with
numpy, each value from its own window only: a plain moving average (``sma``, ``volume_sma``) is
the mean of each window, and Bollinger Bands (``bbands``) are that mean ± std × the population
standard deviation of the same window. They give the numbers pandas-ta's ``ta.sma`` and
``ta.bbands`` give (to the last bits of a float; a test compares them on the bundled candles),
but independent of how much history precedes the window, so a scan over its last candles and a
backtest over years give bit-identical values. A strategy made of them never imports pandas or
pandas-ta, and no scan pays numba: ``ta.bbands`` is the only kind robson uses that runs a
numba-compiled function (``ta.sma``), whose first call in a process costs 150-300 ms even with
its on-disk cache. The recursive kinds (ema, rsi, atr, macd) go through pandas-ta, imported
inside the function so ``robson --help`` stays instant (its import also imports numba, but
these kinds compile nothing). Values match TA-Lib from the first one on, because each is
seeded the way TA-Lib seeds it (pandas-ta's own defaults differ in warm-up):

- ema: ``ta.ema(presma=True, talib=False)``: the first value is the SMA of the first length closes;
- rsi: Wilder's averages of gains and losses seeded with their plain mean over the first length
  changes, then ``ta.rma``; pandas-ta's ``ta.rsi`` has no such option (it starts the average at
  the first change), so its early values drift from TA-Lib's for ~10 × length candles;
- atr: ``ta.atr(prenan=True, presma=True)`` (the first candle has no true range, as in TA-Lib);
  the partial value pandas-ta leaves one candle early is blanked;
- macd: the fast EMA starts slow − fast candles late, so both EMAs begin on the same candle as
  in TA-Lib; the signal line is the EMA of the MACD line from its first value;
- bbands: population standard deviation (``ddof=0``), as TA-Lib and charting tools do; bandwidth
  is 100 × (upper − lower) / middle and percent (close − lower) / (upper − lower), a zero
  difference taken as the float epsilon, as pandas-ta does (it adds the epsilon to every value
  of a series that has a zero anywhere; here only to the zero, so no value depends on a later one).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from robson.domain.conditions import IndicatorSpec
from robson.domain.market import Candle
from robson.errors import InvalidInput

PRICES = ("open", "high", "low", "close", "volume")
NATIVE_KINDS = ("sma", "volume_sma", "bbands")  # computed here, without pandas
WINDOW_BLOCK = 1 << 20  # values copied at once when a deviation needs each window's own copy


def compute_indicators(specs: Sequence[IndicatorSpec], candles: Sequence[Candle]) -> dict[str, list[float | None]]:
    """Return every output of specs (e.g. 'ma4', 'bb.lower') as floats aligned to candles, None in warm-up.

    candles are closed, oldest first. With too few candles an indicator is all None. Raise
    InvalidInput for an unknown kind.
    """
    import numpy as np

    prices = {name: np.array([float(getattr(candle, name)) for candle in candles], dtype=np.float64)
              for name in PRICES}
    arrays = indicator_arrays(specs, prices)
    return {name: [None if math.isnan(value) else value for value in values.tolist()]
            for name, values in arrays.items()}


def indicator_arrays(specs: Sequence[IndicatorSpec], prices: dict[str, Any]) -> dict[str, Any]:
    """Return every output of specs as a float64 array aligned to the price arrays, NaN in warm-up.

    prices maps open, high, low, close and volume to equal-length float64 arrays, oldest first.
    Raise InvalidInput for an unknown kind.
    """
    import numpy as np

    count = len(prices["close"])
    result: dict[str, Any] = {}
    frame = None
    for spec in specs:
        if spec.kind in NATIVE_KINDS:
            source = prices["volume"] if spec.kind == "volume_sma" else prices[spec.source or "close"]
            if spec.kind == "bbands":
                bands = bollinger_bands(source, int(spec.params["length"]), float(spec.params["std"]))
                result.update((output, bands[output.partition(".")[2]]) for output in spec.outputs)
            else:
                result[spec.name] = window_mean(source, int(spec.params["length"]))
            continue
        if frame is None:
            import pandas as pd

            frame = pd.DataFrame({name: prices[name] for name in PRICES}, dtype="float64")
        columns = _compute(spec, frame)
        for output in spec.outputs:
            part = output.partition(".")[2] or output
            values = columns.get(part)
            result[output] = (np.full(count, np.nan) if values is None
                              else np.asarray(values, dtype=np.float64).copy())
    return result


def window_mean(values: Any, length: int) -> Any:
    """Return the mean of each length-long window ending at every index (NaN before the first full one).

    Each window is summed on its own, so a value depends only on the values in its window.
    """
    import numpy as np

    count = len(values)
    result = np.full(count, np.nan)
    if length < 1 or count < length:
        return result
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(values, dtype=np.float64), length)
    result[length - 1:] = windows.sum(axis=1) / length
    return result


def bollinger_bands(values: Any, length: int, std: float) -> dict[str, Any]:
    """Return Bollinger Bands of values by part (lower, middle, upper, bandwidth, percent), NaN before the first window.

    middle is window_mean; the deviation is the population one (ddof=0) of the same window,
    computed in two passes (mean, then squared distances from it), and exactly 0 for a window of
    equal values, as pandas' rolling variance gives it.
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    count = len(values)
    middle = window_mean(values, length)
    deviation = np.full(count, np.nan)
    if length >= 1 and count >= length:
        windows = np.lib.stride_tricks.sliding_window_view(values, length)
        means = middle[length - 1:]
        settled = deviation[length - 1:]  # a view: filled in place
        step = max(1, WINDOW_BLOCK // length)  # windows per block: years of candles need no big copy
        for start in range(0, len(windows), step):
            distances = windows[start:start + step] - means[start:start + step, None]
            settled[start:start + step] = np.sqrt((distances * distances).sum(axis=1) / length)
        # A window of equal values: each one equals its predecessor length − 1 times in a row.
        repeats = np.zeros(count, dtype=np.int64)
        repeats[1:] = np.cumsum(values[1:] == values[:-1])
        settled[repeats[length - 1:] - repeats[:count - length + 1] == length - 1] = 0.0
    lower, upper = middle - std * deviation, middle + std * deviation
    width = _non_zero(upper - lower)
    with np.errstate(divide="ignore", invalid="ignore"):  # a middle of 0 (a window of zero volume): inf, as in pandas
        bandwidth = 100 * width / middle
    return {"lower": lower, "middle": middle, "upper": upper, "bandwidth": bandwidth,
            "percent": _non_zero(values - lower) / width}


def _non_zero(difference: Any) -> Any:
    """The difference with every exact zero replaced by the float epsilon (pandas-ta's non_zero_range)."""
    import numpy as np

    return np.where(difference == 0, np.finfo(np.float64).eps, difference)


def _pandas_ta() -> Any:
    """Import pandas-ta quietly: its import trips pandas 3 deprecation warnings users cannot act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pandas_ta

    return pandas_ta


def _compute(spec: IndicatorSpec, frame: Any) -> dict[str, Any]:
    """Return the indicator's series by part name ('line', 'lower', ...) or by its own name."""
    ta = _pandas_ta()

    length = int(spec.params.get("length", 0))
    source = frame[spec.source] if spec.source else frame["close"]
    if spec.kind == "ema":
        return {spec.name: ta.ema(source, length, talib=False, presma=True)}
    if spec.kind == "rsi":
        return {spec.name: _rsi(source, length)}
    if spec.kind == "atr":
        values = ta.atr(frame["high"], frame["low"], frame["close"], length, talib=False, prenan=True, presma=True)
        if values is not None:
            values = values.copy()
            values.iloc[:length] = math.nan  # TA-Lib's first ATR is at candle index length
        return {spec.name: values}
    if spec.kind == "macd":
        return _macd(source, int(spec.params["fast"]), int(spec.params["slow"]), int(spec.params["signal"]))
    raise InvalidInput(f"unknown indicator kind '{spec.kind}'")


def _rsi(close: Any, length: int) -> Any:
    if len(close) <= length:
        return None
    change = close.diff()
    gains, losses = change.clip(lower=0), (-change).clip(lower=0)
    average_gain, average_loss = _wilder(gains, length), _wilder(losses, length)
    return 100 * average_gain / (average_gain + average_loss)


def _wilder(values: Any, length: int) -> Any:
    """Wilder's smoothing seeded like TA-Lib: the mean of values[1..length] sits at index length."""
    ta = _pandas_ta()

    seeded = values.copy()
    seed = values.iloc[1 : length + 1].mean()
    seeded.iloc[: length + 1] = math.nan
    seeded.iloc[length] = seed
    return ta.rma(seeded, length)


def _macd(close: Any, fast: int, slow: int, signal: int) -> dict[str, Any]:
    ta = _pandas_ta()

    if len(close) < slow:
        return {}
    fast_ema = ta.ema(close.iloc[slow - fast :], fast, talib=False, presma=True).reindex(close.index)
    slow_ema = ta.ema(close, slow, talib=False, presma=True)
    line = fast_ema - slow_ema
    started = line.dropna()
    signal_line = ta.ema(started, signal, talib=False, presma=True)
    signal_line = signal_line.reindex(close.index) if signal_line is not None else line * math.nan
    return {"line": line, "signal": signal_line, "histogram": line - signal_line}


