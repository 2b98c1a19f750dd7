"""`robson unlock NAME`: remove a lock that a vanished robson process left behind, after confirmation."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, ask, console, emit
from robson.errors import AlreadyRunning, NotFound, Refused


def unlock_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The lock: monitor, scan, execute:<intent ID> or operation:<operation ID>.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove it without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove a lock (exit 4 said who holds it) once you know its holder is gone; asks first unless --yes.

    robson takes over a lock by itself when its holder is provably gone; this is for the rest, such as
    a holder on another machine that will never come back. A lock whose holder is proven to run on
    this machine is refused (exit 4): stop that process instead.

    Example: robson unlock monitor
    """
    from datetime import UTC, datetime

    from robson.adapters.store import locks

    store = container(ctx).store
    held = {holder.name: holder for holder in locks.holders(store, now=datetime.now(UTC))}
    holder = held.get(name.strip())
    if holder is None:
        known = f"locks held: {', '.join(held)}" if held else "no lock is held"
        raise NotFound(f"no lock named '{name.strip()[:80]}' ({known})")
    if holder.state == locks.RUNNING:
        raise AlreadyRunning(f"lock {holder.name} is held by {holder.describe()}, which is still running",
                             hint=f"stop that process (its lock goes with it); kill {holder.pid} if it hangs")
    told = f"lock {holder.name}: {holder.describe()}, {holder.state}"
    if not yes and ask(f"Remove {told}? Type yes to remove it: ").lower() not in ("yes", "y"):
        raise Refused(f"lock {holder.name} kept: removing it was not confirmed (or use --yes)")
    if not locks.remove(store, holder.name, owner=holder.owner):  # not if someone took it over meanwhile
        raise AlreadyRunning(f"lock {holder.name} changed hands while you were asked; nothing removed",
                             hint=f"run robson unlock {holder.name} again to see who holds it now")
    doc = {"unlocked": holder.name, "holder": {"host": holder.host, "pid": holder.pid, "since": holder.acquired_at,
                                                "state": holder.state}}
    emit(as_json, doc, lambda: console().print(f"Removed {told}."))


def register(app: typer.Typer) -> None:
    app.command("unlock")(unlock_command)
