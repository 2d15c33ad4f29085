"""GX, made ready once per process: the ephemeral context and where tables go in.

Importing great-expectations costs seconds (about 5 s of CPU), so it happens here only,
in :func:`engine`, when the first declaration is parsed -- never speculatively:

- a data-quality check among the platform's (``[governance] checks``) or an agent's is
  parsed at start, so GX is imported then and the platform serves with it warm;
- else the first session or workflow step that declares one imports it, in a worker
  thread (``ComplianceChecks.aparse``): that request waits for the import, the event
  loop and every other request do not.

A process that never meets a gate (most API processes, the CLI, runners) never pays
for it.  GX's usage statistics are off before it is imported
(``GX_ANALYTICS_ENABLED=false``) and in the context's own config; its progress bars too.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["RESULT_FORMAT", "Engine", "engine"]

RESULT_FORMAT = "SUMMARY"
"""GX's result format: counts, percentages and the first 20 unexpected values and rows."""


@dataclass(frozen=True)
class Engine:
    """The ephemeral context, its one pandas batch definition, and the expectation types
    GX knows."""

    context: Any
    batch_definition: Any
    known: frozenset[str]

    def validate(self, suite: Any, frame: Any) -> Any:
        """``suite`` (a GX ``ExpectationSuite``) on the DataFrame ``frame``: GX's result."""
        with _validating:
            batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
            return batch.validate(suite, result_format=RESULT_FORMAT)


_ready: list[Engine] = []
_warming = threading.Lock()
_validating = threading.Lock()
"""GX's context and its one batch definition are not meant for concurrent batches."""


def engine() -> Engine:
    """The process's GX engine, made on first use (blocking: not on an event loop)."""
    if _ready:
        return _ready[0]
    with _warming:
        if not _ready:
            _ready.append(_make())
    return _ready[0]


def _make() -> Engine:
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # before GX is imported
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("limit-graph").add_dataframe_asset("table")
    made = Engine(
        context=context,
        batch_definition=asset.add_batch_definition_whole_dataframe("whole-table"),
        known=frozenset(list_registered_expectation_implementations()),
    )
    # One tiny validation, so that GX's lazily imported paths are warm too.
    not_null: Any = get_expectation_impl("expect_column_values_to_not_be_null")
    made.validate(gx.ExpectationSuite("warm-up", [not_null(column="x")]), pd.DataFrame({"x": [1]}))
    return made
