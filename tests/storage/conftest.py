"""The storage tests run against every backend (:mod:`tests.fixtures.backends`); the
migration tests on a database of each kind (:mod:`tests.fixtures.migrations`)."""

from tests.fixtures.backends import backend, durable_backend, storage
from tests.fixtures.migrations import engine, url
from tests.fixtures.sealing import sealed_backend

__all__ = ["backend", "durable_backend", "engine", "sealed_backend", "storage", "url"]
