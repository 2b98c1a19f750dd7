"""Domain objects for the store tests, with sensible defaults and per-test changes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

from robson.domain.intent import IntentSource, IntentStatus, TradingIntent
from robson.domain.market import Side

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_intent(intent_id: str = "pl-7f3a9c2e", **changes: object) -> TradingIntent:
    intent = TradingIntent(
        id=intent_id,
        symbol="BTCUSDT",
        side=Side.BUY,
        status=IntentStatus.PENDING,
        strategy="All In",
        source=IntentSource.MANUAL,
        timeframe="15m",
        capital=Decimal("100"),
        risk_percent=Decimal("1"),
        entry=Decimal("95432.00"),
        stop=Decimal("93500.00"),
        stop_method="technical: 2nd support",
        quantity=Decimal("0.00051000"),
        target=Decimal("99296.00"),
        created_at=T0,
        updated_at=T0,
    )
    return dataclasses.replace(intent, **changes)
