"""robson's one error hierarchy.

Every error a user can meet is a ``RobsonError``. The CLI's error boundary
(``robson.cli.app``) is the only place that catches them: it prints
``Error: <message>`` on stderr and exits with ``exit_code``. Adapters translate
library exceptions into these at the boundary (``raise X(...) from e``).

Exit codes (SPEC §1): 0 success, 1 runtime failure, 2 bad usage or input,
3 refused by a risk guard or safety gate.
"""

from __future__ import annotations


class RobsonError(Exception):
    """Base of every robson error; handled by the CLI error boundary (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- bad usage or input (exit 2) -------------------------------------------


class InvalidInput(RobsonError):
    """A value given by the user is malformed or out of range; CLI exits 2."""

    exit_code = 2


class NotFound(InvalidInput):
    """An ID, symbol, strategy or file the user named does not exist; CLI exits 2."""


class AmbiguousId(InvalidInput):
    """An ID prefix matches more than one record; CLI exits 2 listing candidates."""

    def __init__(self, prefix: str, candidates: list[str]) -> None:
        shown = ", ".join(candidates[:10]) + (" …" if len(candidates) > 10 else "")
        super().__init__(
            f"ID prefix '{prefix}' is ambiguous: it matches {len(candidates)} records ({shown})",
            hint="type more characters of the ID",
        )
        self.candidates = candidates


class ConfigError(InvalidInput):
    """The configuration file or environment is invalid; CLI exits 2."""


class StrategyError(InvalidInput):
    """A strategy YAML file is invalid; message names file, field and problem; CLI exits 2."""


class IllegalTransition(InvalidInput):
    """A state change not in the transition table was asked for; CLI exits 2."""


class DataImportError(InvalidInput):
    """An import file has bad rows; nothing was imported; CLI exits 2."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


# --- refused by a guard or safety gate (exit 3) -----------------------------


class Refused(RobsonError):
    """A risk guard or safety gate refused the action; CLI exits 3."""

    exit_code = 3


class SizingRefused(Refused):
    """The risk rule cannot produce a valid order (below exchange minimums, no budget)."""


class ValidationFailed(Refused):
    """Validation finished with at least one FAIL verdict; the report is attached."""


class ExecutionRefused(Refused):
    """A pre-execution check or the LIVE gate refused to place orders."""


class TradingHalted(Refused):
    """Loss limits halted new entries."""


# --- runtime failures (exit 1) ----------------------------------------------


class MarketDataError(RobsonError):
    """Market data is missing or unusable (no candles, gap, unknown timeframe)."""


class ExchangeError(RobsonError):
    """The exchange (paper or real) rejected or failed a request; handled by use cases."""


class InsufficientBalance(ExchangeError):
    """The account does not hold enough of an asset for an order."""


class OrderRejected(ExchangeError):
    """The exchange rejected an order (filters, state); never retried."""


class ReplacementRefused(OrderRejected):
    """A protective order was cancelled to be replaced, but the exchange refused its replacement.

    What it protected is held with no stop until the caller places one again or exits at market
    (the monitor does both); `cancelled` is the old order's client id.
    """

    def __init__(self, message: str, *, cancelled: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cancelled = cancelled


class TemporaryExchangeError(ExchangeError):
    """A timeout, 5XX or rate limit: the only kind of error that may be retried."""


class AnswerLost(TemporaryExchangeError):
    """A request was sent but its answer was lost (timeout, dropped connection, 5XX): its effect is unknown.

    Order placement never resends after this; the caller looks the order up by client id instead.
    """


class Unprotected(ExchangeError):
    """A position may be held with no protective stop on the exchange; the message says UNPROTECTED and what to run.

    Raised by execute (and reported by reconcile, `operation status` and the monitor) while a filled
    entry has no stop yet; `cause` is what left it so: after an AnswerLost the stop may still arrive,
    so it is settled by `robson reconcile` once it no longer can. CLI exits 1.
    """

    def __init__(self, message: str, *, hint: str | None = None, cause: RobsonError | None = None) -> None:
        super().__init__(message, hint=hint)
        self.cause = cause


class RateLimited(TemporaryExchangeError):
    """Binance refused for request weight (429) or banned the IP (418); retry_after says when to try again."""

    def __init__(self, message: str, *, retry_after: float | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class AlreadyRunning(RobsonError):
    """Another robson process holds the lock this command needs (one scan, one monitor, one execution per intent)."""

    exit_code = 4


class LeaseLost(RobsonError):
    """This process could no longer renew a lock it held (taken over, removed by `robson unlock`, or the database
    out of reach for most of the lease), so it stopped before acting without it; raised by the store's writes and
    the monitor loop, never caught by a per-operation handler; CLI exits 4."""

    exit_code = 4


class DuplicateOrder(ExchangeError):
    """An order with this client order id exists already; the caller looks it up instead."""


class StoreError(RobsonError):
    """The database cannot be opened, migrated or written."""


class ForeignDatabase(InvalidInput, StoreError):
    """The database named is not robson's (another application's tables, or not SQLite at all); CLI exits 2."""


class DamagedRecord(InvalidInput, StoreError):
    """A stored row cannot be read back (a value changed outside robson); nothing is written; CLI exits 2."""
