"""The scan's indicators over whole series: numpy arrays in, one float64 array per output out.

The one place that knows pandas-ta (SPEC §3). A plain moving average (``sma``, ``volume_sma``)
is the mean of each window, computed here with numpy: the same numbers pandas-ta's ``ta.sma``
gives (to the last bits of a float), but independent of how much history precedes the window,
so a scan over its last candles and a backtest over years give bit-identical values, and a
moving-average strategy never pays pandas-ta's half-second import. Every other kind goes
through pandas-ta, imported inside the function so ``robson --help`` stays instant. Values
match TA-Lib from the first one on, because each is seeded the way TA-Lib seeds it (pandas-ta's
own defaults differ in warm-up):

- ema: ``ta.ema(presma=True, talib=False)``: the first value is the SMA of the first length closes;
- rsi: Wilder's averages of gains and losses seeded with their plain mean over the first length
  changes, then ``ta.rma``; pandas-ta's ``ta.rsi`` has no such option (it starts the average at
  the first change), so its early values drift from TA-Lib's for ~10 × length candles;
- atr: ``ta.atr(prenan=True, presma=True)`` (the first candle has no true range, as in TA-Lib);
  the partial value pandas-ta leaves one candle early is blanked;
- macd: the fast EMA starts slow − fast candles late, so both EMAs begin on the same candle as
  in TA-Lib; the signal line is the EMA of the MACD line from its first value;
- bbands: population standard deviation (``ddof=0``), as TA-Lib and charting tools do.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from robson.domain.conditions import IndicatorSpec
from robson.domain.market import Candle
from robson.errors import InvalidInput

BBANDS_PARTS = {"lower": "BBL", "middle": "BBM", "upper": "BBU", "bandwidth": "BBB", "percent": "BBP"}


PRICES = ("open", "high", "low", "close", "volume")
NATIVE_KINDS = ("sma", "volume_sma")


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
    if spec.kind == "bbands":
        std = float(spec.params["std"])
        bands = ta.bbands(source, length, lower_std=std, upper_std=std, ddof=0, talib=False)
        if bands is None:
            return {}
        return {part: bands[_column(bands, prefix)] for part, prefix in BBANDS_PARTS.items()}
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


def _column(frame: Any, prefix: str) -> str:
    return next(name for name in frame.columns if name.startswith(f"{prefix}_"))


