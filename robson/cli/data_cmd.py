"""`robson data import|list`: more candles for the local market."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, table

app = typer.Typer(help="Local market data: import candles, list imported series.\n\nExample: robson data import BTCUSDT-1h.json --symbol BTCUSDT --timeframe 1h", no_args_is_help=True, rich_markup_mode=None)


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="freqtrade-style JSON ([[ms,o,h,l,c,v],...]) or Binance kline CSV.")],
    symbol: Annotated[str, typer.Option("--symbol", help="Symbol the candles belong to, e.g. BTCUSDT.")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="Timeframe of the candles, e.g. 5m, 1h.")],
    as_json: JsonOption = False,
) -> None:
    """Import candles; bad rows are listed with their line numbers and nothing is imported.

    Example: robson data import BTCUSDT-1h.json --symbol BTCUSDT --timeframe 1h
    """
    from robson.adapters.market.importer import parse_candle_file
    from robson.application.market_data import import_candles

    candles = parse_candle_file(file, timeframe)
    result = import_candles(symbol, timeframe, candles, store=container(ctx).store)
    emit(as_json, result, lambda: console().print(
        f"Imported {result['candles']} {result['timeframe']} candles of {result['symbol']} "
        f"({result['first']} → {result['last']} UTC)."))


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List imported candle series.

    Example: robson data list
    """
    with container(ctx).store.read() as session:
        series = session.candle_series()
    emit(as_json, {"series": [{"symbol": s, "timeframe": t, "candles": n} for s, t, n in series]},
         lambda: console().print(table("Imported candles", ["symbol", "timeframe", "candles"], series)))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")
