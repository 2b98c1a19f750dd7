"""The numbers `plan` prints: the SPEC worked example and the technical stop on the real candles.

The 15m stops are checked against an independent computation from the raw Binance 5m file in
../shared, resampled here with plain Python (nothing from robson.domain.stops or candles).
"""

import json
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import cache

import pytest

from tests.cli.conftest import SHARED, floats_in, parsed

D = Decimal
AS_OF = "2021-06-01T12:00"
SAMPLE_END = datetime(2021, 7, 17, 21, 10, tzinfo=UTC)  # close of the last bundled 5m candle


def test_spec_worked_example_sizes_0_00051_btc_risking_0_99(robson):
    result = robson("plan", "buy", "BTCUSDT", "--capital", "100", "--entry", "95432", "--stop", "93500", "--json")

    intent = parsed(result)
    assert result.stderr == ""
    assert floats_in(intent) == []
    assert (intent["entry"], intent["stop"], intent["quantity"]) == ("95432", "93500", "0.00051")
    assert (intent["entry_source"], intent["stop_method"]) == ("given", "manual")
    assert intent["capped_by"] is None
    assert D(intent["risk"]) == D("0.00051") * 1932
    assert D(intent["risk"]).quantize(D("0.01")) == D("0.99")
    assert intent["capital"] == "100"


def test_technical_stop_on_1h_is_the_2nd_support_minus_the_buffer(robson):
    # A colleague's hand check of the 100 closed 1h candles: 36440.48 (3 touches), then 35100.00 (2 touches).
    now = at(AS_OF)
    assert technical_stop(price_at(now), [low for _, low in closed_lows("BTCUSDT-1h.json", 60, now, 100)]) == (
        D("35064.9"), D("35100.0"), 2)

    result = robson("--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--timeframe", "1h", "--json")

    intent = parsed(result)
    assert result.stderr == ""
    assert intent["timeframe"] == "1h"
    assert intent["stop"] == "35064.9"
    assert intent["stop_method"] == "technical"
    assert "2nd support 35100.00 (2 touches)" in intent["stop_label"]


# --- an independent technical stop from the raw 5m file ------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@cache
def raw(name: str) -> list[list[Decimal]]:
    """Rows [open_time, open, high, low, close, volume] of a raw Binance file, numbers exact."""
    text = (SHARED / "data" / "binance" / name).read_text()
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def closed_lows(name: str, minutes: int, now: datetime, count: int) -> list[tuple[int, Decimal]]:
    """Return (open_time, low) of the last count candles of `minutes` closed by now, resampled from the file."""
    now_ms, length = int(now.timestamp() * 1000), minutes * 60_000
    lows: dict[int, Decimal] = {}
    for open_time, _open, _high, low, _close, _volume in raw(name):
        bucket = int(open_time) - int(open_time) % length
        if bucket + length <= now_ms:
            lows[bucket] = min(low, lows.get(bucket, low))
    return sorted(lows.items())[-count:]


def price_at(now: datetime) -> Decimal:
    """The sample market's price at now: the close of the last 5m candle closed by now."""
    now_ms = int(now.timestamp() * 1000)
    return [row for row in raw("BTCUSDT-5m.json") if row[0] + 300_000 <= now_ms][-1][4]


def technical_stop(entry: Decimal, lows: list[Decimal]) -> tuple[Decimal, Decimal, int]:
    """All In's stop by SPEC §2: (stop, 2nd support, touches); fails if there is no 2nd support."""
    swings = [lows[i] for i in range(2, len(lows) - 2) if all(lows[i] < lows[j] for j in (i - 2, i - 1, i + 1, i + 2))]
    tolerance = entry * D("0.005")
    groups: list[list[Decimal]] = []
    for low in sorted(swings):
        if groups and low - groups[-1][0] <= tolerance:
            groups[-1].append(low)
        else:
            groups.append([low])
    levels = sorted(((sum(g) / len(g), len(g)) for g in groups if len(g) >= 2 and sum(g) / len(g) < entry), reverse=True)
    support, touches = levels[1]
    stop = (support * D("0.999") / D("0.01")).to_integral_value(rounding=ROUND_FLOOR) * D("0.01")
    return stop, support, touches


@pytest.mark.parametrize(("as_of", "observed"), [
    (AS_OF, (D("36246.47"), D("36282.76"), 2)),
    (None, (D("31364.21"), D("31395.61"), 4)),
], ids=["as-of-2021-06-01T12:00", "default-time"])
def test_technical_stop_on_the_default_15m_matches_an_independent_computation(robson, as_of, observed):
    now = SAMPLE_END if as_of is None else at(as_of)
    entry = price_at(now)
    expected_stop, support, touches = technical_stop(entry, [low for _, low in closed_lows("BTCUSDT-5m.json", 15, now, 100)])
    assert (expected_stop, support.quantize(D("0.01")), touches) == observed  # what the CLI printed, now verified
    args = (["--as-of", as_of] if as_of else []) + ["plan", "buy", "BTCUSDT", "--json"]

    result = robson(*args)

    intent = parsed(result)
    assert result.stderr == ""
    assert intent["timeframe"] == "15m"
    assert D(intent["entry"]) == entry
    assert intent["stop_method"] == "technical"
    assert f"2nd support {support:.2f} ({touches} touches)" in intent["stop_label"]
    assert D(intent["stop"]) == expected_stop


def test_the_independent_window_is_the_last_100_closed_15m_candles():
    # Guards the helper above: at 12:00 the last closed 15m candle opened at 11:45.
    now = at(AS_OF)

    window = closed_lows("BTCUSDT-5m.json", 15, now, 100)

    assert len(window) == 100
    assert datetime.fromtimestamp(window[-1][0] / 1000, UTC) == now - timedelta(minutes=15)
    assert datetime.fromtimestamp(window[0][0] / 1000, UTC) == now - timedelta(minutes=15 * 100)
