"""Use case: backtest — replay a strategy over history through the very rules robson trades with.

Nothing is re-implemented here: signals come from the one evaluator the scan uses (the
SignalEngine port), entries are sized, stopped and targeted by robson.domain.lifecycle as
`robson plan` does, checked by the validate guards (robson.domain.guards) against a simulated
wallet and book, filled as the paper exchange fills a market order, and watched by the
monitor's own candle walk (robson.domain.monitoring). Only the clock and the venue differ:
the clock is a cursor over closed candles, the venue an in-memory book.

The timeline, for a signal on candle c of the strategy timeframe:

- the setup's confirmation decides on candle d (d = c with ``confirm: none``); the decision is
  known at T, the close of d;
- at T the backtest does what `plan` + `validate` + `execute` at ``--as-of T`` do: the entry
  price is the last price at T (the close of the last candle closed by T), the stop comes from
  the candles closed by T, the guards see the book as it is at T (positions whose exit is known
  by T are closed, their P&L realized), and the market order fills at the first trade at T
  (the open of the candle opening at T on the finest timeframe) with slippage and the taker fee;
- the position is watched from that candle on, on the finest candles held (the monitor's
  walk: stop before target, gaps fill at the open, trailing, time exit), and its exit is known
  at the close of the candle it happens in;
- positions still open at the end of the data close at the last close, labelled end_of_data.

At market time T only candles closed by T are looked at: a backtest over data cut at T makes
exactly the entries the full run made before T (tests/integration/test_backtest_lookahead.py).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from robson.application.ports import Clock, SignalEngine, Store
from robson.application.validate import day_start, month_start
from robson.application.watching import WALK_TIMEFRAMES
from robson.domain.guards import (
    GuardContext,
    GuardResult,
    OpenPosition,
    RiskLimits,
    Verdict,
    run_guards,
)
from robson.domain.backtest_stats import SavedBacktest
from robson.domain.ids import BACKTEST_PREFIX, new_id
from robson.domain.intent import IntentSource, IntentStatus, TradingIntent
from robson.domain.lifecycle import (
    anchor_to_fill,
    candles_needed,
    market_fill,
    open_operation,
    operation_ladder,
    plan_trade,
    walk_settings,
)
from robson.domain.market import Candle, Side, SymbolInfo, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.money import ZERO, fmt
from robson.domain.ladder import Ladder, book_walk, fill_exit, next_target, walk_operation
from robson.domain.monitoring import Exit, WalkResult, walk_candles
from robson.domain.operation import CloseReason, Operation
from robson.domain.strategy import Strategy
from robson.errors import InvalidInput, MarketDataError, SizingRefused

# Guards freqtrade has no equivalent of; --no-guards switches them off (and says so).
OPTIONAL_GUARDS = ("daily loss", "monthly drawdown", "cooldown")
NO_LIMIT = Decimal("1e12")


class CandleHistory(Protocol):
    """One symbol's closed candles of one timeframe: arrays for the engine, exact candles on demand."""

    symbol: str
    timeframe: str
    series: Any  # what the SignalEngine evaluates

    def __len__(self) -> int: ...
    def open_time(self, index: int) -> int: ...
    def index_at_or_after(self, open_ms: int) -> int: ...
    def candle(self, index: int) -> Candle: ...
    def candles(self, start: int, stop: int) -> list[Candle]: ...
    def until(self, end_ms: int) -> CandleHistory: ...
    def first_event(self, start: int, stop: int, *, low_at_or_below: float | None = None,
                    high_at_or_above: float | None = None) -> int | None: ...


