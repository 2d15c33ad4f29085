"""Weighted max-cut, solved two ways: exactly by brute force (``maxcut.exact``, classical)
and by QAOA on a quantum target (``qaoa.maxcut``), so the hybrid answer can be judged
against ground truth in the same session and ledger.

A partition is a string of ``0``/``1`` whose character *i* (left to right) is node *i*'s
side; a cut and its complement are the same cut, so node 0 is always on side ``0``.
Qiskit's bitstrings run the other way (the rightmost bit is qubit 0), which
:func:`partition_of` undoes.  A cut's value is the total weight of the edges it cuts.

>>> graph = Graph(nodes=3, edges=[(0, 1, 1.0), (1, 2, 2.0), (0, 2, 1.0)])
>>> solve_exact(graph).model_dump()
{'partition': '001', 'value': 3.0}
"""

from __future__ import annotations

import math
import time
from importlib.metadata import version
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from prefect import task
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from limit_graph.blocks.quantum import QuantumTarget, library_versions, resolve_target
from limit_graph.core.agents import AgentSpec
from limit_graph.core.compliance import Usage, WorkProfile
from limit_graph.core.models import BackendKind
from limit_graph.tasks.quantum.primitives import (
    RunMetadata,
    SampleRequest,
    estimate_expectations,
    run_sampler,
    transpile_for,
)
from limit_graph.tasks.quantum.work import circuit_profile, run_usage, validated, work_profile

if TYPE_CHECKING:  # Qiskit and SciPy are imported by the functions that use them
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

__all__ = [
    "AGENTS",
    "MAX_EXACT_NODES",
    "MAX_NODES",
    "Graph",
    "MaxCutInput",
    "MaxCutOutput",
    "QaoaInput",
    "QaoaMetadata",
    "QaoaOutput",
    "TracePoint",
    "cost_observable",
    "cut_value",
    "partition_of",
    "qaoa_circuit",
    "qaoa_profile",
    "qaoa_usage",
    "solve_exact",
    "solve_qaoa",
]

MAX_NODES = 256
"""Largest graph accepted at all: beyond today's devices, far beyond simulation."""
MAX_EXACT_NODES = 24
"""Largest graph brute-forced: 2^23 assignments, a few seconds and ~100 MB."""
_CHUNK = 1 << 16
"""Assignments scored per numpy batch, to bound memory."""
_RAMP = 0.75
"""Time step of the linear-ramp start (annealing-like angles that suit most graphs)."""
_JITTER = 0.1
"""Spread of the seeded perturbation of the start, in normalised angle units."""
_RHOBEG = 0.2
"""COBYLA's first step: small, since the angles are normalised to order one."""

_PARTITION = (
    "Character i (left to right) is node i's side, 0 or 1; node 0 is always on side 0 "
    "(a cut and its complement are the same cut)."
)

