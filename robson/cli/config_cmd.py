"""`robson config show|check` and `robson init`: the effective configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robson.cli.output import JsonOption, console, emit, table
from robson.errors import ConfigError, InvalidInput, NotFound

app = typer.Typer(help="Show and check the effective configuration.\n\nExample: robson config show", no_args_is_help=True, rich_markup_mode=None)


def _settings(ctx: typer.Context):
    from robson.cli.app import container

    return container(ctx).settings


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Print every setting with its value and where it came from; secrets redacted.

    Example: robson config show
    """
    from robson.config import describe_settings

    settings = _settings(ctx)
    rows = describe_settings(settings)
    doc = {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "database_url": settings.database_url_redacted,
        "settings": {r["name"]: {"value": r["value"], "source": r["source"]} for r in rows},
    }

    def render() -> None:
        where = settings.config_file or "none (defaults)"
        console().print(table(f"Configuration — file: {where}", ["setting", "value", "source"],
                              [(r["name"], r["value"], r["source"]) for r in rows]))

    emit(as_json, doc, render)


@app.command("check")
def check(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Validate the configuration and the strategies; exit 2 naming the file, field and problem.

    Example: robson --config ./my.yaml config check
    """
    from robson.cli.app import container

    c = container(ctx)
    strategies = c.strategies.all()
    # Names the commands would look up: refused here, not at the first plan or scan.
    named = [("default_strategy", c.settings["default_strategy"])]
    named += [("scan.strategies", name) for name in c.settings["scan.strategies"] or []]
    for field, name in named:
        try:
            c.strategies.get(name)
        except NotFound as e:
            raise ConfigError(f"{c.settings.sources[field]}: field '{field}': {e.message}") from None
    doc = {"ok": True, "config_file": str(c.settings.config_file) if c.settings.config_file else None,
           "strategies": [s.name for s in strategies]}
    emit(as_json, doc, lambda: console().print(
        f"Configuration OK ({doc['config_file'] or 'defaults only'}); {len(strategies)} strategies load cleanly."))


def init_command(
    path: Annotated[Path, typer.Option("--path", help="Where to write the starter config.")] = Path(".robson.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a starter config (.robson.yaml): the documented example, every setting with its default.

    Example: robson init
    """
    from robson.config import example_config_path

    if path.exists() and not force:
        raise InvalidInput(f"{path} exists already (use --force to overwrite)")
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder: give the file to write, e.g. --path {path / '.robson.yaml'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # a missing folder is made, as the data folder is
        path.write_bytes(example_config_path().read_bytes())
    except (FileExistsError, NotADirectoryError):
        raise InvalidInput(f"cannot write {path}: a part of its folder {path.parent} is a file") from None
    except OSError as e:
        raise InvalidInput(f"cannot write {path}: {e.strerror or e}") from None
    emit(as_json, {"written": str(path)}, lambda: console().print(f"Wrote {path}. Check it with: robson config check"))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="config")
    root.command("init")(init_command)
