"""An ordinary Prefect flow that runs LIMIT-Graph agents through a session.

``calibration_report`` loads the calibration CSV shipped in ``examples/data`` with
one agent, cleans it once per readout-error threshold (concurrent task runs, via
``.submit``), then summarizes every cleaned table per device with a workflow built in
Python (one map item per table).  Each agent run is a governed, ledgered execution
of the flow's session; each call is a task run in the flow's run graph.

Run it against a running platform, from the repository's root::

    export LIMIT_API_URL=http://127.0.0.1:8080 LIMIT_API_KEY=...
    python examples/python/calibration_flow.py

Deploy it with a ``prefect.yaml`` entry such as this one (the worker's environment
needs ``LIMIT_API_URL`` and ``LIMIT_API_KEY``)::

    deployments:
      - name: calibration-report
        entrypoint: examples/python/calibration_flow.py:calibration_report
        parameters: {thresholds: [0.03, 0.05]}
        work_pool: {name: local}
        schedules:
          - cron: "0 6 * * *"
            timezone: UTC
            active: false
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from limit_graph.client import Map, Workflow
from limit_graph.client.flows import limit_session, run_agent, run_workflow

MEASURES = ["t1_us", "t2_us", "readout_error"]


def device_summaries() -> Workflow:
    """Summarize each of the ``tables`` given (``{"rows", "columns"}``) per device."""
    wf = Workflow("device-summaries", description="Per-device statistics of each table.")
    table = Map(over=wf.param("tables", list), as_="table")
    wf.step(
        "summarize",
        "data.summarize",
        backend="local",
        map=table,
        inputs={
            "rows": table.item["rows"],
            "columns": table.item["columns"],
            "group_by": "device",
            "measures": MEASURES,
            "digits": 4,
        },
    )
    return wf


@flow(name="calibration-report")
def calibration_report(
    data_root: str = "examples/data", thresholds: list[float] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per-device calibration statistics of the good qubits, for each readout-error
    threshold (default 0.03 and 0.05): threshold → one row per device."""
    limits = thresholds if thresholds is not None else [0.03, 0.05]
    with limit_session(name="calibration-report", config={"tags": ["example"]}) as session:
        loaded = run_agent(
            session,
            "data.load_csv",
            {
                "root": data_root,
                "path": "calibrations.csv",
                "types": {"qubit": "integer", "operational": "boolean"},
            },
            backend="local",
        )
        cleaning = [
            run_agent.submit(
                session,
                "data.transform",
                {
                    "rows": loaded.result["rows"],
                    "columns": loaded.result["columns"],
                    "operations": [
                        {"op": "filter", "column": "operational", "operator": "==", "value": True},
                        {"op": "filter", "column": "readout_error", "operator": "<", "value": lim},
                    ],
                },
                backend="local",
            )
            for lim in limits
        ]
        tables = [
            {"rows": done.result["rows"], "columns": done.result["columns"]}
            for done in (future.result() for future in cleaning)
        ]
        run = run_workflow(session, device_summaries(), {"tables": tables})
        summaries = session.step_outputs(run, "summarize")
        for limit, summary in zip(limits, summaries, strict=True):
            get_run_logger().info("readout error < %s: %d qubits", limit, summary["row_count"])
        return {str(limit): s["table"] for limit, s in zip(limits, summaries, strict=True)}


if __name__ == "__main__":
    calibration_report()
