"""Each bundled scanning strategy over the real sample candles (BTCUSDT) fires where a hand check says it should.

The hand values below were computed from the raw candles with plain Decimal arithmetic (SMA: the
mean of the last n closes; Bollinger Bands: population deviation; RSI: Wilder's averages seeded
with the mean of the first 14 changes of the whole series), then written here as literals.
15m and 30m candles are resampled from the bundled 5m ones; indicators run over the whole
sample (2020-12-01 .. 2021-07-17), as a scan with that much history would see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal as D
from functools import cache
from typing import Any

import pytest

from robson.adapters.market.sample import SampleMarket
from robson.adapters.signal_engine import Evaluation, SignalEngine
from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
from robson.domain.conditions import Detection, Setup
from robson.domain.market import Candle, datetime_to_ms
from robson.domain.signals import SignalEvent, new_signal

NOW = datetime(2021, 7, 18, tzinfo=UTC)


@dataclass(frozen=True)
class Run:
    setup: Setup
    timeframe: str
    candles: list[Candle]
    evaluation: Evaluation

    def index(self, when: str) -> int:
        open_time = datetime_to_ms(datetime.strptime(when, "%Y-%m-%d %H:%M").replace(tzinfo=UTC))
        return next(i for i, candle in enumerate(self.candles) if candle.open_time == open_time)

    def detect_at(self, when: str) -> Detection | None:
        return self.evaluation.detection(self.setup, self.index(when))

    def decision_after(self, detection: Detection, name: str) -> SignalEvent | None:
        """Decide the signal with the closed candles of its window after it, as the next scans would."""
        signal = new_signal(detection, strategy=name, symbol="BTCUSDT", timeframe=self.timeframe, at=NOW)
        # Only the window's candles after the signal decide: later ones are never looked at.
        return self.evaluation.decide(signal, self.setup).event

    def detections(self) -> list[Detection]:
        found = self.evaluation.setup_mask(self.setup).nonzero()[0]
        return [d for i in found if (d := self.evaluation.detection(self.setup, int(i))) is not None]


@cache
def run(name: str) -> Run:
    strategy = StrategyCatalog([bundled_strategies_dir()]).get(name)
    assert strategy.scan is not None
    candles = SampleMarket().candles("BTCUSDT", strategy.timeframe, 100_000)
    evaluation = SignalEngine().evaluate(strategy.scan, candles)
    return Run(strategy.scan.setups[0], strategy.timeframe, candles, evaluation)


def assert_values(detection: Detection, expected: dict[str, str]) -> None:
    """Each value the scan recorded equals the hand value to within 1e-9 relative (floats from pandas-ta)."""
    for name, hand in expected.items():
        value = detection.values[name]
        assert value is not None, name
        assert abs(value - D(hand)) <= D(hand).copy_abs() * D("1e-9"), f"{name}: scan {value}, hand {hand}"


def fired(name: str, when: str) -> Detection:
    detection = run(name).detect_at(when)
    assert detection is not None, f"{name} should fire at {when}"
    return detection


def quiet(name: str, when: str) -> None:
    assert run(name).detect_at(when) is None, f"{name} should not fire at {when}"


def candle_times(detections: Sequence[Any]) -> list[str]:
    return [datetime.fromtimestamp(d.candle_open_time / 1000, UTC).strftime("%Y-%m-%d %H:%M") for d in detections]


# --- Rescue Forces: 15m, MA4 crosses above MA9 with volume > 1.5 × its 20-candle average --------


def test_rescue_forces_fires_on_2021_06_22_0100_where_ma4_crosses_ma9_on_double_volume():
    # 00:45: ma4 31536.345 ≤ ma9 31578.4322; 01:00: ma4 31876.6175 > ma9 31748.9989,
    # volume 3914.183256 > 1.5 × 1820.38583485 = 2730.5788; one boost (close 32811.63 > open 31783.14).
    detection = fired("rescue-forces", "2021-06-22 01:00")

    assert_values(detection, {
        "ma4": "31876.6175", "ma9": "31748.99888888889", "ma4[-1]": "31536.345", "ma9[-1]": "31578.43222222222",
        "volume": "3914.183256", "vol_avg20": "1820.38583485",
    })
    assert detection.confidence == D("0.75")
    assert run("rescue-forces").decision_after(detection, "rescue-forces") is SignalEvent.CONFIRM


def test_rescue_forces_fires_on_2021_06_22_1445_where_volume_clears_the_bar_by_a_hair():
    # ma4 29591.995 ≤ ma9 29657.7833 at 14:30, 29924.23 > 29777.9178 at 14:45;
    # volume 6321.778929 > 1.5 × 4185.3798738 = 6278.0698 (by 43.7).
    detection = fired("rescue-forces", "2021-06-22 14:45")

    assert_values(detection, {"ma4": "29924.23", "ma9": "29777.91777777778", "vol_avg20": "4185.3798738"})
    assert detection.confidence == D("0.75")


def test_rescue_forces_fires_on_2021_06_24_1700_with_full_confidence():
    # ma4 34164.8125 ≤ ma9 34201.96 at 16:45, 34388.565 > 34287.2722 at 17:00; volume 3380.63837 is
    # above 2.5 × 1246.12856 = 3115.3214 (burst) and the candle closed up: both boosts, confidence 1.
    detection = fired("rescue-forces", "2021-06-24 17:00")

    assert_values(detection, {"ma4": "34388.565", "ma9": "34287.27222222222", "vol_avg20": "1246.12856"})
    assert detection.confidence == D("1.00")


@pytest.mark.parametrize(("when", "why"), [
    ("2021-06-22 00:45", "the candle before the cross: ma4 31536.345 < ma9 31578.4322"),
    ("2021-06-22 07:00", "ma4 crosses ma9 but volume 752.625607 < 1.5 × average = 1231.3191"),
    ("2021-06-24 16:45", "ma4 34164.8125 < ma9 34201.96, volume 1595.694123 < 1823.6315"),
])
def test_rescue_forces_stays_quiet_where_a_hand_check_says_no(when, why):
    quiet("rescue-forces", when)


def test_most_rescue_forces_detections_on_the_sample_confirm_because_the_cross_still_holds():
    r = run("rescue-forces")
    detections = r.detections()

    decisions = [r.decision_after(d, "rescue-forces") for d in detections]

    assert len(detections) == 151
    assert decisions.count(SignalEvent.CONFIRM) == 147
    assert decisions.count(SignalEvent.INVALIDATE) == 4
    assert "2021-06-16 18:15" in [t for t, e in zip(candle_times(detections), decisions, strict=True)
                                  if e is SignalEvent.INVALIDATE]


# --- Smooth Sailing: 1h, MA50 above MA200 and the low pulls back to MA50, close back above it -----


def test_smooth_sailing_fires_on_2021_06_11_0700_on_a_pullback_to_ma50():
    # ma50 36413.941 > ma200 36108.4487; low 36450.0 ≥ 36413.7235 (ma50 × 1.002) at 06:00, then
    # low 36390.32 < 36486.7689 at 07:00 and close 37147.55 > ma50. Boost: rsi14 56.518 in 40..60.
    detection = fired("smooth-sailing", "2021-06-11 07:00")

    assert_values(detection, {
        "ma50": "36413.941", "ma200": "36108.4487", "low": "36390.32", "low[-1]": "36450.0",
        "ma50 × 1.002": "36486.768882", "rsi14": "56.518008858",
    })
    assert detection.confidence == D("0.66")
    assert run("smooth-sailing").decision_after(detection, "smooth-sailing") is SignalEvent.CONFIRM


def test_smooth_sailing_fires_on_2021_05_07_1400():
    # ma50 56747.955 > ma200 56270.9464; low 56900.0 ≥ 56830.2605 at 13:00, 56696.0 < 56861.4509 at
    # 14:00; close 57129.5 > ma50; rsi14 58.5238.
    detection = fired("smooth-sailing", "2021-05-07 14:00")

    assert_values(detection, {"ma50": "56747.955", "ma200": "56270.9464", "rsi14": "58.523811452"})
    assert detection.confidence == D("0.66")


@pytest.mark.parametrize(("when", "why"), [
    ("2021-06-11 06:00", "the candle before: low 36450.0 stays above ma50 × 1.002 = 36413.7235"),
    ("2021-06-11 08:00", "the candle after: low 36921.0 is back above 36543.4037"),
    ("2021-06-22 12:00", "a downtrend: ma50 33281.4998 < ma200 36954.859"),
])
def test_smooth_sailing_stays_quiet_where_a_hand_check_says_no(when, why):
    quiet("smooth-sailing", when)


# --- Bounce Back: 30m, close below the lower Bollinger Band with RSI(14) < 30 ---------------------


def test_bounce_back_fires_on_2021_06_22_1330_below_the_band_and_oversold():
    # close 29238.99 < bb.lower 29420.3606 (mean 31679.612 − 2 population σ); rsi14 21.934 < 30;
    # boost: volume 9695.137203 > 1.5 × 4630.2972 = 6945.4458.
    detection = fired("bounce-back", "2021-06-22 13:30")

    assert_values(detection, {"close": "29238.99", "bb.lower": "29420.36058406949", "rsi14": "21.934065880659"})
    assert detection.confidence == D("0.75")
    assert run("bounce-back").decision_after(detection, "bounce-back") is SignalEvent.CONFIRM


def test_bounce_back_fires_on_2021_05_19_1300_in_the_crash_with_full_confidence():
    # close 33601.85 < bb.lower 35667.9619; rsi14 17.996 (< 20: boost); volume 25382.743178 > 11750.6134.
    detection = fired("bounce-back", "2021-05-19 13:00")

    assert_values(detection, {"bb.lower": "35667.96186640262", "rsi14": "17.995602591425", "vol_avg20": "7833.742249"})
    assert detection.confidence == D("1.00")


@pytest.mark.parametrize(("when", "why"), [
    ("2021-06-22 13:00", "close 29874.56 is just above bb.lower 29836.7176 (rsi14 25.68 alone is not enough)"),
    ("2021-06-22 14:00", "close 29730.77 > bb.lower 29174.7792 and rsi14 30.399 ≥ 30"),
    ("2021-05-19 13:30", "the rebound: close 35863.06 > bb.lower 35232.7583, rsi14 34.197"),
])
def test_bounce_back_stays_quiet_where_a_hand_check_says_no(when, why):
    quiet("bounce-back", when)


# --- Mean Reversion MA99: 15m, the close crosses more than 3 % below MA99 --------------------------


def test_mean_reversion_ma99_fires_on_2021_05_04_0045_when_the_stretch_begins():
    # close 56627.59 ≥ 0.97 × ma99 = 56121.6202 at 00:30; close 55291.71 < 0.97 × 57840.3169 =
    # 56105.1074 at 00:45. Boost: rsi14 21.236 < 30 (not 5 % below: 55291.71 > 54948.301).
    detection = fired("mean-reversion-ma99", "2021-05-04 00:45")

    assert_values(detection, {
        "close": "55291.71", "ma99": "57840.31686868687", "ma99 × 0.97": "56105.10736262626",
        "close[-1]": "56627.59", "ma99 × 0.97[-1]": "56121.62019191919", "rsi14": "21.235759747",
    })
    assert detection.confidence == D("0.75")


def test_mean_reversion_ma99_fires_on_2021_07_05_1730_and_the_next_close_confirms():
    # close 33587.38 ≥ 33494.4225 at 17:15, 33192.41 < 0.97 × 34507.3496 = 33472.1291 at 17:30;
    # rsi14 26.994. The 17:45 close 33697.06 is above the signal high 33603.06: confirmed.
    detection = fired("mean-reversion-ma99", "2021-07-05 17:30")

    assert_values(detection, {"ma99": "34507.3495959596", "rsi14": "26.994299191"})
    assert detection.confidence == D("0.75")
    assert run("mean-reversion-ma99").decision_after(detection, "mean-reversion-ma99") is SignalEvent.CONFIRM


@pytest.mark.parametrize(("when", "why"), [
    ("2021-05-04 01:00", "still 3 % below (55427.27 < 56087.8939) but the stretch began a candle earlier"),
    ("2021-07-05 17:15", "the candle before: close 33587.38 ≥ 0.97 × ma99 = 33494.4225"),
])
def test_mean_reversion_ma99_stays_quiet_where_a_hand_check_says_no(when, why):
    quiet("mean-reversion-ma99", when)
