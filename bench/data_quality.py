"""The data-quality gate against the same validation called directly through GX.

A table of `--rows` rows (100,000 by default: a sensor id, a temperature, a site) and a
suite of 3 expectations (not null, between, in set), which it meets.  Each row of the
table is one way the table arrives, timed from what the gate is given to its verdict:

- records: a list of dicts, as in a request: the gate's `validate_table` (DataFrame
  built in a worker thread, the suite validated, the result made JSON-safe) against
  `pandas.DataFrame.from_records` and `batch.validate(suite)` on a GX context of one's own;
- a CSV file, and a Parquet file, in the data folder: the gate's `resolve_table_input`
  and `validate_table` against `pandas.read_csv` / `read_parquet` and `batch.validate`.

Both sides use GX's `SUMMARY` result format and have progress bars off, so the ratio is
the gate's own cost.  Medians of `--repeat` runs of each, taken in turns, after two
warm-up runs; the issue's target is at most 1.2x.  ``python -m bench.data_quality``
prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.2
WARMUP = 2
SUITE: dict[str, Any] = {
    "name": "readings",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "sensor"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "celsius", "min_value": -40, "max_value": 60},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "site", "value_set": ["north", "south", "east"]},
        },
    ],
}


def table(rows: int) -> list[dict[str, Any]]:
    sites = ("north", "south", "east")
    return [
        {"sensor": f"s{n % 977}", "celsius": round(-20 + (n * 7919 % 7000) / 100, 2),
         "site": sites[n % 3]}
        for n in range(rows)
    ]  # fmt: skip


def _direct_gx() -> Callable[[Any], Any]:
    """``validate(frame)`` straight through GX: its own ephemeral context and suite."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batches = (
        context.data_sources.add_pandas("direct")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = gx.ExpectationSuite(**SUITE)

    def validate(frame: Any) -> Any:
        result = batches.get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="SUMMARY"
        )
        assert result.success
        return result

    return validate


def _paired_ms(
    gate: Callable[[], object], direct: Callable[[], object], repeat: int
) -> tuple[float, float]:
    """Median ms of each, run in turns (each first every other time) so that a busy
    machine slows both alike."""
    for _ in range(WARMUP):
        gate()
        direct()
    samples: dict[Callable[[], object], list[float]] = {gate: [], direct: []}
    for n in range(repeat):
        for run in (gate, direct) if n % 2 == 0 else (direct, gate):
            gc.collect()
            started = time.perf_counter()
            run()
            samples[run].append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[gate]), statistics.median(samples[direct])


def measure(rows: int = 100_000, repeat: int = 21) -> dict[str, tuple[float, float]]:
    """(gate ms, direct GX ms) for each way the table arrives."""
    import pandas as pd

    from limit_graph.governance.compliance.data_quality import (
        parse_data_quality,
        resolve_table_input,
        validate_table,
    )

    # Parsing imports GX, so no timed run below pays for the import.
    gate = parse_data_quality({"check": "data-quality", "input": "rows", "suite": SUITE})
    direct = _direct_gx()
    records = table(rows)
    scratch = tempfile.TemporaryDirectory(prefix="limit-bench-gx-")
    folder = Path(scratch.name)
    pd.DataFrame.from_records(records).to_csv(folder / "readings.csv", index=False)
    pd.DataFrame.from_records(records).to_parquet(folder / "readings.parquet")
    loop = asyncio.new_event_loop()

    def through_gate(value: Any) -> Callable[[], object]:
        def run() -> None:
            found = value if isinstance(value, list) else resolve_table_input(value, folder)
            report = loop.run_until_complete(validate_table(gate, found))
            assert report.passed and report.rows == rows, report.detail

        return run

    readers: dict[str, tuple[Any, Callable[[], Any]]] = {
        "records": (records, lambda: pd.DataFrame.from_records(records)),
        "CSV file": ("readings.csv", lambda: pd.read_csv(folder / "readings.csv")),
        "Parquet file": ("readings.parquet", lambda: pd.read_parquet(folder / "readings.parquet")),
    }

    def through_gx(read: Callable[[], Any]) -> Callable[[], object]:
        return lambda: direct(read())

    measured = {}
    try:
        for name, (value, read) in readers.items():
            measured[name] = _paired_ms(through_gate(value), through_gx(read), repeat)
    finally:
        loop.close()
        scratch.cleanup()
    return measured


def rows(measured: dict[str, tuple[float, float]], table_rows: int, repeat: int) -> list[str]:
    lines = [
        f"| GX gate, 3 expectations on {table_rows:,} rows (median of {repeat}) | gate ms "
        "| GX directly ms | ratio | target |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (gate_ms, direct_ms) in measured.items():
        ratio = gate_ms / direct_ms
        verdict = "ok" if ratio <= TARGET_RATIO else "OVER"
        lines.append(
            f"| {name} | {gate_ms:,.1f} | {direct_ms:,.1f} | {ratio:.2f}x ({verdict}) "
            f"| ≤ {TARGET_RATIO}x |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.data_quality")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    for line in rows(measure(args.rows, args.repeat), args.rows, args.repeat):
        print(line)


if __name__ == "__main__":
    main()
