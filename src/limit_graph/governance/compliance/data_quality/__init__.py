"""The data-quality gate: a GX Core 1.x expectation suite validated on a table, in process.

A declaration ``{"check": "data-quality", "input": "rows", "suite": SUITE}`` names the
agent input that holds the table and carries the suite as GX writes it
(``ExpectationSuite.to_json_dict()``); an optional ``root`` names the input holding the
folder a file path is relative to (``data.load_csv``'s ``root``), and ``name`` what
verdicts call it.  The table is a list of records, or a CSV or Parquet file inside the
platform's data folder (:mod:`.tables`).

Nothing here imports great-expectations until the first declaration is parsed
(:mod:`.engine` says when that is, at start or in a worker thread); validation always
runs in a worker thread.

>>> declaration = parse_data_quality({"check": "data-quality", "input": "rows", "suite": {
...     "name": "readings", "expectations": [
...         {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "t"}}]}})
>>> report = asyncio.run(validate_table(declaration, [{"t": 1.5}, {"t": None}]))
>>> report.passed, report.unsuccessful, report.failures[0]["unexpected_count"]
(False, 1, 1)
"""

from __future__ import annotations

import asyncio

from limit_graph.governance.compliance.data_quality.declaration import (
    CHECK_ID,
    DataQualityDeclaration,
    parse_data_quality,
)
from limit_graph.governance.compliance.data_quality.engine import engine
from limit_graph.governance.compliance.data_quality.report import (
    DataQualityReport,
    build_report,
    describe_failure,
)
from limit_graph.governance.compliance.data_quality.tables import (
    MAX_FILE_BYTES,
    Table,
    read_frame,
    resolve_table_input,
    table_input,
)

__all__ = [
    "CHECK_ID",
    "MAX_FILE_BYTES",
    "DataQualityDeclaration",
    "DataQualityReport",
    "Table",
    "describe_failure",
    "parse_data_quality",
    "resolve_table_input",
    "table_input",
    "validate_table",
]


async def validate_table(declaration: DataQualityDeclaration, table: Table) -> DataQualityReport:
    """The declaration's suite validated on ``table``, in a worker thread."""
    return await asyncio.to_thread(_validate, declaration, table)


def _validate(declaration: DataQualityDeclaration, table: Table) -> DataQualityReport:
    gx_engine = engine()
    frame = read_frame(table)
    result = gx_engine.validate(declaration.gx_suite, frame)
    return build_report(declaration.name, declaration.gx_suite, result, len(frame))
