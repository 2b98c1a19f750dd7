"""The `robson` command: global options, sub-commands and the one error boundary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from typing import Annotated, Any

import typer
from typer._click import Command  # typer vendors click
from typer._click.exceptions import NoSuchOption, UsageError
from typer.core import TyperCommand, TyperGroup
from typer.main import get_group

from robson import __version__
from robson.errors import RobsonError


GLOBAL_OPTIONS = ("--config", "--db", "--as-of", "--market")

# Every sub-command, in the order `robson --help` lists them: the module in robson.cli whose register() adds it,
# and the first sentence of its help. The listing is printed from here and a module is imported only when its
# command runs, so `robson --help` imports no command and each command imports only what it uses.
# tests/cli/test_lazy_commands.py holds this table to the modules.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("trade_cmd", "Run every risk guard on an intent: PASS / WARN / FAIL with numbers; VALIDATED or FAILED (exit 3)."),
    "execute": ("trade_cmd", "Execute a VALIDATED intent: market entry, protective stop, operation."),
    "reconcile": ("reconcile_cmd", "Settle every intent left in EXECUTING by a crash or a lost answer: adopt, finish or fail it."),
    "init": ("config_cmd", "Write a starter config (.robson.yaml): the documented example, every setting with its default."),
    "monitor": ("monitor_cmd", "Watch ACTIVE operations: stops, targets, trailing stops and time exits, paper and live."),
    "alert": ("alert_cmd", "Price alerts: be told when a price is reached, and have a plan validated then."),
    "report": ("report_cmd", "Performance of closed operations per strategy: trades, win rate, average R, expectancy, profit "
               "factor, total P&L, max drawdown, best and worst trade, and a per-day or per-month breakdown."),
    "scan": ("scan_cmd", "Find the strategies' setups on the last closed candle; confirm, invalidate or expire earlier signals."),
    "unlock": ("unlock_cmd", "List the locks and their leases, or remove one (exit 4 said who holds it) once you know its holder is gone; asks first unless --yes."),
    "plan": ("plan_cmd", "Create a trading intent and manage the queue of intents."),
    "operation": ("operation_cmd", "Open positions: status with P&L, list, show the audit trail, modify the stop or target, "
                  "close by hand."),
    "account": ("account_cmd", "Balances, equity at current prices, open positions' risk to stop, exposure, and realized "
                "P&L against the loss limits."),
    "paper": ("paper_cmd", "The paper wallet as a ledger: deposit, withdraw, reset."),
    "strategy": ("strategy_cmd", "Strategies: bundled ones and your own YAML files."),
    "config": ("config_cmd", "Show and check the effective configuration."),
    "data": ("data_cmd", "Local market data: import candles, list imported series."),
    "signals": ("signals_cmd", "Signals recorded by `robson scan`: list them, show one with its reasons."),
    "backtest": ("backtest_cmd", "Replay a strategy over history; list and show saved backtests."),
}


class NotLoaded(TyperCommand):
    """A sub-command whose module is not imported yet: its name and summary, enough for the root's help."""


class RobsonGroup(TyperGroup):
    """Root group whose invoke is the error boundary: project errors become `Error: …` and an exit code.

    Under --json an error also prints one document on stdout, {"error": {"code", "message", "hint"}},
    unless the command printed its own document already (validate's report before its exit 3).
    Its sub-commands start as NotLoaded stand-ins from COMMANDS and are imported by get_command when asked for.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, summary) in COMMANDS.items():
            self.commands.setdefault(name, NotLoaded(name, help=summary))

    def get_command(self, ctx: Any, cmd_name: str) -> Command | None:
        """Return the sub-command cmd_name, importing its module the first time; None if there is none."""
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, NotLoaded):
            command = self.commands[cmd_name] = _load(cmd_name, self)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List the commands as TyperGroup does, but from self.commands: get_command would import them all."""
        commands = [(name, command) for name, command in self.commands.items() if not command.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in commands])

    def invoke(self, ctx: Any) -> Any:
        from robson.cli.output import err_console, reset_consoles

        reset_consoles()
        args = [*ctx._protected_args, *ctx.args]
        as_json = "--json" in (args[:args.index("--")] if "--" in args else args)
        try:
            return super().invoke(ctx)
        except RobsonError as e:
            _print_error(str(e), e.hint, e.exit_code, as_json)
            for problem in getattr(e, "problems", []):
                err_console().print(f"  {problem}", markup=False)
            raise typer.Exit(e.exit_code) from None
        except BrokenPipeError:  # `robson ... | head`: the reader left; stop quietly
            from robson.cli.output import reader_left

            reader_left()
            raise typer.Exit(0) from None
        except UsageError as e:
            _usage_hint(e, args)
            if as_json:
                _print_json_error(e.exit_code, e.format_message(), None)
            raise
        except Exception as e:  # a bug: say so without locals; ROBSON_DEBUG shows the trace
            if type(e).__module__.startswith(("typer", "click")):
                raise
            if os.environ.get("ROBSON_DEBUG"):
                import traceback

                traceback.print_exc()
            _print_error(f"internal error ({type(e).__name__}): {e}", "set ROBSON_DEBUG=1 to see the traceback", 1,
                         as_json)
            raise typer.Exit(1) from None
        finally:
            if isinstance(ctx.obj, GlobalOptions):
                ctx.obj.close()