class History(Protocol):
    """The candles a backtest replays: the sample market (with imported candles) or cached Binance klines."""

    name: str

    def symbol_info(self, symbol: str) -> SymbolInfo: ...

    def history(self, symbol: str, timeframe: str, since_ms: int | None = None,
                until_ms: int | None = None) -> CandleHistory:
        """Every closed candle of timeframe held for symbol (a fetching market: from since_ms to until_ms).

        Raise NotFound, InvalidInput or MarketDataError.
        """
        ...


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    strategy: Strategy
    symbols: tuple[str, ...]
    capital: Decimal
    fee_rate: Decimal
    slippage_rate: Decimal
    limits: RiskLimits  # the account's, before the strategy's overrides
    start: datetime | None = None
    end: datetime | None = None
    timeframe: str | None = None  # None: the strategy's own
    stake: Decimal | None = None  # a fixed notional per trade instead of the risk rule
    max_open: int | None = None  # None: the limits' max open positions
    guards: bool = True  # False (--no-guards): daily loss, monthly drawdown, cooldown and exposure are off


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed position of the replay: the operation the paper book would hold, and where it came from."""

    operation: Operation
    setup: str
    signal_time: datetime  # open of the signal candle
    exit_candle_time: datetime  # open of the candle the exit happened in
    exit_trigger: Decimal | None  # the stop, target, gapped open or close before slippage
    ambiguous: bool  # the exit candle touched both the stop and the target: the stop-first rule decided
    stop_moves: int

    @property
    def entry_time(self) -> datetime:
        return self.operation.opened_at


@dataclass(frozen=True, slots=True)
class Decided:
    """An entry planned and checked at a market time: what `plan` and `validate` would have said then."""

    time: datetime
    symbol: str
    setup: str
    entry: Decimal
    stop: Decimal
    target: Decimal | None
    quantity: Decimal
    failed: tuple[str, ...]  # the guards that refused it (empty: it went on to execute)


@dataclass(frozen=True, slots=True)
class Refusal:
    time: datetime
    symbol: str
    setup: str
    guards: tuple[str, ...]  # every guard that failed (or "sizing", "balance at fill", "auto entry")
    message: str


_OUTCOMES = {0: "DETECTED", 1: "CONFIRMED", 2: "INVALIDATED", 3: "EXPIRED"}


@dataclass(frozen=True, slots=True)
class SignalSeen:
    """A setup the replay detected, as `robson scan` run at every close would have recorded and decided it."""

    symbol: str
    setup: str
    candle_ms: int  # open of the signal candle, epoch ms
    status: str  # DETECTED (undecided by the end), CONFIRMED, INVALIDATED or EXPIRED
    decided_ms: int | None  # open of the deciding candle
    confidence: Decimal

    @property
    def candle_time(self) -> datetime:
        return ms_to_datetime(self.candle_ms)

    @property
    def decided_time(self) -> datetime | None:
        return ms_to_datetime(self.decided_ms) if self.decided_ms is not None else None


@dataclass(frozen=True, slots=True)
class BacktestResult:
    request: BacktestRequest
    market: str
    start: datetime  # first candle open replayed (after the warm-up)
    end: datetime  # last candle close
    timeframe: str
    walk_timeframes: dict[str, str]  # symbol → timeframe exits were walked on
    trades: tuple[Trade, ...]
    refusals: tuple[Refusal, ...]
    signals: int  # confirmed signals inside the range (each one an entry attempt)
    detections: int  # setups detected inside the range
    candles: dict[str, int]  # symbol → candles of the strategy timeframe replayed
    quote: str  # the quote asset money is counted in
    signal_list: tuple[SignalSeen, ...] = ()  # every setup detected in the range and what became of it
    decisions: tuple[Decided, ...] = ()  # every entry planned and checked, entered or refused

    @property
    def refused_by_guard(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for refusal in self.refusals:
            counts.update(refusal.guards)
        return counts

    @property
    def ambiguous(self) -> int:
        return sum(1 for t in self.trades if t.ambiguous)


@dataclass(order=True)
class _Open:
    known_ms: int  # when the exit is known: the close of its candle (end of data for a position still open)
    sequence: int
    operation: Operation = field(compare=False)
    trade: Trade = field(compare=False)


class _Book:
    """The simulated wallet and book: what validate's guards and the paper exchange would see at each moment."""

    def __init__(self, capital: Decimal, quote: str) -> None:
        self.quote = quote
        self.free = capital
        self.open: list[_Open] = []
        self.closed: list[Operation] = []
        self.trades: list[Trade] = []
        self._sequence = 0
        self._by_day: dict[datetime, Decimal] = {}  # realized P&L by UTC day of closing
        self._by_month: dict[datetime, Decimal] = {}
        self._stop_outs: dict[str, datetime] = {}

    def settle_until(self, moment_ms: int) -> None:
        """Close every position whose exit is known by moment_ms: its proceeds return to the wallet."""
        while self.open and self.open[0].known_ms <= moment_ms:
            done = heapq.heappop(self.open)
            op = done.operation
            self.free += op.quantity * op.exit_price - op.exit_fee if op.side is Side.BUY else ZERO
            self.closed.append(op)
            self.trades.append(done.trade)
            day = day_start(op.closed_at)
            self._by_day[day] = self._by_day.get(day, ZERO) + op.realized_pnl
            month = month_start(op.closed_at)
            self._by_month[month] = self._by_month.get(month, ZERO) + op.realized_pnl
            if op.close_reason is CloseReason.STOP:
                self._stop_outs[op.symbol] = max(op.closed_at, self._stop_outs.get(op.symbol, op.closed_at))

    def add(self, known_ms: int, operation: Operation, trade: Trade) -> None:
        self._sequence += 1
        heapq.heappush(self.open, _Open(known_ms, self._sequence, operation, trade))

    def realized_today(self, now: datetime) -> Decimal:
        """Realized P&L of the UTC day of now, of the positions settled by now."""
        return self._by_day.get(day_start(now), ZERO)

    def realized_this_month(self, now: datetime) -> Decimal:
        return self._by_month.get(month_start(now), ZERO)

    def last_stop_out(self, symbol: str) -> datetime | None:
        return self._stop_outs.get(symbol)

    def positions(self) -> list[OpenPosition]:
        return [OpenPosition(o.operation.symbol, o.operation.notional) for o in self.open]


