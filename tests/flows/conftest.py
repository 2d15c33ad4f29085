"""The maintenance routes are tested through the API tests' app (:mod:`tests.fixtures.api`)."""

from tests.fixtures.api import api

__all__ = ["api"]