def _load(name: str, root: TyperGroup) -> Command:
    """Import the module of command name and convert what it registers, as registering on the root app would."""
    module = import_module(f"robson.cli.{COMMANDS[name][0]}")
    # Converted with the root's settings, as Typer converts sub-apps: their own rich_markup_mode is not used.
    holder = typer.Typer(rich_markup_mode=root.rich_markup_mode, suggest_commands=root.suggest_commands)
    module.register(holder)
    return get_group(holder).commands[name]


def _usage_hint(error: UsageError, args: list[str]) -> None:
    """A global option given after the command: say where it goes, with the command line fixed."""
    option = getattr(error, "option_name", None)
    if not isinstance(error, NoSuchOption) or option not in GLOBAL_OPTIONS:
        return
    rest, moved = list(args), []
    for index, arg in enumerate(rest):
        if arg == option and index + 1 < len(rest):
            moved, rest = [arg, rest[index + 1]], rest[:index] + rest[index + 2:]
            break
        if arg.startswith(f"{option}="):
            moved, rest = [arg], rest[:index] + rest[index + 1:]
            break
    import shlex

    fixed = shlex.join(["robson", *moved, *rest]) if moved else f"robson {option} VALUE COMMAND ..."
    error.message = f"{option} is a global option and goes before the command: {fixed}"
    error.possibilities = None


def _print_error(message: str, hint: str | None, code: int, as_json: bool) -> None:
    from robson.cli.output import err_console

    console = err_console()
    console.print(f"Error: {message}", markup=False, soft_wrap=True)
    if hint:
        console.print(f"Hint: {hint}", markup=False, soft_wrap=True)
    if as_json:
        _print_json_error(code, message, hint)


def _print_json_error(code: int, message: str, hint: str | None) -> None:
    from robson.cli.output import json_printed, print_json

    if not json_printed():  # exactly one document on stdout
        print_json({"error": {"code": code, "message": message, "hint": hint}})


app = typer.Typer(
    cls=RobsonGroup,
    name="robson",
    help="robson — a trading risk assistant for Binance spot: plan, validate, execute (dry-run by default), watch.\n\n"
    "Example: robson plan buy BTCUSDT --strategy all-in",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,  # plain help: instant, and readable when piped
)


@dataclass
class GlobalOptions:
    config: str | None = None
    db: str | None = None
    as_of: str | None = None
    market: str | None = None
    _container: Any = None

    def close(self) -> None:
        """Release what the command opened (the store's connections), in-process runs included."""
        if self._container is not None:
            self._container.close()

    def container(self):
        if self._container is None:
            from robson.bootstrap import Container

            overrides = {"database": self.db, "as_of": self.as_of, "market": self.market}
            self._container = Container.from_options(config_path=self.config, overrides=overrides)
        return self._container


def _version(value: bool) -> None:
    if value:
        print(f"robson {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", help="Config file (default ./.robson.yaml, then the user config dir).")] = None,
    db: Annotated[str | None, typer.Option("--db", help="Database file or URL (env ROBSON_DB).")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Replay the sample market at this UTC time, e.g. 2021-06-01T12:00 (env ROBSON_AS_OF).")] = None,
    market: Annotated[str | None, typer.Option("--market", help="Market data: sample or binance (env ROBSON_MARKET).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Global options go before the command: robson --as-of 2021-06-01T12:00 plan buy BTCUSDT."""
    ctx.obj = GlobalOptions(config=config, db=db, as_of=as_of, market=market)


def container(ctx: typer.Context):
    """Return the adapters for this run, built from the global options on first use."""
    options = ctx.find_root().obj
    if options is None:  # invoked without the root callback (never from the command line)
        options = ctx.find_root().obj = GlobalOptions()
    return options.container()
