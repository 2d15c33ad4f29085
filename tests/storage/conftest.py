"""The storage tests run against every backend (:mod:`tests.fixtures.backends`); the
migration tests, and two stores sharing one database, on a database of each kind
(:mod:`tests.fixtures.migrations`, :mod:`tests.fixtures.shared_database`)."""

from tests.fixtures.backends import backend, durable_backend, storage
from tests.fixtures.migrations import engine, url
from tests.fixtures.sealing import sealed_backend
from tests.fixtures.shared_database import two_stores

__all__ = [
    "backend",
    "durable_backend",
    "engine",
    "sealed_backend",
    "storage",
    "two_stores",
    "url",
]
