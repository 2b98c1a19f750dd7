"""The `robson` console script: start without the garbage collector, end without the interpreter's teardown.

A command's start-up builds only long-lived objects (modules, classes, Typer's tree), so the
collector's passes over them during the imports find nothing and cost a third of a read command's
time; at the end, the interpreter's teardown frees every one of them one by one (another 70-300 ms
with pandas loaded) just before the process ends anyway. So:
- the collector is off from the first line; what runs for long re-enables it (`collect_garbage`:
  the monitor loop, the backtest), after freezing what start-up built;
- when the command is done (its store closed and its notifications drained by the command itself),
  stdout and stderr are flushed, the atexit handlers run, and the process exits with its code.
Tests drive `robson.cli.app.app` directly and never come through here.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    """Console-script entry point."""
    gc.disable()
    from robson.cli.app import app

    try:
        app(prog_name="robson")
        code: object = 0
    except SystemExit as e:
        code = e.code
    finish(code)


def collect_garbage() -> None:
    """Turn the collector back on for long work, leaving what start-up built out of its passes."""
    gc.freeze()
    gc.enable()


def finish(code: object) -> None:
    """Exit with code without tearing the interpreter down (the normal exit when other threads still run)."""
    import atexit
    import os
    import threading

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, exit 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)  # a non-daemon thread is still working: let the interpreter wait for it
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader left, or the stream is closed: nothing more to say
            pass
    atexit._run_exitfuncs()  # noqa: SLF001  (what a normal exit would run: logging's flush, a notifier's drain)
    os._exit(code)