Node = Annotated[int, Field(strict=True, ge=0)]
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class Graph(BaseModel):
    """An undirected weighted graph: nodes ``0 .. nodes-1`` and ``[u, v, weight]`` edges.

    Self-loops and repeated edges (``[v, u]`` repeats ``[u, v]``) are refused rather
    than merged, since adding or overwriting their weights would be a silent guess.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: int = Field(ge=1, le=MAX_NODES, description="Number of nodes, numbered from 0.")
    edges: list[tuple[Node, Node, Weight]] = Field(
        default_factory=list,
        description="Edges as [u, v, weight]: distinct nodes below `nodes`, a finite weight "
        ">= 0; each pair at most once.",
    )

    @model_validator(mode="after")
    def _check_edges(self) -> Graph:
        seen: dict[tuple[int, int], int] = {}
        for index, (u, v, _) in enumerate(self.edges):
            if u >= self.nodes or v >= self.nodes:
                raise ValueError(
                    f"edge {index} [{u}, {v}] names node {max(u, v)}, but the graph's nodes "
                    f"are 0..{self.nodes - 1}"
                )
            if u == v:
                raise ValueError(f"edge {index} [{u}, {v}] is a self-loop, which no cut cuts")
            pair = (min(u, v), max(u, v))
            if pair in seen:
                raise ValueError(
                    f"edge {index} [{u}, {v}] repeats edge {seen[pair]}; give each pair once "
                    "with its total weight"
                )
            seen[pair] = index
        return self


class MaxCutInput(BaseModel):
    """Inputs of ``maxcut.exact``."""

    model_config = ConfigDict(extra="forbid")

    graph: Graph
    allow_cached: bool = Field(default=False, description="Accept an earlier, cached result.")

    @field_validator("graph")
    @classmethod
    def _small_enough(cls, graph: Graph) -> Graph:
        if graph.nodes > MAX_EXACT_NODES:
            raise ValueError(
                f"brute force takes at most {MAX_EXACT_NODES} nodes, not {graph.nodes} "
                "(use qaoa.maxcut for larger graphs)"
            )
        return graph


class MaxCutOutput(BaseModel):
    """A cut and its value."""

    partition: str = Field(pattern="^[01]+$", description=_PARTITION)
    value: float = Field(description="Total weight of the edges the partition cuts.")


class QaoaInput(BaseModel):
    """Inputs of ``qaoa.maxcut``."""

    model_config = ConfigDict(extra="forbid")

    graph: Graph
    p: int = Field(default=1, ge=1, le=10, description="QAOA depth: cost and mixer layers.")
    target: str = Field(
        default="aer", min_length=1, description="Quantum target: aer, fake:<device>, …"
    )
    shots: int = Field(
        default=2000,
        ge=1,
        le=100_000,
        description="Shots of the final sampling (and of "
        "each energy evaluation when the energy is sampled).",
    )
    seed: int = Field(
        default=0, ge=0, description="Seeds the start point, transpiler and simulator."
    )
    maxiter: int = Field(
        default=100, ge=1, le=1000, description="Budget of energy evaluations (the trace)."
    )
    optimizer: Literal["COBYLA", "Nelder-Mead"] = Field(
        default="COBYLA", description="scipy.optimize.minimize method for the 2p angles."
    )
    energy: Literal["auto", "sampled"] = Field(
        default="auto",
        description="auto: the exact expectation where the target simulates without noise, "
        "else the mean over `shots` samples; sampled: always from samples.",
    )
    allow_cached: bool = Field(default=False, description="Accept an earlier, cached result.")


class TracePoint(BaseModel):
    """One energy evaluation of the optimisation."""

    iteration: int
    params: list[float] = Field(description="gamma_1..gamma_p, then beta_1..beta_p.")
    energy: float = Field(description="Minus the expected cut value at these angles.")


class QaoaMetadata(BaseModel):
    """How the answer was reached, for provenance."""

    target: str
    p: int
    optimizer: str
    energy: Literal["exact", "sampled"]
    evaluations: int
    seed: int
    shots: int
    circuit_sha256: str = Field(description="SHA-256 of the sampled QAOA circuit's QASM 3.")
    versions: dict[str, str]
    duration_s: float
    sampling: RunMetadata = Field(description="Provenance of the final sampling run.")
    usage_s: float | None = Field(
        default=None,
        description="On a device: QPU seconds billed for every job of the solve (the "
        "sampled energy evaluations and the final sampling); null on simulators.",
    )


class QaoaOutput(MaxCutOutput):
    """The best cut sampled from the optimised QAOA state, against the optimum."""

    optimum: float | None = Field(description=f"Exact optimum; null above {MAX_EXACT_NODES}.")
    approximation_ratio: float | None = Field(
        description="value / optimum (1 when the optimum is 0); null without an optimum."
    )
    expected_value: float = Field(description="Expected cut value of the optimised state.")
    params: list[float] = Field(description="Optimised gamma_1..gamma_p, beta_1..beta_p.")
    trace: list[TracePoint]
    metadata: QaoaMetadata


def cut_value(graph: Graph, partition: str) -> float:
    """Total weight of the edges whose ends ``partition`` puts on different sides."""
    if len(partition) != graph.nodes or set(partition) - {"0", "1"}:
        raise ValueError(f"partition must be {graph.nodes} characters of 0 and 1")
    return math.fsum(w for u, v, w in graph.edges if partition[u] != partition[v])


def partition_of(bitstring: str) -> str:
    """Qiskit's bitstring (qubit 0 rightmost) as a partition (node 0 first, on side 0)."""
    ordered = bitstring[::-1]
    return ordered if ordered[0] == "0" else ordered.translate(str.maketrans("01", "10"))


