"""Use case: scan strategies over symbols on closed candles; record, decide and (when allowed) enter signals.

For each (strategy, symbol, timeframe): fetch the closed candles the strategy's indicators need
(plus the setups' confirmation windows), compute the indicators, decide every DETECTED signal
from the candles closed since (CONFIRMED / INVALIDATED / EXPIRED), and look for setups on the
last closed candle only. Signals are recorded once per key, so a re-run records nothing twice.
A CONFIRMED signal of a strategy with auto-entry becomes a PENDING intent (source: pattern)
through the same plan use case as `robson plan`, then is validated; it is never executed here.

Candles are fetched concurrently (the market adapter keeps within the exchange's request
weight); indicators, decisions and store writes run on the calling thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from robson.application.plan import Account, PlanRequest, plan
from robson.application.ports import Clock, Exchange, MarketData, SignalEngine, SignalEvaluation, Store
from robson.application.validate import day_start, validate
from robson.domain.conditions import ConfirmRule, ScanDefinition
from robson.domain.guards import Verdict
from robson.domain.intent import IntentSource, TradingIntent
from robson.domain.market import Candle, datetime_to_ms, ms_to_datetime, timeframe_ms
from robson.domain.money import fmt
from robson.domain.signals import Decision, Signal, SignalEvent, SignalStatus, new_signal
from robson.domain.strategy import Strategy
from robson.errors import (
    ExchangeError,
    IllegalTransition,
    InvalidInput,
    MarketDataError,
    Refused,
    RobsonError,
    StrategyError,
)

# A candle that closed this recently may not be served yet (the exchange's clock lags ours a little).
CLOSE_GRACE_MS = 60_000
Progress = Callable[[int, int, str], None]  # (groups done, groups in all, "BTCUSDT 15m")


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """What to scan: strategies (each with a scan section), symbols, an optional timeframe override."""

    strategies: tuple[Strategy, ...]
    symbols: tuple[str, ...]
    timeframe: str | None = None  # None: each strategy's own timeframe
    entries: bool = True  # False (--no-entry): detect and decide only
    # Symbols from the configuration, not named by the trader: leave out the (symbol, timeframe)
    # series the market does not carry at all instead of failing on them every run.
    only_held: bool = False


@dataclass(frozen=True, slots=True)
class Entry:
    """An intent auto-entry created from a CONFIRMED signal, and how its validation went."""

    signal: Signal
    intent: TradingIntent
    verdict: Verdict | None  # None when validation itself could not run (see problem)
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Skip:
    """A CONFIRMED signal auto-entry did not enter, and why."""

    signal: Signal
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """A symbol (or one strategy on it) that could not be scanned, and why."""

    symbol: str
    timeframe: str
    strategies: tuple[str, ...]
    message: str


@dataclass
class ScanReport:
    at: datetime
    market: str
    strategies: tuple[str, ...]
    symbols: tuple[str, ...]
    timeframe: str | None
    entries_enabled: bool
    pairs: int = 0  # (strategy, symbol) pairs asked for: the unit of every count below
    scanned: int = 0  # pairs evaluated
    detected: list[Signal] = field(default_factory=list)  # recorded by this scan
    already_recorded: list[Signal] = field(default_factory=list)  # found again on the same candle
    resolved: list[Signal] = field(default_factory=list)  # decided by this scan
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    not_held: list[Failure] = field(default_factory=list)  # left out: the market has no such series

    @property
    def failed_pairs(self) -> int:
        return sum(len(f.strategies) for f in self.failures)

    @property
    def not_held_pairs(self) -> int:
        return sum(len(f.strategies) for f in self.not_held)

    @property
    def failed(self) -> bool:
        """True when nothing at all could be scanned."""
        return self.scanned == 0 and bool(self.failures)

    def count(self, status: SignalStatus) -> int:
        return sum(1 for s in self.resolved if s.status is status)


@dataclass(frozen=True, slots=True)
class _Confirmed:
    signal: Signal
    decision: Decision
    strategy: Strategy
    timeframe: str
    last_open_time: int  # the last closed candle when it was confirmed


def candles_to_fetch(definition: ScanDefinition) -> int:
    """Closed candles one scan of definition needs: settled indicators plus the longest confirmation window."""
    return definition.candles_needed + max(setup.window for setup in definition.setups)


def scan(
    request: ScanRequest,
    *,
    store: Store,
    market: MarketData,
    exchange: Exchange,
    account: Account,
    clock: Clock,
    engine: SignalEngine,
    validation_exchange: Exchange | None = None,
    max_workers: int = 4,
    on_progress: Progress | None = None,
) -> ScanReport:
    """Scan every (strategy, symbol); return what was recorded, decided, entered, skipped and failed.

    engine evaluates the strategies' setups (robson.adapters.signal_engine.SignalEngine), on this
    thread only: the same evaluator the backtest uses. exchange sizes plans, as `robson plan` does; validation_exchange (default:
    exchange) is the one validation checks. A symbol that fails (unknown, delisted, no fresh data,
    exchange error) is reported in failures and the others are still scanned. Raise InvalidInput
    for a strategy without a scan section or an unknown timeframe.
    """
    now = clock.now()
    groups = _groups(request)
    report = ScanReport(
        at=now, market=market.name, strategies=tuple(s.name for s in request.strategies),
        symbols=request.symbols, timeframe=request.timeframe, entries_enabled=request.entries,
    )
    report.pairs = sum(len(strategies) for strategies in groups.values())
    if request.only_held:
        for (symbol, timeframe), strategies in list(groups.items()):
            if not market.holds(symbol, timeframe):
                del groups[(symbol, timeframe)]
                report.not_held.append(Failure(symbol, timeframe, tuple(s.name for s in strategies),
                                               f"the {market.name} market has no {symbol} {timeframe} candles"))
    names = set(report.strategies)
    with store.read() as session:
        pending = [s for s in session.list_signals(SignalStatus.DETECTED) if s.strategy in names]
    confirmed: list[_Confirmed] = []
    done = 0
    for (symbol, timeframe), strategies, outcome in _fetch_all(market, groups, max_workers):
        problem = _message(outcome) if isinstance(outcome, RobsonError) else _stale(outcome, timeframe, now)
        if problem is not None:
            report.failures.append(Failure(symbol, timeframe, tuple(s.name for s in strategies), problem))
        else:
            for strategy in strategies:
                waiting = [s for s in pending if (s.strategy, s.symbol, s.timeframe) == (strategy.name, symbol, timeframe)]
                _scan_one(strategy, symbol, timeframe, outcome, waiting, engine=engine, store=store, now=now,
                          report=report, confirmed=confirmed)
        done += 1
        if on_progress is not None:
            on_progress(done, len(groups), f"{symbol} {timeframe}")
    for item in sorted(confirmed, key=lambda c: (c.signal.candle_open_time, c.signal.strategy, c.signal.symbol)):
        _enter(item, request=request, store=store, market=market, exchange=exchange,
               validation_exchange=validation_exchange or exchange, account=account, clock=clock, report=report)
    _sort(report)
    return report


def _groups(request: ScanRequest) -> dict[tuple[str, str], list[Strategy]]:
    """Group the strategies by (symbol, timeframe) so each series is fetched once."""
    if request.timeframe is not None:
        timeframe_ms(request.timeframe)
    groups: dict[tuple[str, str], list[Strategy]] = {}
    for strategy in request.strategies:
        if strategy.scan is None:
            raise InvalidInput(f"strategy '{strategy.name}' has no scan section: it is entered by hand")
        timeframe = request.timeframe or strategy.timeframe
        for symbol in request.symbols:
            groups.setdefault((symbol.strip().upper(), timeframe), []).append(strategy)
    return groups


def _fetch_all(market: MarketData, groups: dict[tuple[str, str], list[Strategy]], max_workers: int):
    """Yield ((symbol, timeframe), strategies, candles or the error) as each fetch completes."""
    with ThreadPoolExecutor(max_workers=max(1, max_workers), thread_name_prefix="scan-fetch") as pool:
        futures: dict[Future[list[Candle]], tuple[str, str]] = {
            pool.submit(market.candles, symbol, timeframe, max(candles_to_fetch(s.scan) for s in strategies)):
                (symbol, timeframe)
            for (symbol, timeframe), strategies in groups.items()
        }
        for future in as_completed(futures):
            key = futures[future]
            try:
                outcome: list[Candle] | RobsonError = future.result()
            except (InvalidInput, MarketDataError, ExchangeError) as e:  # NotFound is an InvalidInput
                outcome = e
            yield key, groups[key], outcome


def _message(error: RobsonError) -> str:
    return f"{error.message} ({error.hint})" if error.hint else error.message


def _stale(candles: list[Candle], timeframe: str, now: datetime) -> str | None:
    """Say why the series is unusable when its last closed candle is not the one that just closed."""
    length = timeframe_ms(timeframe)
    expected = (datetime_to_ms(now) - CLOSE_GRACE_MS) // length * length - length
    if candles and candles[-1].open_time >= expected:
        return None
    when = _utc(candles[-1].open_time + length) if candles else "never"
    return f"no fresh {timeframe} candle: the last one closed {when}, the latest should have closed " \
           f"{_utc(expected + length)}"


def _utc(ms: int) -> str:
    """Return the time ms (epoch milliseconds) as 'YYYY-MM-DD HH:MM UTC', as every message here writes it."""
    return f"{ms_to_datetime(ms):%Y-%m-%d %H:%M} UTC"


def _scan_one(strategy: Strategy, symbol: str, timeframe: str, candles: list[Candle], waiting: list[Signal], *,
              engine: SignalEngine, store: Store, now: datetime, report: ScanReport,
              confirmed: list[_Confirmed]) -> None:
    """Decide the DETECTED signals of one (strategy, symbol, timeframe), then detect on the last closed candle.

    A setup that asks for no confirmation (confirm: none) is CONFIRMED by its own candle at once.
    """
    definition = strategy.scan
    assert definition is not None  # checked by _groups
    window = candles[-candles_to_fetch(definition):]
    try:
        evaluation = engine.evaluate(definition, window)
        decisions = [(signal, _decide(signal, definition, evaluation)) for signal in waiting]
        detections = [(setup, d) for setup in definition.setups
                      if (d := evaluation.detection(setup, -1)) is not None]
    except (InvalidInput, MarketDataError) as e:
        report.failures.append(Failure(symbol, timeframe, (strategy.name,), _message(e)))
        return
    report.scanned += 1
    for signal, decision in decisions:
        if decision.event is None:
            continue
        decided = signal.apply(decision.event, now, _resolution(decision))
        try:
            with store.transaction() as tx:
                tx.update_signal(decided, expected_status=SignalStatus.DETECTED)
        except IllegalTransition:
            continue  # another scan decided it first: its verdict stands
        report.resolved.append(decided)
        if decided.status is SignalStatus.CONFIRMED:
            confirmed.append(_Confirmed(decided, decision, strategy, timeframe, window[-1].open_time))
    for setup, detection in detections:
        signal = new_signal(detection, strategy=strategy.name, symbol=symbol, timeframe=timeframe, at=now)
        decision = evaluation.decide(signal, setup) if setup.confirm is ConfirmRule.NONE else None
        with store.transaction() as tx:
            added = tx.add_signal(signal)
            if added and decision is not None:
                signal = signal.apply(SignalEvent.CONFIRM, now, _resolution(decision))
                tx.update_signal(signal, expected_status=SignalStatus.DETECTED)
            if not added:  # show the signal recorded earlier, not the copy that was not stored
                signal = next((s for s in tx.list_signals(strategy=strategy.name, symbol=symbol)
                               if s.key == signal.key), signal)
        (report.detected if added else report.already_recorded).append(signal)
        if added and decision is not None:
            report.resolved.append(signal)
            confirmed.append(_Confirmed(signal, decision, strategy, timeframe, window[-1].open_time))


def _decide(signal: Signal, definition: ScanDefinition, evaluation: SignalEvaluation) -> Decision:
    try:
        setup = definition.setup(signal.pattern)
    except StrategyError:
        return Decision(SignalEvent.EXPIRE, f"the strategy no longer has the setup '{signal.pattern}'")
    try:
        return evaluation.decide(signal, setup)
    except MarketDataError as e:
        # Its candle is later than the market's clock (a replay moved back in time): leave it for later.
        return Decision(None, e.message)


def _resolution(decision: Decision) -> str:
    """The decision's reason with the candle that decided and the values it looked at."""
    if decision.candle_open_time is None:
        return decision.reason
    values = ", ".join(f"{name} {'n/a' if value is None else fmt(value)}" for name, value in decision.values.items())
    when = f"{_utc(decision.candle_open_time)} candle"
    return f"{decision.reason} ({when}" + (f": {values})" if values else ")")


