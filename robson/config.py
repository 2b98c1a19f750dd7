"""Configuration: defaults < config file < ROBSON_* environment < command-line flags.

Every setting is declared once in FIELDS (dotted name, parser, default, help). A bad value
raises ConfigError naming where it came from, the field and the problem. API keys never
enter Settings: `api_keys()` reads them from the environment or a 0600 key file on demand.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from robson.domain.guards import RiskLimits
from robson.domain.money import parse_decimal
from robson.errors import ConfigError, InvalidInput

CONFIG_FILENAME = ".robson.yaml"
ENV_PREFIX = "ROBSON_"


# --- parsers: raise ValueError with the problem --------------------------------------------


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"must be a number, got {value!r}")
    try:
        return parse_decimal(value, "value", allow_zero=True)
    except InvalidInput as e:
        raise ValueError(e.message.replace("value ", "")) from None


def _positive_decimal(value: Any) -> Decimal:
    number = _decimal(value)
    if number <= 0:
        raise ValueError(f"must be greater than 0, got {value!r}")
    return number


def _capital(value: Any) -> Decimal | str:
    """A fixed capital (a number > 0), or 'equity': the account's current equity, compounding."""
    if isinstance(value, str) and value.strip().lower() == "equity":
        return "equity"
    try:
        if isinstance(value, bool) or value is None:
            raise InvalidInput("not a number")
        number = parse_decimal(value, "capital", positive=False)
    except InvalidInput:
        raise ValueError(f"must be a number greater than 0 or 'equity', got {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be greater than 0 or 'equity', got {value!r}")
    return number


def _decimal_within(*, above: str | None = None, below: str | None = None, at_most: str | None = None) -> Callable[[Any], Decimal]:
    """Return a parser of a number (≥ 0) bounded as given: what the commands would refuse, refused when loading."""
    rules = [f"greater than {above}" if above is not None else "at least 0"]
    rules += [f"below {below}"] if below is not None else [f"at most {at_most}"] if at_most is not None else []

    def parse(value: Any) -> Decimal:
        number = _decimal(value)
        if ((above is not None and number <= Decimal(above)) or (below is not None and number >= Decimal(below))
                or (at_most is not None and number > Decimal(at_most))):
            raise ValueError(f"must be {' and '.join(rules)}, got {value!r}")
        return number

    return parse


def _whole(minimum: int, maximum: int) -> Callable[[Any], int]:
    """Return a parser of a whole number from minimum to maximum, written in ASCII digits."""

    def parse(value: Any) -> int:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isascii() or not text.lstrip("+-").isdigit():
            raise ValueError(f"must be a whole number, got {value!r}")
        if len(text) > 20 or int(text) > maximum:
            raise ValueError(f"must be at most {maximum:,}, got {value if len(text) <= 40 else text[:37] + '…'}")
        if int(text) < minimum:
            raise ValueError(f"must not be negative, got {value!r}" if minimum == 0 else
                             f"must be at least {minimum}, got {value!r}")
        return int(text)

    return parse


