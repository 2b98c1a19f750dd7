"""Benchmark robson's own overhead for one LIVE execute against the loopback Binance server (prints figures).

Each run plans and validates a BTCUSDT buy (not timed), then times the execute use case as the CLI calls
it: a fresh Container (new gateway, clock sync, exchangeInfo), the lock, the store writes, and the HTTP
requests through python-binance. Reported, median of N (default 20):
  total         wall time of execute
  server        time the server spent handling those requests
  round trips   requests × a bare python-binance round trip (GET /api/v3/time) measured here
  robson        total − round trips: robson's own work beyond the HTTP round trips   target ≤ 50 ms
Usage: python bench/bench_live.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.binance_server import BinanceTestServer  # noqa: E402
from tests.live.conftest import seed_candles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs

    from robson.application.execute import LiveGate, execute
    from robson.application.plan import PlanRequest, plan
    from robson.application.validate import validate
    from robson.bootstrap import Container
    from robson.domain.market import Side

    key, secret = "bench-key", "bench-secret"
    with BinanceTestServer(api_key=key, api_secret=secret) as server, tempfile.TemporaryDirectory() as tmp:
        server.enforce_weight_limit = False

        def seed() -> None:  # a clean book each run: Binance allows only 5 open stops per symbol
            server.reset()
            server.set_balance("USDT", "100000000")
            server.set_price("BTCUSDT", "30000")
            seed_candles(server, "BTCUSDT", "15m", Decimal("30000"))

        seed()
        os.environ.update({"BINANCE_API_KEY": key, "BINANCE_API_SECRET": secret})
        overrides = {"database": str(Path(tmp) / "bench.db"), "market": "binance"}
        settings_env = {"ROBSON_BINANCE__BASE_URL": server.base_url, "ROBSON_LIVE_TRADING": "true",
                        "ROBSON_CAPITAL": "10000000", "ROBSON_RISK__MAX_OPEN_POSITIONS": "1000",
                        "ROBSON_RISK__MAX_POSITIONS_PER_SYMBOL": "1000",
                        "ROBSON_RISK__MAX_TOTAL_EXPOSURE_PERCENT": "100000"}
        os.environ.update(settings_env)
        os.environ["ROBSON_CONFIG"] = str(Path(tmp) / "none.yaml")
        Path(os.environ["ROBSON_CONFIG"]).write_text("{}\n")

        client = server.client()
        bare = []
        for _ in range(50):
            started = time.perf_counter()
            client.get_server_time()
            bare.append(time.perf_counter() - started)
        round_trip = statistics.median(bare)

        totals, servers, requests, robson = [], [], [], []
        gate = LiveGate(requested=True, acknowledged=True, live_enabled=True, keys_present=True)
        for _ in range(runs):
            seed()
            c = Container.from_options(overrides=overrides)
            strategy = c.strategies.get("all-in")
            intent = plan(PlanRequest(side=Side.BUY, symbol="BTCUSDT", strategy=strategy, stop=Decimal("29000")),
                          store=c.store, market=c.market, exchange=c.binance, account=c.account, clock=c.clock)
            validate(intent.id, strategy=strategy, store=c.store, market=c.market, exchange=c.binance,
                     account=c.account, clock=c.clock)
            c = Container.from_options(overrides=overrides)  # a new command: nothing cached
            count, handled = len(server.requests), server.handling_seconds
            started = time.perf_counter()
            execute(intent.id, strategy=strategy, store=c.store, market=c.binance_market, exchange=c.binance,
                    account=c.account, clock=c.binance_market, gate=gate)
            total = time.perf_counter() - started
            n = len(server.requests) - count
            totals.append(total)
            servers.append(server.handling_seconds - handled)
            requests.append(n)
            robson.append(total - n * round_trip)
            c.store.close()

    ms = 1000
    print(f"LIVE execute on loopback, median of {runs}:")
    print(f"  total            {statistics.median(totals) * ms:7.1f} ms")
    print(f"  server handling  {statistics.median(servers) * ms:7.1f} ms")
    print(f"  requests         {statistics.median(requests):7.0f}   (bare round trip {round_trip * ms:.2f} ms)")
    print(f"  total - server   {statistics.median([t - s for t, s in zip(totals, servers)]) * ms:7.1f} ms")
    print(f"  robson beyond the HTTP round trips {statistics.median(robson) * ms:7.1f} ms   (target ≤ 50 ms)")


if __name__ == "__main__":
    main()
