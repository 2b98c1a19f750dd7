"""The one place that builds real adapters from the configuration.

Everything is built on first use, so a command pays only for what it touches
(`robson strategy list` never opens the database or the market).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from robson.config import Settings, api_keys, load_settings

if TYPE_CHECKING:  # plan pulls in strategies and their scan grammar: loaded when a command sizes or guards
    from robson.application.plan import Account


class Container:
    """Adapters and policies for one command run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def from_options(cls, *, config_path: str | None = None, overrides: dict[str, Any] | None = None) -> Container:
        return cls(load_settings(config_path=config_path, overrides=overrides))

    @cached_property
    def store(self):
        from robson.adapters.store import SqlStore

        path = self.settings.database_path
        lease = self.settings["locks.lease_seconds"]
        # A file's folder is created on first use (a fresh machine has no ~/.local/share/robson yet).
        if path is not None:
            return SqlStore.for_path(path, lease_seconds=lease)
        return SqlStore(self.settings.database_url, prepared_statements=self.settings["database_prepared_statements"],
                        lease_seconds=lease)

    @cached_property
    def market(self):
        """The configured market: the bundled sample (offline) or Binance."""
        if self.settings["market"] == "binance":
            return self.binance_market
        from robson.adapters.market.sample import SampleMarket

        def imported(symbol: str, timeframe: str, end_ms: int | None, limit: int | None):
            if not self.store_exists():
                return []
            with self.store.read() as session:
                return session.load_candles(symbol, timeframe, end_ms=end_ms, limit=limit)

        def series():
            if not self.store_exists():
                return []  # no database yet: nothing imported, and nothing to create just to learn that
            with self.store.read() as session:
                return session.candle_series()

        return SampleMarket(as_of=self.settings["as_of"], extra_candles=imported, imported_series=series,
                            cache_dir=self.cache_dir)

    @cached_property
    def gateway(self):
        from robson.adapters.binance.gateway import BinanceGateway

        s = self.settings
        return BinanceGateway(api_keys(s), base_url=s["binance.base_url"], timeout_seconds=float(s["binance.timeout_seconds"]),
                              recv_window_ms=s["binance.recv_window_ms"])

    @cached_property
    def binance_market(self):
        from robson.adapters.binance.market import BinanceMarket

        return BinanceMarket(self.gateway, exchange_info_ttl_seconds=self.settings["binance.exchange_info_ttl_seconds"])

    @cached_property
    def binance(self):
        import time

        from robson.adapters.binance.exchange import BinanceExchange

        return BinanceExchange(self.gateway, self.binance_market, sleep=time.sleep)

    def close(self) -> None:
        """Close the store if this run opened it: its connections, and SQLite's WAL checkpointed into the file."""
        if "store" in self.__dict__:
            self.store.close()

    def store_exists(self) -> bool:
        """Tell whether the store may hold anything: a SQLite file that exists, or a database URL."""
        path = self.settings.database_path
        return path is None or path.exists() or "store" in self.__dict__

    @property
    def live_account(self) -> bool:
        """A live account: Binance market data and API keys; validate then checks the real account."""
        return self.settings["market"] == "binance" and self.keys_present()

    def venue(self, name: str):
        """Return the exchange and market an execution on `name` ('paper' or 'binance') uses."""
        from robson.application.reconcile import Venue

        if name == "paper":
            return Venue(self.paper, self.market)
        if not self.keys_present():
            return Venue(None, self.market, "started on Binance: set BINANCE_API_KEY and BINANCE_API_SECRET to settle it")
        if not self.settings["execution.live_trading_enabled"]:
            return Venue(None, self.market, "started on Binance, but execution.live_trading_enabled is false")
        return Venue(self.binance, self.binance_market)

    @property
    def clock(self):
        """The market's clock: replayed time on the sample market, wall time live."""
        return self.market

    @cached_property
    def history(self):
        """The candles a backtest replays: the sample market (with imported candles), or Binance klines cached locally."""
        if self.settings["market"] == "binance":
            from robson.adapters.binance.history import BinanceHistory

            return BinanceHistory(self.gateway, self.binance_market, folder=self.cache_dir / "klines" / "binance")
        return self.market

    @cached_property
    def cache_dir(self):
        from robson.config import cache_dir

        return cache_dir(self.settings["cache_dir"])

    @cached_property
    def paper(self):
        from robson.adapters.paper import PaperExchange

        return PaperExchange(
            self.store, self.market,
            fee_rate=self.settings.fee_rate,
            maker_fee_rate=self.settings.maker_fee_rate,
            slippage_rate=self.settings.slippage_rate,
            starting_balances=self.settings["paper.balances"],
        )

    @cached_property
    def strategies(self):
        import sys

        from robson.adapters.strategies import StrategyCatalog

        def announce(message: str) -> None:
            print(message, file=sys.stderr)

        return StrategyCatalog.default(self.settings["strategies_dir"], announce)

    @property
    def wallet(self):
        """The wallet `robson account` shows and `capital: equity` values: Binance on a live account, else paper."""
        return self.binance if self.live_account else self.paper

    @cached_property
    def equity(self):
        """The wallet valued in account.quote_asset at the market's current prices."""
        from robson.application.account import equity

        return equity(self.wallet.balances(), self.market, self.settings["account.quote_asset"])

    @property
    def capital(self):
        """The capital risk percentages apply to: the configured number, or the current equity (capital: equity)."""
        capital = self.settings["capital"]
        return self.equity.total if capital == "equity" else capital

    @cached_property
    def account(self) -> Account:
        from robson.application.plan import Account

        s = self.settings
        return Account(
            capital=self.capital,
            capital_source="equity" if s["capital"] == "equity" else "config",
            fee_rate=s.fee_rate,
            limits=s.risk_limits(),
            validation_max_age_minutes=s["execution.validation_max_age_minutes"],
            stop_limit_offset_percent=s["execution.stop_limit_offset_percent"],
            risk_change_tolerance_percent=s["execution.risk_change_tolerance_percent"],
        )

    @cached_property
    def notifier(self):
        """The configured notifier (webhook, Telegram, e-mail), drained when the command ends; a no-op when none is set."""
        s = self.settings
        if not s["notify.webhook_url"] and not s["notify.telegram_chat_id"] and not s["notify.email_to"]:
            from robson.application.notify import NullNotifier

            return NullNotifier()
        import atexit

        from robson.adapters.notify import build_notifier

        notifier = build_notifier(s)
        if notifier.enabled:
            atexit.register(notifier.close)  # a process exit never waits longer than notify.drain_seconds
        return notifier

    def notify(self, build, context=None) -> None:
        """Send the notifications build() returns, after the state is saved; never raise, free when none is set.

        With the command's (click/Typer) context, sending is drained when the command ends, bounded
        by notify.drain_seconds; without it, at process exit.
        """
        notifier = self.notifier
        if not notifier.enabled:
            return
        if context is not None and not getattr(self, "_drain_registered", False):
            context.find_root().call_on_close(notifier.close)
            self._drain_registered = True
        try:
            notifier.notify([n for n in build() if n is not None])
        except Exception as e:  # a notification must never turn a saved trade into a failed command
            from robson.adapters.notify import log_line

            log_line(f"notify: could not build a notification ({type(e).__name__})")

    def keys_present(self) -> bool:
        return api_keys(self.settings) is not None

    def strategy_or_none(self, name: str):
        """Return the named strategy, or None if it no longer exists; raise StrategyError if its file is broken."""
        from robson.errors import NotFound

        try:
            return self.strategies.get(name)
        except NotFound:
            return None