@dataclass(frozen=True, slots=True)
class _Candidate:
    decided_ms: int  # T: the close of the deciding candle
    symbol: str
    setup_order: int
    setup: str
    side: Side
    signal_ms: int
    confidence: Decimal


@dataclass
class _Symbol:
    info: SymbolInfo
    signal: CandleHistory  # the strategy timeframe
    walk: CandleHistory  # the finest timeframe held
    signal_ms: int
    walk_ms: int


Progress = Callable[[int, int], None]


def backtest(request: BacktestRequest, *, history: History, engine: SignalEngine,
             on_progress: Progress | None = None) -> BacktestResult:
    """Replay request.strategy over the symbols' history; raise InvalidInput, NotFound or MarketDataError.

    Raise InvalidInput for a strategy without a scan section, a bad range or options, or a range
    holding no candle; NotFound for an unknown symbol.
    """
    strategy = request.strategy
    definition = strategy.scan
    if definition is None:
        raise InvalidInput(f"strategy '{strategy.name}' has no scan section: there are no signals to replay",
                           hint="a backtest replays the setups a strategy's scan: section describes")
    _check(request)
    timeframe = request.timeframe or strategy.timeframe
    length = timeframe_ms(timeframe)
    start_ms = datetime_to_ms(request.start) if request.start else None
    end_ms = datetime_to_ms(request.end) if request.end else None
    symbols: dict[str, _Symbol] = {}
    candidates: list[_Candidate] = []
    signals: list[SignalSeen] = []
    detections = 0
    counted: dict[str, int] = {}
    warm_up = max(definition.candles_needed, candles_needed(strategy)) + max(s.window for s in definition.setups) + 1
    since_ms = start_ms - warm_up * length if start_ms is not None else None
    for number, symbol in enumerate(request.symbols):
        loaded = _load(history, symbol.strip().upper(), timeframe, since_ms, end_ms)
        symbols[loaded.signal.symbol] = loaded
        evaluation = engine.evaluate(definition, loaded.signal.series)
        # The clock starts at --from: the first scan sees the candle that closed then.
        first = loaded.signal.index_at_or_after(start_ms - length) if start_ms is not None else 0
        counted[loaded.signal.symbol] = len(loaded.signal) - first
        times = loaded.signal.series.open_time.tolist()
        for order, setup in enumerate(definition.setups):
            confidences: dict[int, Decimal] = {}
            for index, code, decided, held in evaluation.timeline(setup):
                if index < first:
                    continue
                detections += 1
                confidence = confidences.get(held) or confidences.setdefault(held, setup.confidence(held))
                signals.append(SignalSeen(loaded.signal.symbol, setup.name, times[index], _OUTCOMES[code],
                                          times[decided] if decided >= 0 else None, confidence))
                if code == 1:  # only CONFIRMED signals are entered
                    candidates.append(_Candidate(times[decided] + length, loaded.signal.symbol, order, setup.name,
                                                 setup.side, times[index], confidence))
        if on_progress is not None:
            on_progress(number + 1, len(request.symbols) + 1)
    if all(count <= 0 for count in counted.values()):
        raise InvalidInput(f"no {timeframe} candles of {', '.join(symbols)} between {_range(request)}",
                           hint="widen --from/--to; `robson data list` shows what is held")
    candidates.sort(key=lambda c: (c.decided_ms, c.symbol, c.setup_order))
    replay = _Replay(request, strategy, timeframe, symbols)
    for candidate in candidates:
        replay.consider(candidate)
    replay.finish()
    first_open = min(s.signal.open_time(min(len(s.signal) - 1, len(s.signal) - counted[name])) + length
                     for name, s in symbols.items())
    first_open = start_ms if start_ms is not None else first_open - length
    last_close = max(s.walk.open_time(len(s.walk) - 1) + s.walk_ms for s in symbols.values())
    if on_progress is not None:
        on_progress(len(request.symbols) + 1, len(request.symbols) + 1)
    trades = sorted(replay.book.trades, key=lambda t: (t.operation.closed_at, t.operation.opened_at, t.operation.id))
    return BacktestResult(
        request=request, market=history.name, start=ms_to_datetime(first_open), end=ms_to_datetime(last_close),
        timeframe=timeframe, walk_timeframes={name: s.walk.timeframe for name, s in symbols.items()},
        trades=tuple(trades), refusals=tuple(replay.refusals), signals=len(candidates), detections=detections,
        signal_list=tuple(signals), decisions=tuple(replay.decisions),
        candles={name: max(0, count) for name, count in counted.items()}, quote=replay.book.quote,
    )