def _enter(item: _Confirmed, *, request: ScanRequest, store: Store, market: MarketData, exchange: Exchange,
           validation_exchange: Exchange, account: Account, clock: Clock, report: ScanReport) -> None:
    """Create and validate an intent from a CONFIRMED signal, or record why not."""
    signal, strategy, rules = item.signal, item.strategy, item.strategy.auto_entry
    if rules is None:
        return  # a manual strategy: the trader reads the signal and plans by hand
    reason = _entry_refusal(item, request, store, clock.now())
    if reason is not None:
        report.skipped.append(Skip(signal, reason))
        return
    try:
        intent = plan(
            PlanRequest(side=signal.side, symbol=signal.symbol, strategy=strategy, timeframe=item.timeframe,
                        source=IntentSource.PATTERN, confidence=signal.confidence, signal_id=signal.id,
                        note=f"scan: {signal.pattern} on the {_utc(signal.candle_open_time)} {signal.timeframe} "
                             f"candle, confidence {fmt(signal.confidence)}"),
            store=store, market=market, exchange=exchange, account=account, clock=clock,
        )
    except (InvalidInput, Refused, MarketDataError, ExchangeError) as e:
        report.skipped.append(Skip(signal, f"plan refused: {_message(e)}"))
        return
    with store.transaction() as tx:
        current = tx.get_signal(signal.id)
        linked = dataclasses.replace(current, intent_id=intent.id, updated_at=clock.now())
        tx.update_signal(linked, expected_status=SignalStatus.CONFIRMED)
    try:
        outcome = validate(intent.id, strategy=strategy, store=store, market=market, exchange=validation_exchange,
                           account=account, clock=clock)
    except RobsonError as e:
        report.entries.append(Entry(linked, intent, None, f"validation could not run: {_message(e)}"))
        return
    report.entries.append(Entry(linked, outcome.intent, outcome.verdict))


