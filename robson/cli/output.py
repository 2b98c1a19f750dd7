"""One way to print for every command: a JSON document or rich tables, logs to stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import typer

from robson.domain.money import fmt

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout (money as strings).")]


def to_jsonable(value: Any) -> Any:
    """Turn Decimals into strings, datetimes into ISO text, enums into their values."""
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):  # never a JSON float: money and quantities are strings
        return fmt(Decimal(repr(value)))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(document: Any, *, one_line: bool = False) -> None:
    """Print exactly one JSON document on stdout (one_line: compact, for a stream of documents)."""
    global _json_printed
    _json_printed = True
    indent = None if one_line else 2
    try:
        sys.stdout.write(json.dumps(to_jsonable(document), indent=indent, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        reader_left()


def json_printed() -> bool:
    """Tell whether this command run has printed its JSON document already."""
    return _json_printed


def reader_left() -> None:
    """The reader of stdout left (`robson execute … | head -1`): drop the rest of the output and carry on.

    The command's work (an order placed, a stop moved) and its exit code stay what they are;
    only the printing stops. Rich's default would exit 1 mid-command.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's captured stdout)
        pass
    if _console is not None:
        _console.quiet = True


_console = None
_err_console = None
_json_printed = False


def console():
    """Return the stdout console (colour off with NO_COLOR or when not a terminal)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(highlight=False, soft_wrap=False, markup=False, **_plain_if_no_color())
        if not _console.is_terminal and "COLUMNS" not in os.environ:
            # Piped or captured output: wide enough that tables do not fold into unreadable columns.
            _console = Console(highlight=False, soft_wrap=False, width=160, markup=False, **_plain_if_no_color())
        _console.on_broken_pipe = reader_left  # type: ignore[method-assign]
    return _console


def err_console():
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, highlight=False, markup=False, **_plain_if_no_color())
    return _err_console


def _plain_if_no_color() -> dict[str, Any]:
    """NO_COLOR set (to anything but empty): no escape codes at all, bold included (rich keeps bold otherwise)."""
    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


def reset_consoles() -> None:
    """Forget cached consoles and printed state (CliRunner swaps sys.stdout between invocations)."""
    global _console, _err_console, _json_printed
    _console = _err_console = None
    _json_printed = False


def emit(as_json: bool, document: Any, render: Callable[[], None]) -> None:
    """Print document as JSON, or call render for the human form."""
    if as_json:
        print_json(document)
    else:
        render()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, caption: str | None = None):
    """Build a rich table with the given columns; cells are turned into text."""
    from rich.table import Table

    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for index, column in enumerate(columns):
        # IDs stay on one line so they can be copied.
        t.add_column(column, overflow="fold", no_wrap=index == 0)
    cells = [[_cell(cell) for cell in row] for row in rows]
    if len(cells) > 1 and _every_row_fits_on_a_line(columns, cells):
        # The same table drawn as one row whose cells hold a column's values one per line: rich's cost is per
        # cell, so 200 operations list in a third of the time. Equal only while no cell wraps, hence the check.
        from rich.text import Text

        t.add_row(*(Text("\n").join(column) for column in zip(*cells)))
    else:
        for row in cells:
            t.add_row(*row)
    return t


def _every_row_fits_on_a_line(columns: Sequence[str], cells: list[list[Any]]) -> bool:
    """True when the table's natural width fits the console and no cell holds a line break: nothing wraps."""
    from rich.cells import cell_len

    width = 1  # the left border; each column adds its padding (2) and its right border (1)
    for header, column in zip(columns, zip(*cells)):
        if any("\n" in cell.plain for cell in column):
            return False
        width += max(cell_len(header), *(cell_len(cell.plain) for cell in column)) + 3
    return width <= console().width


def _cell(value: Any):
    """Render a value as plain text: user text is never read as rich markup."""
    from rich.text import Text

    if isinstance(value, Text):
        return value
    return Text("-" if value is None else value if isinstance(value, str) else str(to_jsonable(value)))


def key_values(title: str | None, pairs: Iterable[tuple[str, Any]]):
    """Build a two-column table of labels and values."""
    from rich.table import Table

    t = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for key, value in pairs:
        t.add_row(key, _cell(value))
    return t


VERDICT_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red"}


def styled_verdict(verdict: str):
    from rich.text import Text

    return Text(verdict, style=VERDICT_STYLE.get(verdict, ""))


def ask(question: str) -> str:
    """Ask on stderr and return the line typed on stdin ('' at end of input): stdout stays the command's alone."""
    sys.stderr.write(question)
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError, KeyboardInterrupt):  # no stdin, or Ctrl-C at the prompt
        answer = ""
    if not answer.endswith("\n"):
        sys.stderr.write("\n")  # what follows starts on a line of its own
    return answer.strip()


def log(message: str) -> None:
    """Write a progress or log line to stderr."""
    err_console().print(message, markup=False, soft_wrap=True)  # one log line stays one line (grep, cron mail)


def time_option(text: str | None, option: str) -> datetime | None:
    """Parse an option's UTC time (2021-06-01, 2021-06-01T12:00); raise InvalidInput naming the option."""
    if text is None:
        return None
    from robson.config import parse_time
    from robson.errors import InvalidInput

    try:
        return parse_time(text)
    except ValueError as e:
        raise InvalidInput(f"{option} {e}") from None
