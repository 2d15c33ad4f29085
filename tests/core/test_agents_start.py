"""Loading the agents imports no Qiskit or SciPy: the quantum agents import them where
they parse, profile or run a circuit, so that a process serving no quantum work (an API
process before its first quantum request, a remote runner) starts without them; and
the first quantum execution still validates, profiles and runs."""

from __future__ import annotations

import json
import subprocess
import sys

QUANTUM_LIBRARIES = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "scipy")


def _probe(code: str) -> list[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
        f"& set({QUANTUM_LIBRARIES!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, check=True
    )
    found: list[str] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_discovering_the_agents_imports_no_quantum_library() -> None:
    discovered = (
        "from limit_graph.core.agents import AgentRegistry\n"
        "registry = AgentRegistry.discover([])\n"
        "assert registry.get('quantum.sample') and registry.get('qaoa.maxcut')"
    )
    assert _probe(discovered) == []


def test_the_first_quantum_inputs_import_what_they_need() -> None:
    validated = (
        "from limit_graph.core.agents import AgentRegistry\n"
        "from limit_graph.orchestration.admission import validate_and_profile\n"
        "agent = AgentRegistry.discover([]).get('quantum.sample')\n"
        'source = \'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; '
        "h q[0]; cx q[0], q[1]; c = measure q;'\n"
        "pub = {'circuit': {'format': 'qasm3', 'source': source}, 'shots': 10}\n"
        "inputs = {'target': 'aer', 'pubs': [pub]}\n"
        "validated, profile = validate_and_profile(agent, inputs)\n"
        "assert profile is not None and profile.circuits[0].num_qubits == 2, profile"
    )
    assert "qiskit" in _probe(validated)