def _entry_refusal(item: _Confirmed, request: ScanRequest, store: Store, now: datetime) -> str | None:
    """Say why auto-entry must not enter this confirmation, or None to enter it."""
    signal, strategy, rules = item.signal, item.strategy, item.strategy.auto_entry
    assert rules is not None
    if not request.entries:
        return "--no-entry: detection only"
    if item.decision.candle_open_time != item.last_open_time:
        when = _utc(item.decision.candle_open_time or signal.candle_open_time)
        return f"confirmed on the {when} candle, not the last closed one: too late to enter"
    if signal.confidence < rules.min_confidence:
        return f"confidence {fmt(signal.confidence)} < min {fmt(rules.min_confidence)}"
    with store.read() as session:
        entries = [i for i in session.list_intents()
                   if i.source is IntentSource.PATTERN and i.strategy == strategy.name]
    start = day_start(now)
    today = [i for i in entries if start <= i.created_at < start + timedelta(days=1)]
    if len(today) >= rules.max_entries_per_day:
        return f"max entries per day reached: {len(today)} of {rules.max_entries_per_day} today (UTC)"
    on_symbol = [i.created_at for i in entries if i.symbol == signal.symbol and i.created_at <= now]
    if on_symbol and now - max(on_symbol) < timedelta(minutes=rules.cooldown_minutes):
        minutes = int((now - max(on_symbol)).total_seconds() // 60)
        return (f"cooldown: last {strategy.name} entry on {signal.symbol} {minutes} min ago "
                f"< {rules.cooldown_minutes} min")
    return None


def _sort(report: ScanReport) -> None:
    """Order every list the same way on every run, whatever order the fetches finished in."""
    def key(s: Signal) -> tuple:
        return (s.candle_open_time, s.strategy, s.symbol, s.pattern)

    report.detected.sort(key=key)
    report.already_recorded.sort(key=key)
    report.resolved.sort(key=key)
    report.entries.sort(key=lambda e: key(e.signal))
    report.skipped.sort(key=lambda s: key(s.signal))
    report.failures.sort(key=lambda f: (f.symbol, f.timeframe, f.strategies))
    report.not_held.sort(key=lambda f: (f.symbol, f.timeframe, f.strategies))
