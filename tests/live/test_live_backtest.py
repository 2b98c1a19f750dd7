"""`robson backtest` with `market: binance`: klines fetched once through the real client, then replayed offline.

The loopback server serves a week of real BTCUSDT 5m candles (2021-06-01 … 06-07 from the sample),
moved forward by whole days so they end just before the server's clock. The backtest fetches them
page by page (1000 a request) into the cache folder; a second run makes no kline request at all; and
the trades are the sample market's own trades on the same candles, moved by the same days.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.cli.conftest import SHARED

DAY_MS = 86_400_000
FIRST, LAST = datetime(2021, 6, 1, tzinfo=UTC), datetime(2021, 6, 8, tzinfo=UTC)
ARGS = ("backtest", "--strategy", "ma-cross-5m", "--symbols", "BTCUSDT", "--stake", "100", "--max-open", "1",
        "--no-guards")


def week_of_candles() -> list[list]:
    rows = json.loads((SHARED / "data" / "binance" / "BTCUSDT-5m.json").read_text(), parse_float=Decimal)
    first, last = int(FIRST.timestamp() * 1000), int(LAST.timestamp() * 1000)
    return [row for row in rows if first <= row[0] < last]


def kline_requests(live) -> list:
    return [r for r in live.server.requests if r.path.endswith("/klines")]


def test_klines_are_fetched_once_then_replayed_offline_with_the_sample_markets_trades(live, tmp_path):
    now_ms = live.server.server_time_ms()
    shift = (now_ms // DAY_MS - 1) * DAY_MS - int(LAST.timestamp() * 1000)  # the week ends at yesterday's 00:00
    rows = [[row[0] + shift, *row[1:]] for row in week_of_candles()]
    live.server.set_klines("BTCUSDT", "5m", rows)
    start = datetime.fromtimestamp((int(FIRST.timestamp() * 1000) + shift) / 1000, UTC) + timedelta(days=1)
    end = start + timedelta(days=6)
    cache = {"ROBSON_CACHE_DIR": str(tmp_path / "cache")}
    window = ("--from", start.strftime("%Y-%m-%dT%H:%M"), "--to", end.strftime("%Y-%m-%dT%H:%M"))

    first = live.run(*ARGS, *window, "--json", **cache)
    fetched = len(kline_requests(live))
    second = live.run(*ARGS, *window, "--json", **cache)
    sample = live.run("--market", "sample", *ARGS, "--from", "2021-06-02", "--to", "2021-06-08", "--json", **cache)

    assert first.exit_code == 0, first.stderr
    # Only what the replay needs: six days from --from plus the indicators' warm-up, 1000 candles a page.
    cached = (tmp_path / "cache" / "klines" / "binance" / "BTCUSDT-5m.csv").read_text().splitlines()
    assert 6 * 288 < len(cached) < 7 * 288
    assert fetched == math.ceil(len(cached) / 1000) == 2
    assert len(kline_requests(live)) == fetched  # the second run read the cache only
    online, offline, replayed = (json.loads(r.stdout) for r in (first, second, sample))
    assert online["trades"] == offline["trades"]
    assert online["settings"]["market"] == "binance" and replayed["settings"]["market"] == "sample"

    def moved(trade: dict) -> tuple:
        entry = datetime.fromisoformat(trade["entry_time"].replace("Z", "+00:00")) - timedelta(milliseconds=shift)
        return entry, trade["entry_price"], trade["exit_price"], trade["exit_reason"], trade["pnl"]

    assert [moved(t) for t in online["trades"]] == [
        (datetime.fromisoformat(t["entry_time"].replace("Z", "+00:00")), t["entry_price"], t["exit_price"],
         t["exit_reason"], t["pnl"]) for t in replayed["trades"]]
    assert len(online["trades"]) > 10
    assert (tmp_path / "cache" / "klines" / "binance" / "BTCUSDT-5m.csv").is_file()
