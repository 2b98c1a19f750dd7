"""Parse candle files for import: freqtrade-style JSON and Binance kline CSV, all rows checked first.

Nothing is half-imported: a file with any bad row raises DataImportError listing every problem.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

from robson.domain.market import Candle, ms_to_datetime, timeframe_ms
from robson.errors import DataImportError, NotFound

MAX_PROBLEMS = 50
# Binance's spot files switched open_time to microseconds in 2025; ms stays below this until year 5138.
_MICROSECOND_THRESHOLD = 10**14
_CSV_COLUMNS = (12, 6)  # Binance kline layout, or its first six columns
_JSON_COLUMNS = (6,)  # freqtrade: [open_time, open, high, low, close, volume]
_VALUE_FIELDS = ("open", "high", "low", "close", "volume")


def parse_candle_file(path: Path, timeframe: str) -> list[Candle]:
    """Parse a JSON or CSV candle file, oldest first; raise NotFound, InvalidInput or DataImportError."""
    length = timeframe_ms(timeframe)
    if not path.is_file():
        raise NotFound(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DataImportError(f"{path.name} is not a text file (expected JSON or CSV candles)", []) from None
    except OSError as e:
        raise DataImportError(f"cannot read {path}: {e.strerror}", []) from e
    stripped = text.lstrip()
    if not stripped:
        raise DataImportError(f"{path.name} is empty: no candles to import", [])
    if stripped.startswith("["):
        rows, columns = _json_rows(path.name, stripped), _JSON_COLUMNS
    else:
        rows, columns = _csv_rows(text), _CSV_COLUMNS
    if not rows:
        raise DataImportError(f"{path.name} has no candle rows", [])
    checker = _Checker(timeframe, length, columns)
    for label, cells in rows:
        checker.check(label, cells)
    if checker.problems:
        problems = checker.problems
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(problems) - MAX_PROBLEMS} more problems")
        raise DataImportError(
            f"{path.name}: {len(problems)} problem(s) in {len(rows)} rows, nothing imported",
            shown,
        )
    return checker.candles


def _json_rows(name: str, text: str) -> list[tuple[str, list[object]]]:
    """Split freqtrade JSON into (label, cells); numbers become exact Decimals of their text."""
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as e:
        problem = f"line {e.lineno} column {e.colno}: {e.msg}"
        raise DataImportError(f"{name} is not valid JSON ({problem})", [problem]) from None
    except RecursionError:
        raise DataImportError(f"{name}: JSON nested far too deeply for candle rows", []) from None
    if not isinstance(data, list):
        raise DataImportError(f"{name}: expected a JSON array of [time, open, high, low, close, volume] rows", [])
    return [(f"row {index}", row if isinstance(row, list) else [row]) for index, row in enumerate(data, start=1)]


def _csv_rows(text: str) -> list[tuple[str, list[object]]]:
    """Split Binance kline CSV into (label, cells), skipping blank lines and a header line."""
    rows: list[tuple[str, list[object]]] = []
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells: list[object] = [cell.strip().strip('"') for cell in line.split(",")]
        if first and not any(_is_number(cell) for cell in cells):
            first = False
            continue  # a header such as open_time,open,high,...
        first = False
        rows.append((f"line {number}", cells))
    return rows


def _shown(cell: object) -> str:
    """Return a cell as a problem shows it: short (a cell may be a huge or deeply nested value)."""
    try:
        text = cell if isinstance(cell, str) else json.dumps(cell, default=str)
    except (RecursionError, ValueError):
        text = f"a nested {type(cell).__name__}"
    return text if len(text) <= 40 else text[:37] + "…"


def _is_number(cell: object) -> bool:
    try:
        return Decimal(str(cell)).is_finite()
    except InvalidOperation:
        return False


class _Checker:
    """Check rows one by one, collecting every problem and the good candles."""

    def __init__(self, timeframe: str, length: int, columns: tuple[int, ...]) -> None:
        self.timeframe = timeframe
        self.length = length
        self.columns = columns
        self.problems: list[str] = []
        self.candles: list[Candle] = []
        self.latest: tuple[int, str] | None = None  # greatest open_time so far and its row label
        self.seen: dict[int, str] = {}

    def check(self, label: str, cells: list[object]) -> None:
        """Validate one row; on success keep its candle."""
        if len(cells) not in self.columns:
            expected = " or ".join(str(n) for n in self.columns)
            self.problems.append(f"{label}: expected {expected} columns, got {len(cells)}")
            return
        found = len(self.problems)
        open_time = self._open_time(label, cells[0])
        if open_time is not None:
            self._check_time(label, open_time)
        values = [self._decimal(label, name, cell) for name, cell in zip(_VALUE_FIELDS, cells[1:6])]
        for name, value in zip(_VALUE_FIELDS, values):
            if value is not None and name != "volume" and value <= 0:
                self.problems.append(f"{label}: {name} {value} must be greater than 0")
            elif value is not None and value < 0:
                self.problems.append(f"{label}: volume {value} is negative")
        numbers = [value for value in values if value is not None]
        if len(numbers) < len(values):
            return
        open_, high, low, close, volume = numbers
        if high < max(open_, close):
            self.problems.append(f"{label}: high {high} is below max(open, close) {max(open_, close)}")
        if low > min(open_, close):
            self.problems.append(f"{label}: low {low} is above min(open, close) {min(open_, close)}")
        if len(self.problems) == found and open_time is not None:
            self.candles.append(Candle(open_time, open_, high, low, close, volume))

    def _open_time(self, label: str, cell: object) -> int | None:
        number = self._decimal(label, "open_time", cell)
        if number is None:
            return None
        if number != number.to_integral_value() or number <= 0:
            self.problems.append(f"{label}: open_time '{cell}' is not a positive whole number of milliseconds")
            return None
        value = int(number)
        if value >= _MICROSECOND_THRESHOLD:
            if value % 1000:
                self.problems.append(f"{label}: open_time {value} (microseconds) is not a whole millisecond")
                return None
            value //= 1000
        if value >= _MICROSECOND_THRESHOLD:
            self.problems.append(f"{label}: open_time {cell} is out of range (expected epoch ms or µs)")
            return None
        return value

    def _decimal(self, label: str, name: str, cell: object) -> Decimal | None:
        if isinstance(cell, bool) or not isinstance(cell, (str, Decimal)):
            self.problems.append(f"{label}: {name} {_shown(cell)} is not a number")
            return None
        if isinstance(cell, str) and not cell.isascii():  # Decimal() reads '١٢٣' as 123
            self.problems.append(f"{label}: {name} '{_shown(cell)}' is not a number written with the digits 0-9")
            return None
        try:
            number = Decimal(cell.strip()) if isinstance(cell, str) else cell
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            self.problems.append(f"{label}: {name} '{_shown(cell)}' is not a number")
            return None
        return number

    def _check_time(self, label: str, open_time: int) -> None:
        shown = f"{open_time} ({ms_to_datetime(open_time):%Y-%m-%d %H:%M:%S} UTC)"
        if open_time % self.length:
            self.problems.append(f"{label}: open_time {shown} is not aligned to the {self.timeframe} timeframe")
        if open_time in self.seen:
            self.problems.append(f"{label}: duplicate open_time {shown}, already on {self.seen[open_time]}")
        elif self.latest is not None and open_time < self.latest[0]:
            self.problems.append(f"{label}: out-of-order open_time {shown}, before {self.latest[1]}")
        else:
            self.latest = (open_time, label)
        self.seen.setdefault(open_time, label)
