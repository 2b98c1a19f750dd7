"""Live freshness and age are judged on Binance's clock, whatever this machine's clock says (issue 10 item 9)."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.live.conftest import Live

MINUTE_MS = 60_000


@pytest.mark.parametrize("local_ahead_minutes", [6, 20, -6, -20])
def test_a_machine_clock_minutes_off_neither_stales_fresh_data_nor_ages_a_fresh_validation(
        live: Live, local_ahead_minutes: int) -> None:
    live.server.clock_offset_ms = -local_ahead_minutes * MINUTE_MS  # Binance's clock, against this machine's

    planned = live.ok("plan", "buy", "BTCUSDT", "--stop", "29000", "--target", "31500")
    validated = live.ok("validate", planned["id"])
    executed = live.ok("execute", planned["id"], "--live", "--acknowledge-risk")

    freshness = next(r for r in validated["results"] if r["guard"] == "data freshness")
    assert freshness["verdict"] == "PASS", freshness
    assert validated["verdict"] in ("PASS", "WARN"), validated
    assert executed["operation"]["status"] == "ACTIVE"
    binance_now = live.server.server_time_ms() / 1000
    validated_at = datetime.fromisoformat(live.ok("plan", "show", planned["id"])["validated_at"]).timestamp()
    assert abs(validated_at - binance_now) < 60  # stamped on Binance's clock, not this machine's
