"""Database URLs in messages: the password hidden wherever it is written, the server named plainly."""

import pytest

from robson.adapters.store.urls import describe_server, redact, scrub


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://trader:pw%40x@db1:5432/book", "postgresql://trader:***@db1:5432/book"),
    ("postgresql://trader@db1/book?password=pw&sslmode=require", "postgresql://trader@db1/book?password=***&sslmode=require"),
    ("postgresql://trader@db1/book?sslmode=require&Password=pw", "postgresql://trader@db1/book?sslmode=require&Password=***"),
    ("postgresql://trader:a@db1/book?sslpassword=key", "postgresql://trader:***@db1/book?sslpassword=***"),
    ("postgresql:///book?host=/run/postgresql&password=pw", "postgresql:///book?host=/run/postgresql&password=***"),
    ("postgresql://trader:pw@db1:notaport/book", "postgresql://trader:***@db1:notaport/book"),
    ("postgresql://trader@db1/book", "postgresql://trader@db1/book"),
    ("sqlite:////home/me/robson.db", "sqlite:////home/me/robson.db"),
])
def test_the_password_is_hidden_in_the_user_part_and_in_the_query(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_drivers_message_quoting_the_url_loses_the_password_too() -> None:
    url = "postgresql://trader:Sup3rS3cret@db1/book?password=Sup3rS3cret"

    assert "Sup3rS3cret" not in scrub(f"could not parse {url}: Sup3rS3cret is odd", url)


@pytest.mark.parametrize(("url", "described"), [
    ("postgresql://trader:pw@db1:6432/book", 'PostgreSQL database "book" on db1:6432 as user "trader"'),
    ("postgresql+psycopg://db1/book", 'PostgreSQL database "book" on db1:5432'),
    ("postgresql:///book?host=/run/postgresql", 'PostgreSQL database "book" on /run/postgresql:5432'),
])
def test_the_server_is_named_by_host_port_database_and_user(url: str, described: str) -> None:
    assert describe_server(url) == described
