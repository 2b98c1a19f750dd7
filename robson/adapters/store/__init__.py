"""The SQL store adapter: SqlStore implements robson.application.ports.Store."""

from robson.adapters.store.sql import SqlStore

__all__ = ["SqlStore"]