def _best_cut(graph: Graph, partitions: list[str]) -> MaxCutOutput:
    """The highest-valued partition; the lexicographically smallest among equals."""
    best = min(partitions, key=lambda p: (-cut_value(graph, p), p))
    return MaxCutOutput(partition=best, value=cut_value(graph, best))


def solve_exact(graph: Graph) -> MaxCutOutput:
    """The maximum cut by enumerating the 2^(n-1) partitions with node 0 on side 0.

    Scores are ``x·d - xᵀWx`` per assignment ``x`` (``W`` the weight matrix, ``d`` its
    row sums), batched in numpy; values equal to within rounding are ties, and the
    lexicographically smallest partition wins.  Deterministic.
    """
    n = graph.nodes
    if n > MAX_EXACT_NODES:
        raise ValueError(f"brute force takes at most {MAX_EXACT_NODES} nodes, not {n}")
    weights = np.zeros((n, n))
    for u, v, w in graph.edges:
        weights[u, v] = weights[v, u] = w
    degrees = weights.sum(axis=1)
    tolerance = 1e-9 * max(1.0, float(degrees.sum()))
    shifts = np.arange(n - 2, -1, -1, dtype=np.int64)  # node k's bit: node 1 most significant
    best_value, best_index = -math.inf, 0
    total = 1 << (n - 1)
    for start in range(0, total, _CHUNK):
        indices = np.arange(start, min(total, start + _CHUNK), dtype=np.int64)
        sides = np.zeros((indices.size, n))
        sides[:, 1:] = (indices[:, None] >> shifts) & 1
        scores = sides @ degrees - np.einsum("ij,ij->i", sides @ weights, sides)
        top = float(scores.max())
        if top > best_value + tolerance:
            best_value = top
            best_index = start + int(np.flatnonzero(scores >= top - tolerance)[0])
    partition = "0" + format(best_index, f"0{n - 1}b") if n > 1 else "0"
    return MaxCutOutput(partition=partition, value=cut_value(graph, partition))


def qaoa_circuit(graph: Graph, p: int) -> QuantumCircuit:
    """The depth-``p`` QAOA state: ``|+>^n``, then per layer ``RZZ(gamma_l * w)`` on each
    edge (``exp(-i gamma_l w Z_u Z_v / 2)``) and ``RX(2 beta_l)`` on each qubit.
    Parameters are named ``gamma[l]`` and ``beta[l]``; qubit ``i`` is node ``i``."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    gammas, betas = ParameterVector("gamma", p), ParameterVector("beta", p)
    circuit = QuantumCircuit(graph.nodes, name=f"qaoa-maxcut-p{p}")
    circuit.h(range(graph.nodes))
    for layer in range(p):
        for u, v, w in graph.edges:
            circuit.rzz(gammas[layer] * w, u, v)
        circuit.rx(2 * betas[layer], range(graph.nodes))
    return circuit


def cost_observable(graph: Graph) -> SparsePauliOp:
    """``sum_e w_e (Z_u Z_v - 1) / 2``: its expectation is minus the expected cut value."""
    from qiskit.quantum_info import SparsePauliOp

    total = math.fsum(w for _, _, w in graph.edges)
    terms = [("ZZ", [u, v], w / 2) for u, v, w in graph.edges]
    return SparsePauliOp.from_sparse_list([*terms, ("", [], -total / 2)], graph.nodes)


def _start(graph: Graph, p: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The start point in normalised angles and the scale back to gammas and betas.

    Gammas are normalised by the mean weight so that one optimiser step means the same
    on every graph; the start is a linear ramp (small gamma to large, large beta to
    small) perturbed by seeded noise.
    """
    weights = [w for _, _, w in graph.edges if w > 0]
    mean_weight = float(np.mean(weights)) if weights else 1.0
    fractions = (np.arange(p) + 0.5) / p
    ramp = np.concatenate([fractions * _RAMP, (1 - fractions) * _RAMP])
    start = ramp + np.random.default_rng(seed).normal(0.0, _JITTER, 2 * p)
    scale = np.concatenate([np.full(p, 1 / mean_weight), np.ones(p)])
    return start, scale


