"""Database URLs for people: the password hidden wherever it is written, and the server named plainly.

Light (no SQLAlchemy): `config show` and every store error use it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

HIDDEN = "***"
# Query parameters libpq and psycopg read secrets from.
_SECRET_PARAMETERS = ("password", "sslpassword")
_SECRET_IN_QUERY = re.compile(rf"(?i)(^|[?&;])((?:{'|'.join(_SECRET_PARAMETERS)})=)[^&;#]*")


def redact(url: str) -> str:
    """Return url with its password hidden, in the user part and in the query (?password=...)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. a port that is not a number
        return _redact_loosely(url)
    if password is not None:  # rewritten in place: urlunsplit would drop the '//' of 'postgresql:///db'
        start = url.index("//") + 2
        url = url[:start] + parts.netloc.replace(f":{password}@", f":{HIDDEN}@", 1) + url[start + len(parts.netloc):]
    return _redact_query(url)


def _redact_loosely(url: str) -> str:
    """Hide what looks like a password in text that does not parse as a URL."""
    return _redact_query(re.sub(r"(//[^/@:]*:)[^/@]*@", rf"\1{HIDDEN}@", url))


def _redact_query(url: str) -> str:
    base, mark, query = url.partition("?")
    return base + mark + _SECRET_IN_QUERY.sub(rf"\1\2{HIDDEN}", query)


def describe_server(url: str) -> str:
    """Name the database and where it lives, e.g. `PostgreSQL database "robson" on db1:5432 as user "trader"`."""
    try:
        parts = urlsplit(url)
        host, port, user = parts.hostname, parts.port, parts.username
    except ValueError:
        return f"database {redact(url)}"
    query = dict(pair.split("=", 1) for pair in re.split("[&;]", parts.query) if "=" in pair)
    host = host or unquote(query.get("host", "")) or "localhost (socket)"
    port = port or query.get("port") or 5432
    database = unquote(parts.path.lstrip("/")) or unquote(query.get("dbname", "")) or (user or "")
    kind = "PostgreSQL" if parts.scheme.startswith("postgres") else parts.scheme.split("+")[0]
    if kind == "sqlite":
        return f"database {redact(url)}"
    who = f' as user "{unquote(user)}"' if user else ""
    return f'{kind} database "{database}" on {host}:{port}{who}'


def scrub(text: str, url: str) -> str:
    """Return text (a driver's message) with every secret of url in it hidden."""
    shown = redact(url)
    if shown == url:
        return text
    text = text.replace(url, shown)
    for plain, hidden in zip(re.split(r"[:@?&;=/]", url), re.split(r"[:@?&;=/]", shown)):
        if plain != hidden and plain:
            text = text.replace(plain, HIDDEN)
    return text