def _check(request: BacktestRequest) -> None:
    if not request.symbols:
        raise InvalidInput("no symbols to backtest", hint="give --symbols BTCUSDT[,ETHUSDT]")
    if request.start is not None and request.end is not None and request.start >= request.end:
        raise InvalidInput(f"--from {request.start:%Y-%m-%d %H:%M} is not before --to {request.end:%Y-%m-%d %H:%M}")
    if request.capital <= 0:
        raise InvalidInput(f"capital must be greater than 0, got {fmt(request.capital)}")
    if request.stake is not None and request.stake <= 0:
        raise InvalidInput(f"stake must be greater than 0, got {fmt(request.stake)}")
    if request.max_open is not None and request.max_open < 1:
        raise InvalidInput(f"max open positions must be at least 1, got {request.max_open}")
    if not ZERO <= request.fee_rate < Decimal("0.5"):
        raise InvalidInput(f"fee must be from 0 to 50 %, got {fmt(request.fee_rate * 100)} %")
    if not ZERO <= request.slippage_rate < Decimal("0.5"):
        raise InvalidInput(f"slippage must be from 0 to 50 %, got {fmt(request.slippage_rate * 100)} %")


def _range(request: BacktestRequest) -> str:
    start = f"{request.start:%Y-%m-%d %H:%M}" if request.start else "the start of the data"
    end = f"{request.end:%Y-%m-%d %H:%M}" if request.end else "the end of the data"
    return f"{start} and {end} UTC"


def _load(history: History, symbol: str, timeframe: str, since_ms: int | None, end_ms: int | None) -> _Symbol:
    info = history.symbol_info(symbol)
    signal = history.history(symbol, timeframe, since_ms, end_ms)
    walk = None
    for candidate in WALK_TIMEFRAMES:  # finest first, as the monitor walks
        if timeframe_ms(candidate) > timeframe_ms(timeframe):
            break
        try:
            walk = history.history(symbol, candidate, since_ms, end_ms)
            break
        except MarketDataError:
            continue
    walk = walk or signal
    if end_ms is not None:
        signal, walk = signal.until(end_ms), walk.until(end_ms)
    if not len(signal) or not len(walk):
        until = f" by {ms_to_datetime(end_ms):%Y-%m-%d %H:%M} UTC" if end_ms is not None else ""
        raise InvalidInput(f"no {timeframe} candles of {symbol} closed{until}",
                           hint="widen --from/--to; `robson data list` shows what is held")
    return _Symbol(info, signal, walk, timeframe_ms(signal.timeframe), timeframe_ms(walk.timeframe))


