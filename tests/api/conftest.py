"""The API tests' app (the ``api`` fixture) and helpers live in :mod:`tests.fixtures.api`;
the names stay importable from here for modules that still do."""

from tests.fixtures.api import ADMIN_KEY, Api, api, assert_problem

__all__ = ["ADMIN_KEY", "Api", "api", "assert_problem"]
