"""The one door to Binance's REST API: a lazy python-binance client, the server clock, request weight, errors.

Every call goes through `BinanceGateway.call`, which
- waits for request weight (limits read from exchangeInfo, usage from the X-MBX-USED-WEIGHT-1M header),
- signs with a timestamp corrected by the server-time offset, resyncing once on -1021,
- retries only idempotent reads on temporary failures, with backoff,
- reads the answer with the caller's parser: an answer that is not what Binance sends (an empty
  body, `null`, a list, a proxy's HTML page) is AnswerLost, its effect unknown, quoted by status
  code and a short excerpt only,
- and turns python-binance / requests exceptions into robson's own errors, never showing the keys.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import InvalidOperation
from typing import Any, TypeVar

from robson.config import ApiKeys
from robson.errors import (
    AnswerLost,
    DuplicateOrder,
    ExchangeError,
    InsufficientBalance,
    OrderRejected,
    RateLimited,
    TemporaryExchangeError,
)

MAINNET_URL = "https://api.binance.com"
DEFAULT_WEIGHT_LIMIT = 1200  # REQUEST_WEIGHT per minute until exchangeInfo says otherwise
WEIGHT_SAFETY = 0.9  # leave a tenth of the budget for other programs on the same IP
READ_RETRIES = 3
BACKOFF_SECONDS = 0.25

# Binance error codes robson acts on (../shared/data/README.md).
TOO_MANY_REQUESTS = -1003
UNKNOWN_SEND_STATUS = -1007
TIMESTAMP_OUTSIDE_WINDOW = -1021
FILTER_FAILURE = -1013
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY = -2015
BAD_SIGNATURE = -1022
# What of an unreadable answer goes into a message (and so into the audit trail): never a whole HTML page.
EXCERPT_CHARS = 60
# What reading a malformed answer raises (a missing key, a list or null for an object, a number that is not one).
MALFORMED = (KeyError, IndexError, TypeError, AttributeError, ValueError, InvalidOperation)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BinanceFailure:
    """A refusal from Binance with its code, kept for callers that explain it (filters) or expect it (-2013)."""

    code: int | None
    message: str
    status: int
    data: dict[str, Any] | None = None  # what cancelReplace says of its two halves (-2021 / -2022)


class BinanceRefusal(ExchangeError):
    """Binance answered with an error the adapter may still interpret (carried as `failure`)."""

    def __init__(self, failure: BinanceFailure) -> None:
        super().__init__(f"Binance refused: {failure.message} (code {failure.code})")
        self.failure = failure


class WeightLimiter:
    """Keep this process under Binance's per-minute request weight, as the server counts it."""

    def __init__(self, limit: int = DEFAULT_WEIGHT_LIMIT, *, now: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.limit = limit
        self._now = now
        self._sleep = sleep
        self._minute = -1
        self._used = 0
        self.blocked_until: float | None = None
        self.waited_seconds = 0.0
        self._lock = threading.Lock()  # the scan fetches many symbols on worker threads

    def _roll(self) -> None:
        minute = int(self._now() // 60)
        if minute != self._minute:
            self._minute, self._used = minute, 0

    def acquire(self, weight: int) -> int:
        """Wait until weight fits in this minute's budget and return that minute; raise RateLimited while backing off."""
        while True:
            with self._lock:
                if self.blocked_until is not None and self._now() < self.blocked_until:
                    raise _rate_limited(self.blocked_until - self._now(), banned=False)
                self._roll()
                # A fresh minute takes any request, or one heavier than the whole budget would wait forever.
                if self._used + weight <= self.limit * WEIGHT_SAFETY or self._used == 0:
                    self._used += weight
                    return self._minute
                pause = (self._minute + 1) * 60 - self._now() + 0.05
                self.waited_seconds += pause
            self._sleep(pause)  # outside the lock: other threads see the same full minute and wait too

    def observe(self, used_weight: int | None, minute: int | None = None) -> None:
        """Adopt the server's count (it includes other programs on this IP) for the minute the request went in.

        An answer read after the minute turned counts the old minute: adopting it would make the
        new minute look full and wait for nothing.
        """
        if used_weight is not None:
            with self._lock:
                self._roll()
                if minute is None or minute == self._minute:
                    self._used = max(self._used, used_weight)

    def back_off(self, retry_after: float) -> None:
        with self._lock:
            self.blocked_until = self._now() + retry_after


def _rate_limited(retry_after: float | None, *, banned: bool) -> RateLimited:
    when = ""
    if retry_after is not None:
        at = datetime.fromtimestamp(time.time() + retry_after, UTC).strftime("%H:%M:%S UTC")
        when = f"; try again after {at} (in {int(retry_after + 0.999)} s)"
    what = "Binance has banned this IP for too many requests" if banned else "Binance rate limit reached"
    return RateLimited(what + when, retry_after=retry_after,
                       hint="robson keeps under the request weight it knows of; another program may share this IP")


class BinanceGateway:
    """python-binance, created on first use, with robson's clock, weight and error rules."""

    def __init__(self, keys: ApiKeys | None, *, base_url: str | None = None, timeout_seconds: float = 10,
                 recv_window_ms: int = 5000, limiter: WeightLimiter | None = None,
                 sleep: Callable[[float], None] = time.sleep, wall_clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self.base_url = (base_url or MAINNET_URL).rstrip("/")
        self.timeout_seconds = float(timeout_seconds)
        self.recv_window_ms = recv_window_ms
        self.limiter = limiter or WeightLimiter(now=wall_clock, sleep=sleep)
        self._sleep = sleep
        self._wall_clock = wall_clock
        # One python-binance Client per thread: a Client keeps its last response (read for the weight
        # header) on itself, so threads sharing one would read each other's.
        self._local = threading.local()
        self._sync_lock = threading.Lock()
        self._offset_ms: int | None = None

    def __repr__(self) -> str:  # never the keys
        return f"BinanceGateway(base_url={self.base_url!r})"

    @property
    def has_keys(self) -> bool:
        return self._keys is not None

    @property
    def client(self) -> Any:
        """This thread's python-binance Client: built once, no ping, with a request timeout."""
        client = getattr(self._local, "client", None)
        if client is None:
            from binance.client import Client

            key, secret = (self._keys.key, self._keys.secret) if self._keys else (None, None)
            client = Client(key, secret, ping=False, requests_params={"timeout": self.timeout_seconds})
            client.API_URL = self.base_url + "/api"
            client.REQUEST_RECVWINDOW = self.recv_window_ms
            if self._offset_ms is not None:
                client.timestamp_offset = self._offset_ms
            self._local.client = client
        return client

    # --- time ------------------------------------------------------------------------------

    def server_time_ms(self) -> int:
        """Return Binance's clock now (one request the first time, then local time plus the offset)."""
        self._ensure_synced()
        return int(self._wall_clock() * 1000) + (self._offset_ms or 0)

    def _ensure_synced(self) -> None:
        if self._offset_ms is None:
            with self._sync_lock:  # scan threads starting together measure the offset once, not each
                if self._offset_ms is None:
                    self.sync_clock()

    def sync_clock(self) -> None:
        """Measure the offset between this machine's clock and Binance's, half a round trip corrected."""
        sent = self._wall_clock()
        server_ms = self.call(lambda c: c.get_server_time(), weight=1, parse=lambda answer: int(answer["serverTime"]))
        received = self._wall_clock()
        self._offset_ms = int(server_ms - (sent + received) / 2 * 1000)
        self.client.timestamp_offset = self._offset_ms

    # --- calls -----------------------------------------------------------------------------

    def call(self, request: Callable[[Any], Any], *, weight: int, signed: bool = False, idempotent: bool = True,
             parse: Callable[[Any], T] | None = None) -> T:
        """Run request(client) under robson's rules and return parse(answer) (the answer itself without parse).

        Raise robson errors only. An answer parse cannot read is AnswerLost, like one that never
        came. A non-idempotent request (placing an order) is never retried after it may have reached
        Binance: its caller gets AnswerLost and must look the order up.
        """
        if signed:
            if self._keys is None:
                raise ExchangeError("this needs Binance API keys",
                                    hint="set BINANCE_API_KEY and BINANCE_API_SECRET or binance.key_file")
            self._ensure_synced()
        resynced = False
        attempt = 0
        while True:
            attempt += 1
            minute = self.limiter.acquire(weight)
            client = self.client
            client.response = None  # so an exception below can tell whether an answer arrived
            try:
                if self._offset_ms is not None:
                    client.timestamp_offset = self._offset_ms  # a resync on another thread applies here too
                answer = request(client)
            except Exception as e:  # translate everything python-binance / requests can raise
                self._observe_weight(minute)
                error = self._translate(e, client.response)
            else:
                self._observe_weight(minute)
                if parse is None:
                    return answer
                try:
                    return parse(answer)
                except MALFORMED:
                    error = unreadable_answer(client.response)
            if isinstance(error, BinanceRefusal) and error.failure.code == TIMESTAMP_OUTSIDE_WINDOW and not resynced:
                # -1021 means the request was refused, not executed: resync once and send it again.
                resynced = True
                self.sync_clock()
                continue
            if isinstance(error, RateLimited):
                if error.retry_after is not None:
                    self.limiter.back_off(error.retry_after)
                raise error
            # A request that never reached Binance may always be retried; one whose answer was lost only if idempotent.
            retryable = isinstance(error, TemporaryExchangeError) and (idempotent or not isinstance(error, AnswerLost))
            if retryable and attempt < READ_RETRIES:
                self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            raise error

    def _observe_weight(self, minute: int) -> None:
        response = getattr(getattr(self._local, "client", None), "response", None)
        header = response.headers.get("X-MBX-USED-WEIGHT-1M") if response is not None else None
        if header and header.isdigit():
            self.limiter.observe(int(header), minute)

    def _translate(self, error: Exception, response: Any) -> ExchangeError:
        """Map a library exception to robson's hierarchy; messages never include keys or signatures.

        response is the HTTP answer the request got, None if none arrived.
        """
        import requests
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        where = self.base_url
        if isinstance(error, BinanceAPIException):
            if _error_document(error.response) is None and error.status_code not in (418, 429):
                return unreadable_answer(error.response)  # a proxy's page or a body Binance never sends
            return _from_api_error(error.status_code, error.code, error.message or "", error.response)
        if isinstance(error, (requests.exceptions.ConnectTimeout,)):
            return TemporaryExchangeError(f"cannot reach Binance at {where}: connection timed out")
        if isinstance(error, requests.exceptions.ConnectionError) and _never_connected(error):
            return TemporaryExchangeError(f"cannot reach Binance at {where}: network down or host unreachable",
                                          hint="check the connection and binance.base_url")
        if isinstance(error, requests.exceptions.Timeout):
            return AnswerLost(f"Binance did not answer within {self.timeout_seconds:g} s")
        if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            return AnswerLost("the connection to Binance was dropped before its answer arrived")
        if isinstance(error, BinanceRequestException) or (response is not None and isinstance(error, MALFORMED)):
            # python-binance could not read the answer (or failed reading an error body that was a list).
            return unreadable_answer(response)
        if isinstance(error, requests.exceptions.RequestException):
            return TemporaryExchangeError(f"request to Binance failed: {type(error).__name__}")
        raise error


def answer_excerpt(text: str) -> str:
    """Return a short, one-line, tag-free excerpt of an answer's body, safe to print and to store."""
    page = re.search(r"<\s*(html|body|head|title|!doctype)", text, re.IGNORECASE) is not None
    # What a reader would see of it: no style sheets, scripts or tags.
    text = re.sub(r"<(style|script)\b.*?(</\1\s*>|$)", " ", text, flags=re.IGNORECASE | re.DOTALL)
    text = re.sub(r"<[^>]*>?", " ", text)
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(text) > EXCERPT_CHARS:
        text = text[:EXCERPT_CHARS].rstrip() + "…"
    return ("an HTML page: " if page else "") + (repr(text) if text else "an empty body")


def unreadable_answer(response: Any) -> AnswerLost:
    """The AnswerLost for an answer that is not what Binance sends: its status code and a short excerpt."""
    status = getattr(response, "status_code", None)
    try:
        body = response.text if response is not None else ""
    except (AttributeError, LookupError, ValueError):  # undecodable bytes: say so rather than show them
        body = "undecodable bytes"
    return AnswerLost(f"Binance answered HTTP {status if status is not None else '(no status)'} with "
                      f"{answer_excerpt(body)}, not an answer robson can read")


def _error_document(response: Any) -> dict[str, Any] | None:
    """Return Binance's error document ({"code": -NNNN, "msg": "..."}) from an error answer, None if it is not one."""
    try:
        document = json.loads(response.text)
    except (AttributeError, TypeError, ValueError):
        return None
    if isinstance(document, dict) and isinstance(document.get("code"), int) and isinstance(document.get("msg"), str):
        return document
    return None


def _never_connected(error: Exception) -> bool:
    """True when the TCP connection was never made, so the request cannot have reached Binance."""
    text = repr(error.args[0] if error.args else error)
    return any(marker in text for marker in ("NewConnectionError", "NameResolutionError", "Connection refused",
                                             "Failed to establish"))


def _from_api_error(status: int, code: int | None, message: str, response: Any) -> ExchangeError:
    retry_after = None
    header = response.headers.get("Retry-After") if response is not None else None
    if header:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    if status in (418, 429) or code == TOO_MANY_REQUESTS:
        return _rate_limited(retry_after, banned=status == 418)
    if status >= 500 or code == UNKNOWN_SEND_STATUS:
        return AnswerLost(f"Binance answered HTTP {status}: the request's outcome is unknown ({message})")
    document = _error_document(response) or {}
    data = document.get("data") if isinstance(document.get("data"), dict) else None
    failure = BinanceFailure(code, message, status, data)
    if code == NEW_ORDER_REJECTED:
        lowered = message.lower()
        if "insufficient balance" in lowered:
            return InsufficientBalance(f"Binance: {message}")
        if "duplicate order" in lowered:
            return DuplicateOrder(f"Binance: {message}")
        return OrderRejected(f"Binance rejected the order: {message}")
    if code in (BAD_API_KEY, BAD_SIGNATURE) or status == 401:
        return ExchangeError(f"Binance refused the API key or signature: {message}",
                             hint="check the key, the secret, the key's permissions and its IP whitelist")
    if code == CANCEL_REJECTED:
        return OrderRejected(f"Binance rejected the cancel: {message}")
    return BinanceRefusal(failure)
