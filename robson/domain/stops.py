"""Stop placement methods (SPEC §2): technical stop with its fallbacks, MA, ATR, fixed percent.

Pure functions over closed candles (oldest first). Prices returned here are not yet on the
exchange tick: sizing rounds them away from entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from robson.domain.market import Candle, Side

STOP_KINDS = ("technical", "moving_average", "atr", "fixed_percent")


@dataclass(frozen=True, slots=True)
class StopSettings:
    """How a strategy places its stop; defaults are SPEC §2's technical stop."""

    kind: str = "technical"
    # technical
    level: int = 2  # take the Nth support (resistance for a short), nearest first
    lookback: int = 100  # closed candles examined
    swing_width: int = 2  # candles on each side a swing low must be below
    tolerance_percent: Decimal = Decimal("0.5")  # of entry: swing lows this close form one level
    min_touches: int = 2
    buffer_percent: Decimal = Decimal("0.1")
    fallback_lookback: int = 20  # lowest low of the last N candles
    # atr (also the technical stop's second fallback)
    atr_period: int = 14
    atr_multiplier: Decimal = Decimal("1.5")
    # moving_average
    ma_period: int = 9
    # fixed_percent (also the technical stop's last fallback)
    percent: Decimal = Decimal("2")


@dataclass(frozen=True, slots=True)
class StopResult:
    """A stop price and which method produced it, labelled for the user."""

    price: Decimal
    method: str  # e.g. "technical", "fallback: lowest low", "fallback: ATR", "fallback: percent"
    label: str  # one line for humans, with the numbers
    details: dict[str, Any] = field(default_factory=dict)


def compute_stop(side: Side, entry: Decimal, candles: Sequence[Candle], settings: StopSettings) -> StopResult:
    """Return the stop for a position entered at entry; raise InvalidInput on bad settings."""
    raise NotImplementedError
