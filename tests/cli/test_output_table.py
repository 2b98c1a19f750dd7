"""output.table draws a long table as one row of multi-line cells when nothing wraps: the same text, faster."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from robson.cli import output

COLUMNS = ["id", "status", "position", "realized", "opened (UTC)"]


def rows(count: int) -> list[tuple]:
    return [(f"op-{i:08x}", ("ACTIVE", "CLOSED")[i % 2], "BUY BTCUSDT", f"{-1.5 * i:.2f}", "2021-06-01 12:00")
            for i in range(count)]


def drawn(table: Table, width: int, colour: bool) -> str:
    console = Console(file=io.StringIO(), width=width, highlight=False, markup=False, soft_wrap=False,
                      color_system="truecolor" if colour else None, force_terminal=colour)
    console.print(table)
    return console.file.getvalue()


def row_by_row(title: str, data: list[tuple]) -> Table:
    """The table as rich draws it with one row per record: what output.table must look like."""
    table = Table(title=title, title_justify="left", caption_justify="left")
    for index, column in enumerate(COLUMNS):
        table.add_column(column, overflow="fold", no_wrap=index == 0)
    for record in data:
        table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in record))
    return table


@pytest.mark.parametrize("width", [160, 80, 62, 40])
@pytest.mark.parametrize("colour", [False, True])
def test_a_table_looks_the_same_whether_or_not_it_fits_the_width(width, colour, monkeypatch):
    data = rows(25) + [("op-ffffffff", Text("FAILED", style="bold red"), "SELL ETHUSDT", "12.00", "2021-06-02 00:00")]
    console = Console(file=io.StringIO(), width=width, highlight=False, markup=False, soft_wrap=False)
    monkeypatch.setattr(output, "_console", console)

    assert drawn(output.table("Operations", COLUMNS, data), width, colour) == drawn(row_by_row("Operations", data),
                                                                                  width, colour)


def test_a_cell_with_a_line_break_keeps_one_row_per_record(monkeypatch):
    data = rows(3) + [("op-ffffffff", "CLOSED", "BUY\nBTCUSDT", "1.00", "2021-06-02 00:00")]
    monkeypatch.setattr(output, "_console", Console(file=io.StringIO(), width=160))

    assert output.table("T", COLUMNS, data).row_count == 4
    assert drawn(output.table("T", COLUMNS, data), 160, False) == drawn(row_by_row("T", data), 160, False)


def test_a_table_that_fits_is_drawn_as_one_row_of_columns(monkeypatch):
    monkeypatch.setattr(output, "_console", Console(file=io.StringIO(), width=160))

    assert output.table("T", COLUMNS, rows(200)).row_count == 1
    assert output.table("T", COLUMNS, rows(1)).row_count == 1
    assert output.table("T", COLUMNS, []).row_count == 0
