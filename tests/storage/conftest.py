"""The storage tests run against every backend (:mod:`tests.fixtures.backends`)."""

from tests.fixtures.backends import backend, durable_backend, storage

__all__ = ["backend", "durable_backend", "storage"]