_int = _whole(0, 1_000_000)
_minutes = _whole(0, 10 * 366 * 24 * 60)  # ten years: any further and times run off the calendar
_seconds = _whole(0, 10 * 366 * 24 * 3600)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {value!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError(f"must be a non-empty text, got {value!r}")
    return str(value).strip()


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else _text(value)


def _market(value: Any) -> str:
    text = _text(value).lower()
    if text not in ("sample", "binance"):
        raise ValueError(f"must be 'sample' or 'binance', got {value!r}")
    return text


def _url(value: Any) -> str:
    from urllib.parse import urlsplit

    text = _text(value)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # Shown redacted: a webhook URL may hold a secret.
        raise ValueError(f"must be an http:// or https:// URL, got {redact_url(text)!r}")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise ValueError(f"must not contain spaces or control characters (encode a space as %20), got {redact_url(text)!r}")
    return text


def _optional_url(value: Any) -> str | None:
    return None if value in (None, "") else _url(value)


def _notify_events(value: Any) -> str:
    from robson.application.notify import EVENT_KINDS

    names = value if isinstance(value, list | tuple) else str(value).replace(" ", "").split(",")
    wanted = {str(n).strip().lower() for n in names if str(n).strip()}
    if wanted in ({"all"}, {"none"}):
        return wanted.pop()
    unknown = sorted(wanted - set(EVENT_KINDS))
    if unknown or not wanted:
        raise ValueError(f"unknown event {', '.join(unknown) or '(none given)'}: use 'all', 'none' or a list of "
                         f"{', '.join(EVENT_KINDS)}")
    return ",".join(k for k in EVENT_KINDS if k in wanted)


SMTP_TLS_MODES = ("starttls", "tls", "none")


def _smtp_tls(value: Any) -> str:
    text = _text(value).lower()
    if text not in SMTP_TLS_MODES:
        raise ValueError(f"must be starttls (upgrade a plain connection, port 587), tls (TLS from the start, port 465) "
                         f"or none (a server on 127.0.0.1 only), got {value!r}")
    return text


def _host(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = _text(value).strip("[]")
    if not text.isascii() or any(ch.isspace() or ch in "/@?#[]" for ch in text):
        raise ValueError(f"must be a host name or address like smtp.example.com, got {value!r}")
    if text.count(":") == 1:  # host:port (an IPv6 address has more colons)
        raise ValueError(f"must be the host alone; give the port as notify.smtp_port, got {value!r}")
    return text


def _optional_port(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return _whole(1, 65535)(value)


def _address(value: Any) -> str:
    text = _text(value)
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() or ord(ch) < 0x20 or ch in ",;<>" for ch in text):
        raise ValueError(f"must be an e-mail address like trader@example.com, got {value!r}")
    return text


def _optional_address(value: Any) -> str | None:
    return None if value in (None, "") else _address(value)


def _optional_addresses(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    return [_address(name) for name in _names(value)]


def is_loopback(host: str) -> bool:
    """Tell whether host names this machine for certain: localhost or a loopback address (127.0.0.0/8, ::1)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """Return url with everything after the host hidden (paths and queries of webhooks often hold secrets)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<redacted>"
    if not parts.scheme or not host:
        return "<redacted>"
    hidden = "/<redacted>" if (parts.path not in ("", "/") or parts.query or parts.fragment or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


def _names(value: Any) -> list[str]:
    """A YAML list or comma-separated text of names, e.g. BTCUSDT,ETHUSDT."""
    items = value if isinstance(value, list | tuple) else str(value).split(",") if isinstance(value, str) else None
    if items is None:
        raise ValueError(f"must be a list or comma-separated names, got {value!r}")
    names = [str(item).strip() for item in items if str(item).strip()]
    if not names:
        raise ValueError("must name at least one")
    return list(dict.fromkeys(names))


def _symbols(value: Any) -> list[str]:
    return [name.upper() for name in _names(value)]


def _optional_names(value: Any) -> list[str] | None:
    return None if value in (None, "", []) else [name.lower() for name in _names(value)]


def _optional_asset(value: Any) -> str | None:
    return None if value in (None, "") else _text(value).upper()


def _text_asset(value: Any) -> str:
    text = _text(value).upper()
    if not text.isascii() or not text.isalnum() or not 2 <= len(text) <= 20:
        raise ValueError(f"must be an asset like USDT (2 to 20 letters or digits), got {value!r}")
    return text


def _workers(value: Any) -> int:
    number = _int(value)
    if not 1 <= number <= 32:
        raise ValueError(f"must be from 1 to 32, got {value!r}")
    return number


def parse_time(value: Any) -> datetime:
    """Parse an ISO-8601 time ('2021-06-01T12:00', '2021-06-01 12:00Z'); naive means UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace(" ", "T")
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"must be an ISO time like 2021-06-01T12:00 (UTC), got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _past_time(value: Any) -> datetime | None:
    """A replay time: it has to have happened (times near year 9999 also overflow every candle sum)."""
    if value in (None, ""):
        return None
    moment = parse_time(value)
    if moment > datetime.now(UTC):
        raise ValueError(f"must not be in the future (a replay time is one that has passed), got {value!r}")
    return moment


def _balances(value: Any) -> dict[str, Decimal]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError("must be a mapping of asset to amount, e.g. {USDT: 1000}")
    result = {}
    for asset, amount in value.items():
        try:
            result[_text(asset).upper()] = _decimal(amount)
        except ValueError as e:
            raise ValueError(f"{asset}: {e}") from None
    return result


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # dotted path in the YAML file
    parse: Callable[[Any], Any]
    default: Any
    help: str


FIELDS: tuple[Field, ...] = (
    Field("database", _optional_text, None, "SQLite file path or database URL; default: the user data directory"),
    Field("database_prepared_statements", _bool, True, "PostgreSQL: let the driver prepare statements on the server; false behind PgBouncer in transaction mode"),
    Field("market", _market, "sample", "market data: 'sample' (bundled real Binance history, offline) or 'binance'"),
    Field("as_of", _past_time, None, "replay the sample market at this UTC time (default: end of the data)"),
    Field("capital", _capital, Decimal("1000"), "capital in quote currency that risk percentages apply to, or 'equity': the account's current equity at market prices (compounding)"),
    Field("account.quote_asset", _text_asset, "USDT", "asset the account's equity is valued in (robson account, capital: equity)"),
    Field("default_strategy", _text, "all-in", "strategy used when --strategy is not given"),
    Field("strategies_dir", _optional_text, None, "folder of user strategy YAML files (added to the bundled ones)"),
    Field("cache_dir", _optional_text, None, "folder for parsed candle arrays and Binance klines a backtest fetched; default: the user cache directory"),
    Field("fees.taker_percent", _decimal_within(at_most="10"), Decimal("0.1"), "taker fee per side, percent of notional"),
    Field("fees.maker_percent", _decimal_within(at_most="10"), Decimal("0.1"), "maker fee, percent of notional: what a limit entry resting on the book pays when it fills"),
    Field("risk.max_risk_percent", _positive_decimal, Decimal("2"), "account cap on risk per trade (strategies set their own ≤ this; hard ceiling 2)"),
    Field("risk.max_position_percent", _positive_decimal, Decimal("50"), "largest single position notional, percent of capital (sizing caps at it; validate fails above it)"),
    Field("risk.warn_entry_gap_percent", _decimal_within(below="100"), Decimal("0.5"), "validate warns when the planned entry is this far (percent) from the market price"),
    Field("risk.daily_loss_percent", _positive_decimal, Decimal("2"), "no new entries once today's realized loss reaches this percent of capital"),
    Field("risk.monthly_drawdown_percent", _positive_decimal, Decimal("4"), "trading HALTED once this month's realized loss reaches this percent"),
    Field("risk.max_open_positions", _int, 5, "open operations allowed in total"),
    Field("risk.max_positions_per_symbol", _int, 2, "open operations allowed per symbol"),
    Field("risk.max_total_exposure_percent", _positive_decimal, Decimal("80"), "total open notional, percent of capital"),
    Field("risk.min_stop_distance_percent", _decimal_within(below="100"), Decimal("0.1"), "stops closer than this fail validation"),
    Field("risk.warn_stop_distance_percent", _decimal_within(below="100"), Decimal("0.5"), "stops closer than this warn"),
    Field("risk.max_stop_distance_percent", _decimal_within(above="0", below="100"), Decimal("10"), "stops further than this fail validation"),
    Field("risk.max_data_age_minutes", _minutes, 5, "price and candles older than this fail validation"),
    Field("risk.cooldown_minutes", _minutes, 15, "minutes after a stop-out before the same symbol may be entered again"),
    Field("execution.validation_max_age_minutes", _minutes, 15, "execute refuses a validation older than this (market time)"),
    Field("execution.live_trading_enabled", _bool, False, "allow LIVE orders at all (still needs --live and acknowledgement)"),
    Field("execution.risk_change_tolerance_percent", _decimal_within(below="100"), Decimal("25"), "execute refuses when the price now would raise the planned risk, or cut the planned reward-to-risk, by more than this percent"),
    Field("paper.balances", _balances, {"USDT": Decimal("1000")}, "starting paper wallet"),
    Field("paper.slippage_percent", _decimal_within(at_most="10"), Decimal("0.05"), "paper market orders fill this much worse than the price"),
    Field("execution.stop_limit_offset_percent", _decimal_within(above="0", below="100"), Decimal("0.5"), "limit of the protective stop-limit order this far beyond its stop, so it still fills in a fast move"),
    Field("scan.symbols", _symbols, ["BTCUSDT", "ETHUSDT"], "symbols `robson scan` looks at when --symbols and --quote are not given"),
    Field("scan.quote", _optional_asset, None, "when set, scan every symbol quoted in this asset (e.g. USDT) instead of scan.symbols"),
    Field("scan.strategies", _optional_names, None, "strategies `robson scan` runs; default: every strategy with a scan section"),
    Field("scan.max_workers", _workers, 4, "symbols fetched at once (within the exchange's request-weight limit)"),
    Field("binance.base_url", _optional_url, None, "REST base URL (testnet or a local server); default: Binance mainnet"),
    Field("binance.key_file", _optional_text, None, "file holding 'API_KEY' and 'API_SECRET' lines; must be mode 0600"),
    Field("binance.timeout_seconds", _decimal_within(above="0", at_most="300"), Decimal("10"), "give up on a Binance request after this many seconds"),
    Field("binance.recv_window_ms", _whole(1, 60000), 5000, "how long a signed request stays valid on Binance's side (1..60000 ms)"),
    Field("binance.exchange_info_ttl_seconds", _seconds, 3600, "reuse symbol filters this long before asking Binance again"),
    Field("locks.lease_seconds", _whole(2, 3600), 60, "how long a lock (monitor, scan, execute) outlives a holder that stops renewing it: a crashed holder on another host is taken over after at most this; renewed every third of it"),
    Field("notify.webhook_url", _optional_url, None, "POST a JSON document for each event to this URL (shown redacted: it may hold a secret)"),
    Field("notify.telegram_chat_id", _optional_text, None, "Telegram chat to message; the bot token comes from ROBSON_TELEGRAM_BOT_TOKEN or notify.telegram_token_file"),
    Field("notify.telegram_base_url", _url, "https://api.telegram.org", "Telegram Bot API base URL (a local server in tests)"),
    Field("notify.telegram_token_file", _optional_text, None, "file holding a 'TELEGRAM_BOT_TOKEN=...' line; must be mode 0600 (may be binance.key_file)"),
    Field("notify.email_to", _optional_addresses, None, "e-mail each event to these addresses (a list); needs notify.smtp_host and notify.email_from"),
    Field("notify.email_from", _optional_address, None, "the sender address of the e-mails"),
    Field("notify.smtp_host", _host, None, "SMTP server that sends the e-mails"),
    Field("notify.smtp_port", _optional_port, None, "SMTP port; default 587 for starttls, 465 for tls, 25 for none"),
    Field("notify.smtp_tls", _smtp_tls, "starttls", "starttls (upgrade the connection), tls (TLS from the start) or none (only for a server on 127.0.0.1); the certificate is always verified"),
    Field("notify.smtp_ca_file", _optional_text, None, "PEM file of the CA that signed the SMTP server's certificate (a private CA); default: the system's CAs"),
    Field("notify.smtp_username", _optional_text, None, "SMTP login; the password comes from ROBSON_SMTP_PASSWORD or notify.smtp_password_file"),
    Field("notify.smtp_password_file", _optional_text, None, "file holding an 'SMTP_PASSWORD=...' line; must be mode 0600"),
    Field("notify.events", _notify_events, "all", "events to send: all, none, or a list of intent_created, executed, stop_moved, closed, halted, monitor_error, alert_fired"),
    Field("notify.timeout_seconds", _decimal_within(above="0", at_most="300"), Decimal("5"), "give up on one delivery attempt after this many seconds"),
    Field("notify.retries", _whole(0, 20), 2, "attempts after the first when a receiver fails or times out"),
    Field("notify.retry_backoff_seconds", _decimal_within(at_most="3600"), Decimal("1"), "wait before the first retry, doubled before each next one"),
    Field("notify.drain_seconds", _decimal_within(at_most="3600"), Decimal("10"), "when a command ends, wait at most this long for notifications still being sent"),
)
FIELDS_BY_NAME = {f.name: f for f in FIELDS}

# Short environment names besides the generic ROBSON_SECTION__FIELD form.
ENV_ALIASES = {
    "ROBSON_DB": "database",
    "ROBSON_MARKET": "market",
    "ROBSON_AS_OF": "as_of",
    "ROBSON_CAPITAL": "capital",
    "ROBSON_STRATEGY": "default_strategy",
    "ROBSON_STRATEGIES_DIR": "strategies_dir",
    "ROBSON_CACHE_DIR": "cache_dir",
    "ROBSON_LIVE_TRADING": "execution.live_trading_enabled",
}
TELEGRAM_TOKEN_ENV = "ROBSON_TELEGRAM_BOT_TOKEN"  # a secret: read on demand, never a setting
SMTP_PASSWORD_ENV = "ROBSON_SMTP_PASSWORD"  # the same
NOT_SETTINGS = {"ROBSON_CONFIG", "ROBSON_DEBUG", TELEGRAM_TOKEN_ENV, SMTP_PASSWORD_ENV}


@dataclass(frozen=True, slots=True)
class Settings:
    """The effective configuration; `sources` tells where each value came from."""

    values: dict[str, Any]
    sources: dict[str, str]
    config_file: Path | None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def database_url_redacted(self) -> str:
        """Return the database URL with any password hidden (user part and ?password=), for display."""
        from robson.adapters.store.urls import redact

        return redact(self.database_url)

    @property
    def database_url(self) -> str:
        """Return the SQLAlchemy URL of the store."""
        path = self.database_path
        return self.values["database"] if path is None else f"sqlite:///{path}"

    @property
    def database_path(self) -> Path | None:
        """Return the SQLite file of the store (default: robson.db in the user data directory); None for a URL."""
        db = self.values["database"]
        if db is None:
            return default_data_dir() / "robson.db"
        if "://" in db:
            return None
        return Path(db).expanduser().resolve()

    @property
    def fee_rate(self) -> Decimal:
        return self.values["fees.taker_percent"] / 100

    @property
    def maker_fee_rate(self) -> Decimal:
        return self.values["fees.maker_percent"] / 100

    @property
    def slippage_rate(self) -> Decimal:
        return self.values["paper.slippage_percent"] / 100

    def risk_limits(self) -> RiskLimits:
        """Return the account's guard thresholds."""
        v = self.values
        return RiskLimits(
            max_risk_percent=v["risk.max_risk_percent"],
            daily_loss_percent=v["risk.daily_loss_percent"],
            monthly_drawdown_percent=v["risk.monthly_drawdown_percent"],
            max_open_positions=v["risk.max_open_positions"],
            max_positions_per_symbol=v["risk.max_positions_per_symbol"],
            max_total_exposure_percent=v["risk.max_total_exposure_percent"],
            min_stop_distance_percent=v["risk.min_stop_distance_percent"],
            warn_stop_distance_percent=v["risk.warn_stop_distance_percent"],
            max_stop_distance_percent=v["risk.max_stop_distance_percent"],
            max_data_age_minutes=v["risk.max_data_age_minutes"],
            cooldown_minutes=v["risk.cooldown_minutes"],
            max_position_percent=v["risk.max_position_percent"],
            warn_entry_gap_percent=v["risk.warn_entry_gap_percent"],
        )


EXAMPLE_FILENAME = ".robson.example.yaml"


def example_config_path() -> Path:
    """Return the documented example config: the one source of `robson init` and the repo's example file."""
    package = Path(__file__).resolve().parent
    installed = package / "robson.example.yaml"  # the wheel carries the repo's file under this name
    return installed if installed.is_file() else package.parent / EXAMPLE_FILENAME


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("robson", appauthor=False))


def cache_dir(configured: str | Path | None = None) -> Path:
    """Where parsed candle arrays and fetched klines are kept between runs: the cache_dir setting, else the user cache."""
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("robson", appauthor=False))


def default_config_dir() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("robson", appauthor=False))


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """Return the config file to read: --config, ROBSON_CONFIG, ./.robson.yaml, user config dir."""
    named = explicit or env.get("ROBSON_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    for candidate in (Path.cwd() / CONFIG_FILENAME, default_config_dir() / "config.yaml"):
        if candidate.is_file():
            return candidate
    return None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and name not in FIELDS_BY_NAME:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _read_file(path: Path) -> dict[str, Any]:
    from robson.adapters.yaml_file import load_yaml

    data = load_yaml(path, ConfigError)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: must be a mapping of settings, got {type(data).__name__}")
    return _flatten(data)


def _env_values(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    found: dict[str, tuple[Any, str]] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key in NOT_SETTINGS:
            continue
        name = ENV_ALIASES.get(key) or key[len(ENV_PREFIX):].lower().replace("__", ".")
        if name not in FIELDS_BY_NAME:
            raise ConfigError(f"environment {key}: unknown setting (see `robson config show` for names)")
        found[name] = (value, f"environment {key}")
    return found


def load_settings(
    *, config_path: str | None = None, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Merge defaults, file, environment and flag overrides; raise ConfigError on any bad value."""
    env = os.environ if env is None else env
    path = find_config_file(config_path, env)
    raw: dict[str, tuple[Any, str]] = {f.name: (f.default, "default") for f in FIELDS}
    if path is not None:
        for name, value in _read_file(path).items():
            if name not in FIELDS_BY_NAME:
                raise ConfigError(f"{path}: field '{name}': unknown setting")
            raw[name] = (value, str(path))
    raw.update(_env_values(env))
    for name, value in (overrides or {}).items():
        if value is not None:
            raw[name] = (value, "command line")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (value, source) in raw.items():
        if source == "default":
            values[name] = value
        else:
            try:
                values[name] = FIELDS_BY_NAME[name].parse(value)
            except ValueError as e:
                where = source if source.startswith(("environment", "command")) else source
                raise ConfigError(f"{where}: field '{name}': {e}") from None
        sources[name] = source
    _check_consistency(values, sources)
    return Settings(values=values, sources=sources, config_file=path)


def _check_consistency(values: dict[str, Any], sources: dict[str, str]) -> None:
    warn, minimum, maximum = (values[f"risk.{k}_stop_distance_percent"] for k in ("warn", "min", "max"))
    if not minimum <= warn <= maximum:
        raise ConfigError(
            f"{sources['risk.warn_stop_distance_percent']}: field 'risk.warn_stop_distance_percent': "
            f"must lie between min ({minimum}) and max ({maximum}) stop distance"
        )
    _check_email(values, sources)
    if values["risk.max_risk_percent"] > 2:
        raise ConfigError(
            f"{sources['risk.max_risk_percent']}: field 'risk.max_risk_percent': "
            f"{values['risk.max_risk_percent']}% is above the hard ceiling of 2%"
        )


def _check_email(values: dict[str, Any], sources: dict[str, str]) -> None:
    """E-mail needs a server and a sender; plain text (smtp_tls: none) would carry the password off this machine."""
    if values["notify.email_to"]:
        for name in ("notify.smtp_host", "notify.email_from"):
            if not values[name]:
                raise ConfigError(f"{sources['notify.email_to']}: field 'notify.email_to': e-mail needs {name} too")
    host = values["notify.smtp_host"]
    if values["notify.smtp_tls"] == "none" and host and not is_loopback(host):
        raise ConfigError(f"{sources['notify.smtp_tls']}: field 'notify.smtp_tls': none sends the password and the "
                          f"messages in clear text, allowed only for a server on 127.0.0.1 (not {host}); use starttls "
                          "or tls")


def smtp_port(settings: Settings) -> int:
    """The SMTP port: the setting, else the usual one for the TLS mode (587 starttls, 465 tls, 25 none)."""
    return settings["notify.smtp_port"] or {"starttls": 587, "tls": 465, "none": 25}[settings["notify.smtp_tls"]]


@dataclass(frozen=True, slots=True)
class ApiKeys:
    key: str
    secret: str
    source: str

    def __repr__(self) -> str:  # never shows the secret in a traceback or log
        return f"ApiKeys(source={self.source!r}, key=<redacted>, secret=<redacted>)"

    __str__ = __repr__


def api_keys(settings: Settings, env: Mapping[str, str] | None = None) -> ApiKeys | None:
    """Return the Binance keys from the environment or the 0600 key file; None when absent."""
    env = os.environ if env is None else env
    key, secret = env.get("BINANCE_API_KEY"), env.get("BINANCE_API_SECRET")
    if key and secret:
        return ApiKeys(key, secret, "environment")
    key_file = settings["binance.key_file"]
    if not key_file:
        return None
    path, pairs = _secret_file("binance.key_file", key_file)
    if not pairs.get("API_KEY") or not pairs.get("API_SECRET"):
        raise ConfigError(f"binance.key_file {path} must hold API_KEY=... and API_SECRET=... lines")
    return ApiKeys(pairs["API_KEY"], pairs["API_SECRET"], f"file {path}")


def _secret_file(field_name: str, file_name: str) -> tuple[Path, dict[str, str]]:
    """Read NAME=value lines from a 0600 file; raise ConfigError naming the field, never a value."""
    path = Path(file_name).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError:
        raise ConfigError(f"{field_name} {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{field_name} {path} is readable by others (mode {stat.S_IMODE(mode):04o}); run chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise ConfigError(f"{field_name} {path}: cannot read: {reason}") from None
    pairs = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            pairs[name.strip().upper()] = value.strip()
    return path, pairs


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret (the Telegram bot token, the SMTP password) and where it was read; never shown."""

    value: str
    source: str

    def __repr__(self) -> str:  # never shows the value in a traceback or log
        return f"Secret(source={self.source!r}, value=<redacted>)"

    __str__ = __repr__


def telegram_token(settings: Settings, env: Mapping[str, str] | None = None) -> Secret | None:
    """Return the Telegram bot token from ROBSON_TELEGRAM_BOT_TOKEN or the 0600 token file; None when absent."""
    return _secret(settings, env, TELEGRAM_TOKEN_ENV, "notify.telegram_token_file", "TELEGRAM_BOT_TOKEN")


def smtp_password(settings: Settings, env: Mapping[str, str] | None = None) -> Secret | None:
    """Return the SMTP password from ROBSON_SMTP_PASSWORD or the 0600 password file; None when absent."""
    return _secret(settings, env, SMTP_PASSWORD_ENV, "notify.smtp_password_file", "SMTP_PASSWORD")


def _secret(settings: Settings, env: Mapping[str, str] | None, variable: str, field_name: str,
            line: str) -> Secret | None:
    """Read a secret from the environment variable, else the 0600 file's NAME=value line; None if neither is set.

    Raise ConfigError naming the file, never the value.
    """
    env = os.environ if env is None else env
    if env.get(variable, "").strip():
        return Secret(env[variable].strip(), "environment")
    file_name = settings[field_name]
    if not file_name:
        return None
    path, pairs = _secret_file(field_name, file_name)
    if not pairs.get(line):
        raise ConfigError(f"{field_name} {path} must hold a {line}=... line")
    return Secret(pairs[line], f"file {path}")


def describe_settings(settings: Settings, env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """List every setting with its value and source, secrets redacted, for `config show`."""
    rows = []
    for f in FIELDS:
        value = settings.values[f.name]
        if f.name == "database" and value:
            value = settings.database_url_redacted if "://" in value else value
        if f.name in ("notify.webhook_url", "notify.telegram_base_url") and value:
            value = redact_url(value)
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = ",".join(value)
        elif isinstance(value, datetime):
            shown = value.isoformat()
        else:
            shown = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        rows.append({"name": f.name, "value": shown, "source": settings.sources[f.name], "help": f.help})
    secrets = (("binance.api_key", api_keys, "BINANCE_API_KEY / key file"),
               ("notify.telegram_bot_token", telegram_token, f"{TELEGRAM_TOKEN_ENV} / token file"),
               ("notify.smtp_password", smtp_password, f"{SMTP_PASSWORD_ENV} / password file"))
    for name, read, source in secrets:
        try:
            found = read(settings, env)
            state = f"set ({found.source}), redacted" if found else "not set"
        except ConfigError as e:
            state = f"invalid: {e.message}"
        rows.append({"name": name, "value": state, "source": source, "help": "never shown"})
    return rows
