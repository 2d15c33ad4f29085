"""The bell sweep of ``examples/bell_sweep.yaml``, built in Python.

One parameterized circuit sampled over a grid of angles on the ideal ``aer``
simulator and on the noisy ``fake:manila`` model, the two curves compared in a table
and a plot.  ``build()`` gives the same spec the YAML file loads to (the test suite
checks it); run as a script, it validates the workflow on the platform, runs it in a
new session and prints the comparison::

    LIMIT_API_URL=http://127.0.0.1:8080 LIMIT_API_KEY=... python examples/python/bell_sweep.py
"""

from __future__ import annotations

import math

from limit_graph.client import LimitClient, Map, Workflow

CIRCUIT = """\
OPENQASM 3.0;
include "stdgates.inc";
input float[64] theta;
qubit[2] q;
bit[2] c;
ry(theta) q[0];
cx q[0], q[1];
c = measure q;
"""


def build() -> Workflow:
    """The ``bell-sweep`` workflow."""
    wf = Workflow(
        "bell-sweep",
        description="Sample a parameterized Bell circuit over a grid of angles on aer and "
        "fake:manila, and compare.",
        max_parallel=8,
    )
    thetas = wf.param(
        "thetas",
        list,
        default=[round(k * math.pi / 8, 4) for k in range(9)],
        description="The angles swept, in radians.",
    )
    shots = wf.param("shots", int, default=2000)
    seed = wf.param(
        "seed", int, default=7, description="Seeds transpiling and simulation (noise included)."
    )
    circuit = wf.param(
        "circuit",
        str,
        default=CIRCUIT,
        description="OpenQASM 3 with one `input float[64] theta;` and two measured qubits.",
    )

    theta = Map(over=thetas, as_="theta")  # one Map serves both sweeps
    sweeps = {}
    for step_id, target, description in (
        ("aer", "aer", "The ideal curve."),
        ("manila", "fake:manila", "The same circuit on the noisy Manila model."),
    ):
        sweeps[target] = wf.step(
            step_id,
            "quantum.sample",
            description=description,
            backend="quantum",
            map=theta,
            inputs={
                "target": target,
                "seed": seed,
                "pubs": [
                    {
                        "circuit": {"format": "qasm3", "source": circuit},
                        "parameter_values": {"theta": theta.item},
                        "shots": shots,
                    }
                ],
            },
            retries=1,
            timeout_s=120,
        )

    wf.step(
        "compare",
        "compare.sweep",
        description="P(00) per angle on both targets, as a table and a plot.",
        inputs={
            "x": thetas,
            "x_label": "theta",
            "outcome": "00",
            "title": "Bell sweep: P(00) on aer and fake:manila",
            "runs": {target: step.outputs for target, step in sweeps.items()},
        },
    )
    return wf


def main() -> None:
    workflow = build()
    with LimitClient.from_env() as client:
        check = client.validate_workflow(workflow)
        if not check.valid:
            for problem in check.errors:
                print(problem.field, problem.msg)  # noqa: T201 (a script's output)
            raise SystemExit(1)
        session = client.create_session("bell-sweep")
        try:
            run = client.run_workflow(session.id, workflow, wait=True, timeout=600)
            print(f"run {run.id}: {run.state}")  # noqa: T201 (a script's output)
            if run.state == "succeeded":
                table = client.get_artifact(session.id, run.id, "compare-table")
                print(table.content.decode())  # noqa: T201 (a script's output)
        finally:
            client.complete_session(session.id)


if __name__ == "__main__":
    main()
