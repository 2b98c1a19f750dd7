"""`robson unlock [NAME]`: list the locks, or remove one whose holder is gone for good, after confirmation."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, ask, console, emit, table
from robson.errors import AlreadyRunning, NotFound, Refused


def _doc(holder) -> dict:
    return {"name": holder.name, "host": holder.host, "pid": holder.pid, "since": holder.acquired_at,
            "renewed_at": holder.renewed_at, "expires_at": holder.expires_at,
            "expires_in_seconds": round(holder.expires_in), "state": holder.state, "holds": holder.holds}


def _list(holders: list, as_json: bool) -> None:
    def render() -> None:
        if not holders:
            console().print("No lock is held.")
            return
        console().print(table("Locks", ["name", "holder", "lease", "state"],
                              [(h.name, h.describe(), h.lease(), h.state) for h in holders]))

    emit(as_json, {"locks": [_doc(h) for h in holders]}, render)


def unlock_command(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(
        help="The lock: monitor, scan, execute:<intent ID> or operation:<operation ID>; none: list them.",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove it without asking.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the locks and their leases, or remove one (exit 4 said who holds it) once you know its holder is gone; asks first unless --yes.

    A lock is a lease its holder renews while it runs: robson takes it over by itself once the lease
    expires (locks.lease_seconds, 60 s, after the holder last renewed it, on any host), or at once
    when its holder provably died on this machine. Removing it by hand is for not waiting that long;
    a holder that still runs elsewhere stops at its next renewal. A lock whose holder is proven to
    run on this machine is refused (exit 4): stop that process instead.

    Example: robson unlock            robson unlock monitor
    """
    from robson.adapters.store import locks

    store = container(ctx).store
    held = {holder.name: holder for holder in locks.holders(store)}
    if name is None:
        _list(list(held.values()), as_json)
        return
    holder = held.get(name.strip())
    if holder is None:
        known = f"locks held: {', '.join(held)}" if held else "no lock is held"
        raise NotFound(f"no lock named '{name.strip()[:80]}' ({known})")
    if holder.state == locks.RUNNING:
        raise AlreadyRunning(f"lock {holder.name} is held by {holder.describe()}, which is still running",
                             hint=f"stop that process (its lock goes with it); kill {holder.pid} if it hangs")
    told = f"lock {holder.name}: {holder.describe()}, {holder.state}; {holder.lease()}"
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
