"""PostgreSQL specifics: which driver a URL means, how robson connects, and the server's refusals as one line.

A plain `postgresql://` (or `postgres://`) URL is served by psycopg 3, the driver the `postgres`
extra installs (`pip install 'robson[postgres]'`); a URL naming another driver
(`postgresql+psycopg2://`) is used as written.
"""

from __future__ import annotations

import re
from typing import Any

from robson.adapters.store.urls import describe_server, scrub
from robson.errors import StoreError

DRIVER = "psycopg"  # psycopg 3
CONNECT_TIMEOUT_SECONDS = 10  # an unreachable host fails within this, instead of the system's minutes
INSTALL_HINT = "install the PostgreSQL driver: pip install 'robson[postgres]' (psycopg 3)"
PGBOUNCER_HINT = ("behind PgBouncer in transaction mode, turn prepared statements off: "
                  "database_prepared_statements: false (or ROBSON_DATABASE_PREPARED_STATEMENTS=false)")


def is_postgresql(drivername: str) -> bool:
    return drivername.split("+")[0] in ("postgresql", "postgres")


def driver_url(url: Any) -> Any:
    """Return the SQLAlchemy URL with psycopg 3 named when the URL names no driver."""
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername=f"postgresql+{DRIVER}")
    if url.drivername.startswith("postgres+"):
        return url.set(drivername="postgresql+" + url.drivername.split("+", 1)[1])
    return url


def connect_args(url: Any, *, prepared_statements: bool) -> dict[str, Any]:
    """Arguments for the driver's connect(): a connect timeout, and no prepared statements if asked."""
    args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    if not prepared_statements and url.get_driver_name() == DRIVER:
        # PgBouncer in transaction mode hands each transaction any server connection: a statement
        # psycopg prepared on one is missing (or already there) on the next.
        args["prepare_threshold"] = None
    return args


def missing_driver(url: str, error: ImportError) -> StoreError:
    module = error.name or "the driver"
    return StoreError(f"cannot connect to {describe_server(url)}: the PostgreSQL driver ({module}) is not installed",
                      hint=INSTALL_HINT)


# What the server or libpq says, and what to tell the user: (pattern, what went wrong, hint).
_CONNECTING = "cannot connect to"
_REFUSALS: tuple[tuple[str, str, str], ...] = (
    (r"password authentication failed|no password supplied|authentication failed for user",
     "the server refused the password",
     "check the user and password in the URL (ROBSON_DB or `database:`), or in ~/.pgpass or PGPASSWORD"),
    (r'database ".*" does not exist',
     "the database does not exist",
     "create it first (createdb NAME, or CREATE DATABASE as an administrator): robson creates its tables, "
     "not the database"),
    (r'role ".*" does not exist', "the server knows no such user",
     "check the user name in the URL, or create the role on the server"),
    (r"no pg_hba\.conf entry|pg_hba", "the server does not accept this user from this host",
     "an administrator adds a line for this host, user and database to pg_hba.conf"),
    (r"too many clients|remaining connection slots are reserved",
     "the server has no connection left",
     "the server's max_connections are in use; retry later, raise max_connections, or put PgBouncer in front "
     "(with database_prepared_statements: false)"),
    (r"connection refused|timeout expired|could not translate host name|failed to resolve host|"
     r"no route to host|network is unreachable|name or service not known|could not connect|"
     r"server closed the connection unexpectedly|the database system is (starting|shutting) up",
     "the server is out of reach",
     "is PostgreSQL running on that host and port, and does it accept TCP connections from this host "
     "(listen_addresses, pg_hba.conf, a firewall)?"),
)
_PERMISSION = "permission denied for schema public"


def refusal(error: BaseException, url: str) -> StoreError | None:
    """Translate a driver error into one line naming the server and database with a hint; None if not the server's."""
    text = _first_line(str(error), url)
    server = describe_server(url)
    if _PERMISSION in text:
        user = re.search(r'as user "([^"]+)"', server)
        who = user.group(1) if user else "the robson user"
        return StoreError(
            f"{server}: {_PERMISSION} (robson creates its tables there on first use)",
            hint=f"since PostgreSQL 15 only the database's owner may create tables in schema public: as an "
                 f"administrator, GRANT USAGE, CREATE ON SCHEMA public TO \"{who}\" (or make it the database's owner)")
    if re.search(r'prepared statement ".*" (already exists|does not exist)', text):
        return StoreError(f"{server}: {text}", hint=PGBOUNCER_HINT)
    for pattern, what, hint in _REFUSALS:
        if re.search(pattern, text, re.IGNORECASE):
            return StoreError(f"{_CONNECTING} {server}: {what} ({_reason(text)})", hint=hint)
    return StoreError(f"{server}: {_reason(text)}")


def _first_line(text: str, url: str) -> str:
    """The driver's message on one line, with any password in the URL hidden."""
    return scrub(text.strip().splitlines()[0] if text.strip() else "unknown error", url)


def _reason(text: str) -> str:
    """The server's own words, without libpq's 'connection to server at ... failed: FATAL:' preamble."""
    text = re.sub(r"^connection failed: ", "", text)
    text = re.sub(r'^connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: ', "", text)
    text = re.sub(r'^connection to server on socket "[^"]*" failed: ', "", text)
    return re.sub(r"^(FATAL|ERROR): +", "", text)