def _angle_values(p: int, angles: np.ndarray, names: frozenset[str]) -> dict[str, float]:
    """Parameter values by name for the circuit's parameters (``angles``: gammas, betas)."""
    labels = [f"gamma[{i}]" for i in range(p)] + [f"beta[{i}]" for i in range(p)]
    return {label: float(a) for label, a in zip(labels, angles, strict=True) if label in names}


def solve_qaoa(inputs: QaoaInput) -> QaoaOutput:
    """Optimise the 2p QAOA angles on ``inputs.target``, sample the optimised state and
    return the best cut sampled, with the optimum where brute force can find it.

    >>> graph = Graph(nodes=2, edges=[(0, 1, 1.0)])
    >>> solve_qaoa(QaoaInput(graph=graph, shots=100, seed=1)).partition
    '01'
    """
    started = time.perf_counter()
    graph, p, seed = inputs.graph, inputs.p, inputs.seed
    target = resolve_target(inputs.target)
    exact = _exact_energy(inputs, target)
    ansatz = qaoa_circuit(graph, p)
    billed: list[float] = []
    measured = transpile_for(target, ansatz.measure_all(inplace=False), seed=seed)

    if exact:
        observable = cost_observable(graph)
        prepared = transpile_for(target, ansatz, seed=seed)

        def energy_of(values: dict[str, float]) -> float:
            return estimate_expectations(target, prepared, [observable], values, seed)[0]

    else:

        def energy_of(values: dict[str, float]) -> float:
            run = run_sampler(target, [SampleRequest(measured, inputs.shots, values)], seed=seed)
            billed.extend(_billed(run.metadata))
            return -_mean_cut(graph, run.results[0].counts)

    start, scale = _start(graph, p, seed)
    trace: list[TracePoint] = []

    def objective(normalised: np.ndarray) -> float:
        angles = normalised * scale
        energy = energy_of(_angle_values(p, angles, measured.parameter_names))
        trace.append(TracePoint(iteration=len(trace), params=angles.tolist(), energy=energy))
        return energy

    from scipy.optimize import minimize

    result = minimize(objective, start, method=inputs.optimizer, options=_options(inputs))
    best_angles = np.asarray(result.x) * scale
    values = _angle_values(p, best_angles, measured.parameter_names)
    run = run_sampler(target, [SampleRequest(measured, inputs.shots, values)], seed=seed)
    billed.extend(_billed(run.metadata))
    partitions = [partition_of(bits) for bits in run.results[0].counts]
    best = _best_cut(graph, partitions)
    optimum = solve_exact(graph).value if graph.nodes <= MAX_EXACT_NODES else None
    return QaoaOutput(
        partition=best.partition,
        value=best.value,
        optimum=optimum,
        approximation_ratio=_ratio(best.value, optimum),
        expected_value=-float(result.fun),
        params=best_angles.tolist(),
        trace=trace,
        metadata=QaoaMetadata(
            target=target.name,
            p=p,
            optimizer=inputs.optimizer,
            energy="exact" if exact else "sampled",
            evaluations=len(trace),
            seed=seed,
            shots=inputs.shots,
            circuit_sha256=measured.circuit_sha256,
            versions={**library_versions(), "scipy": version("scipy"), "numpy": version("numpy")},
            duration_s=round(time.perf_counter() - started, 6),
            sampling=run.metadata,
            usage_s=round(math.fsum(billed), 6) if billed else None,
        ),
    )


