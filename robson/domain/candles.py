"""Pure candle-series operations: resampling to a longer timeframe and merging two series."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from robson.domain.market import Candle
from robson.domain.money import ZERO
from robson.errors import InvalidInput


def resample(candles: Sequence[Candle], target_ms: int) -> list[Candle]:
    """Aggregate time-ordered candles into epoch-aligned target_ms buckets; raise InvalidInput if unordered.

    Open of the first, max high, min low, close of the last, summed volume. A bucket with no
    source candle produces nothing (gaps stay gaps); a partial bucket is built from what exists.
    """
    if target_ms <= 0:
        raise InvalidInput(f"target timeframe must be positive, got {target_ms} ms")
    result: list[Candle] = []
    bucket: list[Candle] = []
    bucket_start = None
    previous = None
    for candle in candles:
        if previous is not None and candle.open_time <= previous:
            raise InvalidInput(f"candles must be in strictly increasing time order (open_time {candle.open_time})")
        previous = candle.open_time
        start = candle.open_time - candle.open_time % target_ms
        if start != bucket_start and bucket:
            result.append(_aggregate(bucket_start, bucket))
            bucket = []
        bucket_start = start
        bucket.append(candle)
    if bucket:
        result.append(_aggregate(bucket_start, bucket))
    return result


def _aggregate(open_time: int, bucket: list[Candle]) -> Candle:
    return Candle(
        open_time=open_time,
        open=bucket[0].open,
        high=max(c.high for c in bucket),
        low=min(c.low for c in bucket),
        close=bucket[-1].close,
        volume=sum((c.volume for c in bucket), ZERO),
    )


def merge(base: Iterable[Candle], override: Iterable[Candle]) -> list[Candle]:
    """Return the union of two series oldest first; on the same open_time the override candle wins."""
    by_time = {candle.open_time: candle for candle in base}
    by_time.update((candle.open_time, candle) for candle in override)
    return [by_time[t] for t in sorted(by_time)]
