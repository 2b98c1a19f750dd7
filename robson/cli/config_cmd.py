"""`robson config show|check` and `robson init`: the effective configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robson.cli.output import JsonOption, console, emit, table
from robson.errors import InvalidInput

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
    doc = {"ok": True, "config_file": str(c.settings.config_file) if c.settings.config_file else None,
           "strategies": [s.name for s in strategies]}
    emit(as_json, doc, lambda: console().print(
        f"Configuration OK ({doc['config_file'] or 'defaults only'}); {len(strategies)} strategies load cleanly."))


def init_command(
    path: Annotated[Path, typer.Option("--path", help="Where to write the starter config.")] = Path(".robson.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Write a starter config (.robson.yaml) with every setting commented.

    Example: robson init
    """
    from robson.config import FIELDS

    if path.exists() and not force:
        raise InvalidInput(f"{path} exists already (use --force to overwrite)")
    lines = ["# robson configuration — precedence: flags > ROBSON_* environment > this file > defaults.",
             "# API keys never go here: use BINANCE_API_KEY / BINANCE_API_SECRET or binance.key_file (mode 0600).", ""]
    section = None
    for f in FIELDS:
        head, _, leaf = f.name.rpartition(".")
        if head != section:
            if head:
                lines += ["", f"{head}:"]
            section = head
        indent = "  " if head else ""
        value = f.default
        if isinstance(value, dict):
            rendered = "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
        elif isinstance(value, list):
            rendered = "[" + ", ".join(value) + "]"
        elif value is None:
            rendered = "null"
        elif isinstance(value, bool):
            rendered = str(value).lower()
        else:
            rendered = str(value)
        lines.append(f"{indent}# {f.help}")
        lines.append(f"{indent}{leaf or f.name}: {rendered}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    emit(as_json, {"written": str(path)}, lambda: console().print(f"Wrote {path}. Check it with: robson config check"))


def register(app_: typer.Typer) -> None:
    app_.command("init")(init_command)
