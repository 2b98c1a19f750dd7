"""The root's table of commands (robson.cli.app.COMMANDS) against the modules it stands for."""

import importlib
import pkgutil

import pytest
import typer
from typer._click import Context
from typer.core import TyperGroup
from typer.main import get_command, get_group

import robson.cli
from robson.cli.app import COMMANDS, NotLoaded, RobsonGroup, app
from tests.cli.conftest import assert_user_error


def registered_by_the_modules() -> dict[str, str]:
    """Return {command name: module} for what every robson.cli.*_cmd module's register() adds."""
    names = {}
    for module_info in pkgutil.iter_modules(robson.cli.__path__):
        if module_info.name.endswith("_cmd"):
            holder = typer.Typer()
            importlib.import_module(f"robson.cli.{module_info.name}").register(holder)
            names |= dict.fromkeys(get_group(holder).commands, module_info.name)
    return names


def help_listing(group: TyperGroup, format_commands, width: int) -> str:
    ctx = Context(group, info_name="robson", terminal_width=width)
    formatter = ctx.make_formatter()
    format_commands(group, ctx, formatter)
    return formatter.getvalue()


def test_the_table_names_every_command_each_module_registers_and_no_other():
    assert registered_by_the_modules() == {name: module for name, (module, _) in COMMANDS.items()}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_loads_with_the_summary_the_table_lists(name):
    root = get_command(app)

    command = root.get_command(Context(root, info_name="robson"), name)

    assert not isinstance(command, NotLoaded) and command.name == name
    assert command.get_short_help_str(limit=10_000) == COMMANDS[name][1]


@pytest.mark.parametrize("width", [50, 80, 120])
def test_the_help_listing_is_what_typer_prints_with_every_command_loaded(width):
    lazy, loaded = get_command(app), get_command(app)
    for name in COMMANDS:
        loaded.get_command(Context(loaded, info_name="robson"), name)

    listing = help_listing(lazy, RobsonGroup.format_commands, width)

    assert listing == help_listing(loaded, TyperGroup.format_commands, width)
    assert all(isinstance(command, NotLoaded) for command in lazy.commands.values())  # listing imported nothing


def test_a_mistyped_command_is_refused_with_the_command_it_resembles(robson):
    result = robson("plna")

    assert_user_error(result, 2, "No such command 'plna'. Did you mean 'plan'?")