class _Replay:
    """The entries, one confirmed signal at a time in time order, and each position's walk to its exit."""

    def __init__(self, request: BacktestRequest, strategy: Strategy, timeframe: str, symbols: dict[str, _Symbol]):
        self.request, self.strategy, self.timeframe, self.symbols = request, strategy, timeframe, symbols
        quote = next(iter(symbols.values())).info.quote_asset
        self.book = _Book(request.capital, quote)
        self.refusals: list[Refusal] = []
        limits = dataclasses.replace(request.limits, max_risk_percent=request.limits.max_risk_percent)
        strategy_limits = strategy.risk_limits(limits)
        strategy_limits = dataclasses.replace(
            strategy_limits, max_risk_percent=min(strategy_limits.max_risk_percent, limits.max_risk_percent))
        if request.max_open is not None:
            strategy_limits = dataclasses.replace(strategy_limits, max_open_positions=request.max_open)
        if not request.guards:
            strategy_limits = dataclasses.replace(strategy_limits, max_total_exposure_percent=NO_LIMIT)
        self.limits = strategy_limits
        self.skip = frozenset(OPTIONAL_GUARDS) if not request.guards else frozenset()
        self.auto_entries: list[tuple[datetime, str]] = []  # (when, symbol) of intents auto entry created
        self.decisions: list[Decided] = []

    # --- one signal ------------------------------------------------------------------------------

    def consider(self, candidate: _Candidate) -> None:
        request, start_ms, end_ms = self.request, _ms(self.request.start), _ms(self.request.end)
        now_ms = candidate.decided_ms
        if (start_ms is not None and now_ms < start_ms) or (end_ms is not None and now_ms > end_ms):
            return
        symbol = self.symbols[candidate.symbol]
        self.book.settle_until(now_ms)
        now = ms_to_datetime(now_ms)
        refused = self._auto_entry_refusal(candidate, now)
        if refused:
            self._refuse(candidate, now, ("auto entry",), refused)
            return
        full = self._book_full(candidate.symbol)
        if full:
            self._refuse(candidate, now, ("open positions",), full)
            return
        last = _last_closed(symbol.walk, symbol.walk_ms, now_ms)
        if last is None:
            self._refuse(candidate, now, ("data freshness",), "no candle closed yet on the finest timeframe")
            return
        price = symbol.walk.candle(last).close
        signal_last = _last_closed(symbol.signal, symbol.signal_ms, now_ms)
        needed = candles_needed(self.strategy)
        stop_candles = symbol.signal.candles(signal_last + 1 - needed, signal_last + 1) if needed else []
        try:
            planned = plan_trade(candidate.side, symbol.info, self.strategy, entry=price, entry_source="market",
                                 candles=stop_candles, capital=request.capital, fee_rate=request.fee_rate,
                                 max_position_percent=request.limits.max_position_percent,
                                 available_balance=self.book.free,
                                 quantity=self._stake_quantity(symbol.info, price))
        except (SizingRefused, InvalidInput) as e:
            self._refuse(candidate, now, ("sizing",), e.message)
            return
        if self.strategy.auto_entry is not None:  # the scan counts every intent it creates, entered or not
            self.auto_entries.append((now, candidate.symbol))
        intent = self._intent(candidate, planned, now)
        results = run_guards(self._context(intent, symbol, now, last, signal_last), skip=self.skip)
        failed = [r for r in results if r.verdict is Verdict.FAIL]
        self.decisions.append(Decided(now, candidate.symbol, candidate.setup, intent.entry, intent.stop,
                                      intent.target, intent.quantity, tuple(r.guard for r in failed)))
        if failed:
            self._refuse(candidate, now, tuple(r.guard for r in failed), "; ".join(_say(r) for r in failed))
            return
        if last + 1 >= len(symbol.walk):
            self._refuse(candidate, now, ("end of data",), "the data ends at the decision: no candle to enter on")
            return
        self._enter(candidate, symbol, intent, planned.anchor, now_ms, last, planned.ladder)

    def _book_full(self, symbol: str) -> str | None:
        """Say why no position can open (the open-positions limits), before anything is sized.

        The slot decides first: a signal arriving while the book is full is refused by the
        open-positions guard whatever the others would say, and counted under it alone.
        """
        total = len(self.book.open)
        same = sum(1 for o in self.book.open if o.operation.symbol == symbol)
        if total >= self.limits.max_open_positions:
            return f"{total} open operations ≥ max {self.limits.max_open_positions}"
        if same >= self.limits.max_positions_per_symbol:
            return f"{same} open on {symbol} ≥ max {self.limits.max_positions_per_symbol} per symbol"
        return None

    def _stake_quantity(self, info: SymbolInfo, price: Decimal) -> Decimal | None:
        if self.request.stake is None:
            return None
        return info.round_quantity(self.request.stake / price)

    def _auto_entry_refusal(self, candidate: _Candidate, now: datetime) -> str | None:
        """The strategy's own auto-entry rules (confidence, entries per day, cooldown), as the scan applies them."""
        rules = self.strategy.auto_entry
        if rules is None:
            return None
        if candidate.confidence < rules.min_confidence:
            return f"confidence {fmt(candidate.confidence)} < min {fmt(rules.min_confidence)}"
        today = [at for at, _ in self.auto_entries if day_start(at) == day_start(now)]
        if len(today) >= rules.max_entries_per_day:
            return f"max entries per day reached: {len(today)} of {rules.max_entries_per_day}"
        on_symbol = [at for at, symbol in self.auto_entries if symbol == candidate.symbol]
        if on_symbol and now - max(on_symbol) < timedelta(minutes=rules.cooldown_minutes):
            return f"cooldown: last entry on {candidate.symbol} < {rules.cooldown_minutes} min ago"
        return None

    def _intent(self, candidate: _Candidate, planned: Any, now: datetime) -> TradingIntent:
        fig = planned.sizing.figures
        return TradingIntent(
            id="bt-replay", symbol=candidate.symbol, side=candidate.side, status=IntentStatus.PENDING,
            strategy=self.strategy.name,
            source=IntentSource.PATTERN if self.strategy.auto_entry else IntentSource.MANUAL,
            timeframe=self.timeframe, capital=self.request.capital, risk_percent=self.strategy.risk_percent,
            entry=fig.entry, stop=fig.stop, stop_method=planned.stop_method, quantity=fig.quantity,
            target=planned.target, created_at=now, updated_at=now, confidence=candidate.confidence,
            details={"anchor": planned.anchor} if planned.anchor else {},
        )

    def _context(self, intent: TradingIntent, symbol: _Symbol, now: datetime, last: int,
                 signal_last: int) -> GuardContext:
        book, length = self.book, symbol.signal_ms
        return GuardContext(
            intent=intent, symbol_info=symbol.info, capital=self.request.capital, limits=self.limits,
            fee_rate=self.request.fee_rate, free_balances={book.quote: book.free},
            realized_pnl_today=book.realized_today(now),
            realized_pnl_month=book.realized_this_month(now),
            open_positions=book.positions(), now=now,
            last_price_at=ms_to_datetime(symbol.walk.open_time(last) + symbol.walk_ms),
            last_candle_close_at=ms_to_datetime(symbol.signal.open_time(signal_last) + length),
            last_stop_out_at=book.last_stop_out(intent.symbol),
            expected_candle_close_at=ms_to_datetime(datetime_to_ms(now) // length * length),
        )

    def _refuse(self, candidate: _Candidate, now: datetime, guards: tuple[str, ...], message: str) -> None:
        self.refusals.append(Refusal(now, candidate.symbol, candidate.setup, guards, message))

    # --- entry and exit --------------------------------------------------------------------------

    def _enter(self, candidate: _Candidate, symbol: _Symbol, intent: TradingIntent, anchor: dict[str, str],
               now_ms: int, last: int, ladder: Ladder | None = None) -> None:
        request, info, walk = self.request, symbol.info, symbol.walk
        first = last + 1
        # A market order at T trades at the first trade at T: the open of the candle opening then, if one does.
        reference = walk.candle(first).open if walk.open_time(first) == now_ms else walk.candle(last).close
        quantity = intent.quantity
        if request.stake is not None:  # spend the stake at the fill, as a quote-quantity market order does
            quantity = info.round_quantity(request.stake / reference)
        fill = market_fill(intent.side, reference, quantity, info, fee_rate=request.fee_rate,
                           slippage_rate=request.slippage_rate)
        if request.stake is not None:
            quantity = info.round_quantity(request.stake / fill.price)
            fill = market_fill(intent.side, reference, quantity, info, fee_rate=request.fee_rate,
                               slippage_rate=request.slippage_rate)
        cost = fill.cost(intent.side, quantity)
        if quantity <= 0 or (intent.side is Side.BUY and cost > self.book.free):
            self._refuse(candidate, ms_to_datetime(now_ms), ("balance at fill",),
                         f"the fill needs {fmt(cost, 2)} {self.book.quote}, free {fmt(self.book.free, 2)}")
            return
        stop, target = anchor_to_fill(intent.side, fill.price, anchor, intent.stop, intent.target, info,
                                      request.fee_rate)
        if (fill.price - stop) * intent.side.sign <= 0:
            self._refuse(candidate, ms_to_datetime(now_ms), ("stop distance",),
                         f"the fill {fmt(fill.price)} is already through the stop {fmt(stop)}")
            return
        now = ms_to_datetime(now_ms)
        operation = open_operation(
            operation_id=new_id("op"), intent_id="bt", symbol=intent.symbol, side=intent.side, mode="backtest",
            strategy=self.strategy.name, quantity=quantity, entry_price=fill.price, entry_fee=fill.fee, stop=stop,
            target=target, at=now, quote_asset=info.quote_asset,
        )
        if ladder is not None:  # fitted to the fill as execute fits it
            operation = dataclasses.replace(operation, ladder=operation_ladder(
                ladder, anchor, fill=fill.price, stop=stop, quantity=quantity, info=info, fee_rate=request.fee_rate))
        if intent.side is Side.BUY:
            self.book.free -= cost
        closed, exit_, moves, candle_ms = self._walk(operation, symbol, first)
        known_ms = candle_ms + symbol.walk_ms
        trade = Trade(closed, candidate.setup, ms_to_datetime(candidate.signal_ms), ms_to_datetime(candle_ms),
                      exit_.trigger_price if exit_ else None, _ambiguous(closed, exit_, walk), moves)
        self.book.add(known_ms, closed, trade)

    def _walk(self, operation: Operation, symbol: _Symbol, first: int) -> tuple[Operation, Exit | None, int, int]:
        """Walk the position from the candle opening at its entry to its exit (or the end of the data)."""
        walk, request = symbol.walk, self.request
        settings = walk_settings(operation, self.strategy, walk.timeframe, fee_rate=request.fee_rate,
                                 slippage_rate=request.slippage_rate, tick_size=symbol.info.tick_size)
        end = len(walk)
        due = None
        if settings.time_exit is not None and settings.time_exit.max_age is not None:
            due_ms = datetime_to_ms(operation.opened_at + settings.time_exit.max_age)
            due = walk.index_at_or_after(due_ms - symbol.walk_ms)  # the first candle closing at or after it
        position, moves = first, 0
        while position < end:
            stop_at = walk.first_event(position, end if due is None else min(end, due), **_triggers(operation,
                                                                                                  settings.trailing))
            nxt = stop_at if stop_at is not None else due
            if nxt is None or nxt >= end:
                break
            if operation.ladder is not None:  # the monitor's ladder walk: each target takes its part
                walked = walk_operation(operation, [walk.candle(nxt)], settings)
                moves += len(walked.moves)
                operation = book_walk(operation, walked)
                if walked.closed:
                    return operation, fill_exit(walked.fills[-1]), moves, walk.open_time(nxt)
                position = nxt + 1
                continue
            result: WalkResult = walk_candles(operation, [walk.candle(nxt)], settings)
            moves += len(result.moves)
            operation = dataclasses.replace(operation, stop=result.stop, last_checked_at=result.last_checked_at)
            if result.exit is not None:
                exit_ = result.exit
                closed = operation.close(exit_price=exit_.price, exit_fee=exit_.fee, reason=exit_.reason,
                                         at=exit_.at)
                return closed, exit_, moves, walk.open_time(nxt)
            position = nxt + 1
        last = walk.candle(end - 1)
        fee = last.close * operation.held * request.fee_rate
        closed = operation.close(exit_price=last.close, exit_fee=fee, reason=CloseReason.END_OF_DATA,
                                 at=ms_to_datetime(last.open_time + symbol.walk_ms))
        return closed, None, moves, last.open_time

    def finish(self) -> None:
        """Settle every position: the ones open at the end of the data close at its last close."""
        self.book.settle_until(2**62)


def _triggers(operation: Operation, trailing: bool) -> dict[str, float | None]:
    """The prices whose touch may change the position (stop, target, the next trailing step), as floats.

    A superset: a candle touching none of them cannot stop, fill the target or move the stop,
    so the walk skips it; the exact walk decides on every candle found.
    """
    long = operation.side is Side.BUY
    stop, target = operation.stop, next_target(operation)  # with a ladder, the next target with a part to take
    favourable = [target] if target is not None else []
    if trailing:
        span = abs(operation.entry_price - operation.initial_stop)
        if span > 0:
            beyond = (stop - operation.entry_price) * operation.side.sign
            steps = 1 if beyond < span else int(beyond // span) + 2
            favourable.append(operation.entry_price + operation.side.sign * steps * span)
    if long:
        return {"low_at_or_below": float(stop), "high_at_or_above": float(min(favourable)) if favourable else None}
    return {"high_at_or_above": float(stop), "low_at_or_below": float(max(favourable)) if favourable else None}


def _ambiguous(closed: Operation, exit_: Exit | None, walk: CandleHistory) -> bool:
    """Tell whether the exit candle touched both the stop and the target it waited for (the stop-first rule decided).

    With a ladder, that target is the next one with a part to take: the stop candle takes no target, so
    the closed operation's reached still points at it.
    """
    target = next_target(closed)
    if exit_ is None or target is None or exit_.reason not in (CloseReason.STOP, CloseReason.TRAILING):
        return False
    index = walk.index_at_or_after(exit_.candle_open_time)
    candle = walk.candle(index)
    best = candle.high if closed.side is Side.BUY else candle.low
    return (best - target) * closed.side.sign >= 0


def _last_closed(series: CandleHistory, length: int, now_ms: int) -> int | None:
    """The index of the last candle closed by now_ms, or None."""
    index = series.index_at_or_after(now_ms - length + 1) - 1
    return index if index >= 0 else None


def _ms(moment: datetime | None) -> int | None:
    return datetime_to_ms(moment) if moment is not None else None


def _say(result: GuardResult) -> str:
    return f"{result.guard}: {result.message}"




# --- kept results (--save) -------------------------------------------------------------------------


def save_backtest(*, store: Store, result: BacktestResult, document: Callable[[str], dict[str, Any]],
                  clock: Clock) -> str:
    """Keep a backtest in the store under a fresh bt- id; return the id. document(id) is what is kept."""
    backtest_id = new_id(BACKTEST_PREFIX)
    saved = SavedBacktest(
        id=backtest_id, created_at=clock.now(), strategy=result.request.strategy.name,
        symbols=tuple(result.candles), trades=len(result.trades),
        total_pnl=sum((t.operation.realized_pnl for t in result.trades), ZERO), document=document(backtest_id),
    )
    with store.transaction() as tx:
        tx.add_backtest(saved)
    return backtest_id


def saved_backtests(*, store: Store) -> list[SavedBacktest]:
    with store.read() as session:
        return session.list_backtests()


def saved_backtest(backtest_id: str, *, store: Store) -> dict[str, Any]:
    """Return a kept backtest's document by id or unique prefix; raise NotFound or AmbiguousId."""
    with store.read() as session:
        return session.get_backtest(session.resolve_backtest_id(backtest_id)).document
