"""A validation's verdict in JSON's own types: the failed expectations and what GX saw.

GX's results carry numpy scalars, NaN for a missing value and pandas timestamps; the
report holds only what JSON (I-JSON: no NaN, no infinity) can say, so it can be stored
with the execution, put in its ledger entry and returned in a 422.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["DataQualityReport", "build_report", "describe_failure", "plain"]

_DROPPED_KWARGS = ("batch_id",)
"""What GX adds to an expectation's kwargs in its results; not part of the suite."""
_FAILURE_KEYS = (
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "partial_unexpected_list",
    "partial_unexpected_index_list",
    "missing_count",
)


@dataclass(frozen=True)
class DataQualityReport:
    """One validation's verdict: the failed expectations in suite order."""

    suite: str
    passed: bool
    rows: int
    summary: dict[str, Any]
    """``evaluated``, ``successful`` and ``unsuccessful`` expectations, ``success_percent``."""
    failures: list[dict[str, Any]]
    """Each failed expectation: ``index`` (in the suite), ``expectation`` (its type),
    ``kwargs``, ``observed_value`` (GX's; for a per-row expectation, which has none, the
    first unexpected values) and, where GX gives them, ``element_count``,
    ``unexpected_count``, ``unexpected_percent``, ``partial_unexpected_list``,
    ``partial_unexpected_index_list`` (row numbers), ``missing_count``; ``error`` when the
    expectation could not be evaluated (a column the table lacks)."""

    @property
    def evaluated(self) -> int:
        return int(self.summary["evaluated"])

    @property
    def successful(self) -> int:
        return int(self.summary["successful"])

    @property
    def unsuccessful(self) -> int:
        return int(self.summary["unsuccessful"])

    @property
    def detail(self) -> str:
        """One line for a denial: which expectations failed and what was observed."""
        if self.passed:
            return f"suite {self.suite!r}: all {self.evaluated} expectations met"
        failed = "; ".join(describe_failure(f) for f in self.failures)
        return (
            f"suite {self.suite!r} failed {self.unsuccessful} of {self.evaluated} "
            f"expectations: {failed}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "rows": self.rows,
            "summary": self.summary,
            "failures": self.failures,
        }


def describe_failure(failure: Mapping[str, Any]) -> str:
    """A failed expectation in a few words.

    >>> describe_failure({"expectation": "expect_column_values_to_not_be_null",
    ...     "kwargs": {"column": "t"}, "observed_value": [None], "unexpected_count": 1,
    ...     "element_count": 4})
    'expect_column_values_to_not_be_null(t): observed [None], 1 of 4 rows unexpected'
    """
    column = failure.get("kwargs", {}).get("column")
    what = f"{failure['expectation']}({column})" if column else str(failure["expectation"])
    if failure.get("error"):
        return f"{what}: {failure['error']}"
    seen = repr(failure.get("observed_value"))
    seen = seen if len(seen) <= 80 else seen[:77] + "..."
    if "unexpected_count" in failure:
        count = f"{failure['unexpected_count']} of {failure.get('element_count')}"
        return f"{what}: observed {seen}, {count} rows unexpected"
    return f"{what}: observed {seen}"


def build_report(name: str, gx_suite: Any, result: Any, rows: int) -> DataQualityReport:
    """The report of GX's ``ExpectationSuiteValidationResult`` for ``gx_suite``."""
    order: dict[str, int] = {}
    for i, expectation in enumerate(gx_suite.expectations):
        config = expectation.configuration
        order.setdefault(_key(config.type, config.kwargs), i)
    failures = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k not in _DROPPED_KWARGS}
        found = dict(item.result or {})
        failure: dict[str, Any] = {
            "index": order.get(_key(config.type, kwargs)),
            "expectation": config.type,
            "kwargs": kwargs,
            "observed_value": found.get("observed_value", found.get("partial_unexpected_list")),
        }
        failure |= {k: found[k] for k in _FAILURE_KEYS if k in found}
        if message := _exception(item.exception_info):
            failure["error"] = message
        failures.append(plain(failure))
    failures.sort(key=lambda f: (f["index"] is None, f["index"] or 0))
    stats = result.statistics
    summary = {
        "evaluated": int(stats["evaluated_expectations"]),
        "successful": int(stats["successful_expectations"]),
        "unsuccessful": int(stats["unsuccessful_expectations"]),
        "success_percent": plain(stats["success_percent"]),
    }
    return DataQualityReport(name, bool(result.success), rows, summary, failures)


def _key(kind: str, kwargs: Mapping[str, Any]) -> str:
    return repr((kind, sorted((k, repr(plain(v))) for k, v in kwargs.items())))


def _exception(info: Any) -> str | None:
    """GX's exception message, flat or keyed by the metric that raised it."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    return next((m for v in info.values() if (m := _exception(v))), None)


def plain(value: Any) -> Any:
    """``value`` in JSON's own types: numpy and pandas values as Python's, a missing
    value (NaN, NaT, NA) as null, infinity as text, times in ISO 8601.

    >>> plain({"x": float("nan"), "y": (1, 2.5, float("inf")), "d": dt.date(2026, 1, 2)})
    {'x': None, 'y': [1, 2.5, 'inf'], 'd': '2026-01-02'}
    """
    if value is None:
        return None
    for kind in (bool, int, str):  # subclasses (enums) made plain too
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, float):  # numpy's float64 is one
        number = float(value)
        return number if math.isfinite(number) else (None if math.isnan(number) else str(number))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return None if value != value else value.isoformat()  # NaT is not equal to itself
    if isinstance(value, Decimal):
        return plain(float(value))
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return plain(value.tolist())
    import pandas as pd

    return None if value is pd.NA else str(value)