def _exact_energy(inputs: QaoaInput, target: QuantumTarget) -> bool:
    """Whether the energy is the exact expectation (``auto`` on an exact simulator).
    Aer's estimator refuses an observable of identities alone, so a graph with no
    weight to cut is sampled (every sample scores 0) even on an exact simulator."""
    weighted = any(w > 0 for _, _, w in inputs.graph.edges)
    return (
        inputs.energy == "auto"
        and weighted
        and target.limits().simulator
        and target.describe().snapshot_id == "ideal"
    )


def _billed(metadata: RunMetadata) -> list[float]:
    return [] if metadata.usage_s is None else [metadata.usage_s]


def qaoa_profile(inputs: BaseModel) -> WorkProfile:
    """What a validated ``qaoa.maxcut`` request asks of its target, at most: the
    measured QAOA circuit, sampled ``shots`` times at the end and, when the energy is
    sampled, at each of up to ``maxiter`` evaluations: one PUB (and one job) each, so
    a target's per-PUB shot cap meets ``shots``, not the total.  An exact energy
    (``auto`` on exact Aer) is estimated without shots."""
    request = validated(QaoaInput, inputs)
    target = resolve_target(request.target)
    evaluations = 0 if _exact_energy(request, target) else request.maxiter
    measured = qaoa_circuit(request.graph, request.p).measure_all(inplace=False)
    profile = circuit_profile(measured, request.shots)
    return work_profile(target.limits(), [profile] * (evaluations + 1), jobs=evaluations + 1)


def qaoa_usage(result: Any) -> Usage:
    """What a ``qaoa.maxcut`` result used: the shots of its sampled evaluations and of
    its final sampling, and the QPU seconds billed for them, else (on a simulator) the
    solve's whole time, since all of it went to simulating and optimising."""
    metadata = QaoaOutput.model_validate(result).metadata
    evaluated = metadata.evaluations if metadata.energy == "sampled" else 0
    shots = evaluated * metadata.shots + sum(p.shots or 0 for p in metadata.sampling.pubs)
    return run_usage(metadata, shots)


def _options(inputs: QaoaInput) -> dict[str, Any]:
    """The optimiser's budget of ``maxiter`` energy evaluations, in its own terms."""
    if inputs.optimizer == "COBYLA":
        return {"maxiter": inputs.maxiter, "rhobeg": _RHOBEG}
    return {"maxfev": inputs.maxiter}


def _mean_cut(graph: Graph, counts: dict[str, int]) -> float:
    shots = sum(counts.values())
    return math.fsum(cut_value(graph, partition_of(b)) * n for b, n in counts.items()) / shots


def _ratio(value: float, optimum: float | None) -> float | None:
    if optimum is None:
        return None
    return value / optimum if optimum > 0 else 1.0


@task(name="maxcut.exact", persist_result=False)
def maxcut_exact(inputs: MaxCutInput) -> MaxCutOutput:
    """The maximum cut of ``inputs.graph`` by brute force."""
    return solve_exact(inputs.graph)


@task(name="qaoa.maxcut", persist_result=False)
def qaoa_maxcut(inputs: QaoaInput) -> QaoaOutput:
    """The best cut QAOA finds for ``inputs.graph`` on ``inputs.target``."""
    return solve_qaoa(inputs)


AGENTS = (
    AgentSpec(
        name="maxcut.exact",
        version="1.0.0",
        description=f"Maximum weighted cut by brute force (up to {MAX_EXACT_NODES} nodes).",
        input_model=MaxCutInput,
        output_model=MaxCutOutput,
        fn=maxcut_exact.fn,
        backends=(BackendKind.LOCAL, BackendKind.REMOTE),
        deterministic=True,
        task=maxcut_exact,
    ),
    AgentSpec(
        name="qaoa.maxcut",
        version="1.0.0",
        description="Weighted max-cut by QAOA on a quantum target, with the approximation "
        "ratio against the exact optimum and the optimisation trace.",
        input_model=QaoaInput,
        output_model=QaoaOutput,
        fn=qaoa_maxcut.fn,
        backends=(BackendKind.QUANTUM,),
        deterministic=True,
        blocking=True,
        task=qaoa_maxcut,
        profile=qaoa_profile,
        usage=qaoa_usage,
    ),
)
