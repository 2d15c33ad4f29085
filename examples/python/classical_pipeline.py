"""The classical pipeline of ``examples/classical_pipeline.yaml``, built in Python.

Load the calibration CSV shipped in ``examples/data``, keep the operational qubits
with a low readout error and derive T2/T1, then summarize per device.  ``build()``
gives the same spec the YAML file loads to; run from the repository's root as a
script, it runs the workflow in a new session and prints the summary table::

    LIMIT_API_URL=http://127.0.0.1:8080 LIMIT_API_KEY=... \\
        python examples/python/classical_pipeline.py
"""

from __future__ import annotations

from typing import Any

from limit_graph.client import LimitClient, Workflow


def build() -> Workflow:
    """The ``classical-pipeline`` workflow."""
    wf = Workflow(
        "classical-pipeline",
        description="Load calibration data from a CSV, keep the good qubits, summarize per device.",
    )
    data_root = wf.param(
        "data_root", str, default="examples/data", description="The folder the CSV must be in."
    )
    file = wf.param("file", str, default="calibrations.csv")
    max_readout_error = wf.param("max_readout_error", float, default=0.05)

    load = wf.step(
        "load",
        "data.load_csv",
        backend="local",
        inputs={
            "root": data_root,
            "path": file,
            "types": {"qubit": "integer", "operational": "boolean"},
        },
    )
    clean = wf.step(
        "clean",
        "data.transform",
        backend="local",
        inputs={
            "rows": load.output("rows"),
            "columns": load.output("columns"),
            "operations": [
                {"op": "filter", "column": "operational", "operator": "==", "value": True},
                {
                    "op": "filter",
                    "column": "readout_error",
                    "operator": "<",
                    "value": max_readout_error,
                },
                {
                    "op": "derive",
                    "column": "t2_over_t1",
                    "left": "t2_us",
                    "operator": "/",
                    "right": "t1_us",
                    "digits": 3,
                },
                {
                    "op": "select",
                    "columns": ["device", "qubit", "t1_us", "t2_us", "t2_over_t1", "readout_error"],
                },
                {"op": "sort", "by": ["device", "qubit"]},
            ],
        },
    )
    wf.step(
        "summarize",
        "data.summarize",
        backend="local",
        inputs={
            "rows": clean.output("rows"),
            "columns": clean.output("columns"),
            "group_by": "device",
            "measures": ["t1_us", "t2_us", "t2_over_t1", "readout_error"],
            "digits": 4,
        },
    )
    return wf


def summary_table(client: LimitClient, params: dict[str, Any] | None = None) -> list[Any]:
    """Run the pipeline in a new session; the summary's table (one row per device)."""
    session = client.create_session("classical-pipeline")
    try:
        run = client.run_workflow(session.id, build(), params, wait=True, timeout=300)
        if run.state != "succeeded":
            raise RuntimeError(f"run {run.id} {run.state}: {run.error}")
        [execution_id] = run.step("summarize").execution_ids
        table: list[Any] = client.get_execution(session.id, execution_id).result["table"]
        return table
    finally:
        client.complete_session(session.id)


if __name__ == "__main__":
    with LimitClient.from_env() as sdk:
        for row in summary_table(sdk):
            print(row)  # noqa: T201 (a script's output)
