"""Quantum targets: names resolved to targets, what each describes for provenance, and
that each simulates what it claims (exact, noisy, the fake device's own gates)."""

from __future__ import annotations

import asyncio
import re
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from prefect.events.worker import EventsWorker
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from limit_graph.blocks import AerTarget, FakeDeviceTarget, QuantumTarget, resolve_target
from limit_graph.blocks.quantum import EstimatePub, SamplePub, fake_devices
from limit_graph.core.errors import ConfigError, InvalidInput
from limit_graph.core.settings import load_settings
from limit_graph.deployments.register import prefect_api, register_platform
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.prefect import unique_name

SHA256 = re.compile(r"sha256:[0-9a-f]{64}$")


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def sample(target: QuantumTarget, circuit: QuantumCircuit, shots: int, seed: int | None):
    isa = target.transpile(circuit, optimization_level=1, seed=seed)
    return target.sample([SamplePub(isa, shots)], seed=seed)[0]


@pytest.mark.parametrize(
    "name", ["fake:manila", "FAKE:Manila", "fake:FakeManilaV2", "fake:fake_manila"]
)
def test_fake_device_names_are_case_insensitive(name: str) -> None:
    target = resolve_target(name)
    assert target is resolve_target("fake:manila")  # one target however it is spelled
    assert target.name == "fake:manila"
    assert target.num_qubits == 5
    assert isinstance(target, QuantumTarget)


def test_a_name_resolves_once_per_process() -> None:
    assert resolve_target("aer") is resolve_target("aer")
    assert resolve_target("fake:brisbane").num_qubits == 127


@pytest.mark.parametrize("name", ["", "qpu:one", "aer:gpu", "fake:", "ibm:", "simulator"])
def test_an_unknown_target_name_lists_the_valid_forms(name: str) -> None:
    with pytest.raises(InvalidInput, match=r"valid forms: aer, fake:<device>, ibm:<backend>"):
        resolve_target(name)


def test_an_unknown_fake_device_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"no fake device 'atlantis'; known devices: .*manila"):
        resolve_target("fake:atlantis")
    assert {"manila", "brisbane", "fez"} <= fake_devices().keys()


def test_ibm_targets_that_cannot_be_imported_are_a_clear_invalid_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "limit_graph.blocks.quantum.ibm", None)
    with pytest.raises(InvalidInput, match="IBM targets are not available here"):
        resolve_target("ibm:ibm_unimportable_test_device")


def test_exact_aer_describes_itself_as_ideal_with_library_versions() -> None:
    info = resolve_target("aer").describe()
    assert info.name == "aer" and info.kind == "aer" and info.simulator
    assert info.snapshot_id == "ideal"
    assert info.num_qubits is not None and info.num_qubits >= 20
    assert dict(info.versions) == {
        "qiskit": version("qiskit"),
        "qiskit-aer": version("qiskit-aer"),
        "qiskit-ibm-runtime": version("qiskit-ibm-runtime"),
    }
    assert {"cx", "measure"} <= set(info.basis_gates)


def test_noisy_aer_snapshot_is_a_hash_of_its_noise_settings() -> None:
    noisy = AerTarget(depolarizing_2q=0.05, readout_error=0.02).get_target().describe()
    same = AerTarget(depolarizing_2q=0.05, readout_error=0.02).get_target().describe()
    other = AerTarget(depolarizing_2q=0.06, readout_error=0.02).get_target().describe()
    assert noisy.snapshot_id.startswith("aer-noise:") and SHA256.search(noisy.snapshot_id)
    assert noisy.snapshot_id == same.snapshot_id != other.snapshot_id
    assert noisy.options["noise"]["depolarizing_2q"] == 0.05


def test_fake_device_snapshot_names_the_calibration_date_and_hash() -> None:
    info = resolve_target("fake:manila").describe()
    assert info.kind == "fake" and info.simulator
    assert info.snapshot_id.startswith("fake_manila@2024-05-27T")
    assert SHA256.search(info.snapshot_id)
    assert set(info.basis_gates) >= {"cx", "rz", "sx", "x", "measure"}


def test_a_gpu_this_aer_lacks_is_a_config_error() -> None:
    from qiskit_aer import AerSimulator

    if "GPU" in AerSimulator().available_devices():
        pytest.skip("this qiskit-aer has a GPU")
    with pytest.raises(ConfigError, match="Aer device 'GPU' is not available here"):
        AerTarget(device="GPU").get_target()


def test_exact_aer_gives_only_the_ideal_bitstrings_and_noisy_aer_more() -> None:
    exact = sample(resolve_target("aer"), bell(), 2000, seed=3)
    assert set(exact.counts) == {"00", "11"} and sum(exact.counts.values()) == 2000
    noisy_target = AerTarget(depolarizing_2q=0.1, readout_error=0.05).get_target()
    noisy = sample(noisy_target, bell(), 2000, seed=3)
    assert {"01", "10"} & set(noisy.counts)
    assert noisy.job_id is None


def test_a_block_seed_is_used_when_the_call_gives_none() -> None:
    target = AerTarget(seed_simulator=11).get_target()
    first = sample(target, bell(), 500, seed=None)
    second = sample(target, bell(), 500, seed=None)
    assert first.counts == second.counts


def test_a_fake_device_transpiles_to_its_basis_and_coupling_map() -> None:
    target = resolve_target("fake:manila")
    circuit = QuantumCircuit(5)
    circuit.h(0)
    for control in range(4):
        circuit.cx(0, control + 1)  # a star: manila is a line, so routing must swap
    circuit.measure_all()
    isa = target.transpile(circuit, optimization_level=1, seed=5)
    backend = fake_devices()["manila"]()
    allowed = set(backend.operation_names) | {"barrier"}
    assert set(isa.count_ops()) <= allowed
    edges = {tuple(edge) for edge in backend.coupling_map.get_edges()}
    for item in isa.data:
        if item.operation.num_qubits == 2:
            pair = tuple(isa.find_bit(q).index for q in item.qubits)
            assert pair in edges


def test_fake_device_blocks_build_the_target_for_their_device() -> None:
    target = FakeDeviceTarget(device="Lima", seed_simulator=3).get_target()
    assert target.name == "fake:lima" and target.num_qubits == 5
    with pytest.raises(InvalidInput, match="no fake device"):
        FakeDeviceTarget(device="nowhere").get_target()


def test_estimate_with_a_precision_reports_it_as_the_standard_error() -> None:
    target = resolve_target("aer")
    circuit = QuantumCircuit(1)
    circuit.h(0)
    isa = target.transpile(circuit, optimization_level=1, seed=1)
    exact = target.estimate([EstimatePub(isa, [SparsePauliOp("X")])], precision=None, seed=1)
    assert exact[0].evs == pytest.approx([1.0], abs=1e-9) and exact[0].stds == [0.0]
    rough = target.estimate([EstimatePub(isa, [SparsePauliOp("X")])], precision=0.01, seed=1)
    assert rough[0].stds == [0.01] and rough[0].evs[0] == pytest.approx(1.0, abs=0.06)
    again = target.estimate([EstimatePub(isa, [SparsePauliOp("X")])], precision=0.01, seed=1)
    assert again[0].evs == rough[0].evs


async def test_registration_adds_the_target_block_types_which_round_trip(
    tmp_path: Path, scratch_blocks: PrefectServer
) -> None:
    settings = load_settings(environ={}, home=str(tmp_path / "home"))
    server = scratch_blocks
    noisy, manila = unique_name("noisy-aer"), unique_name("manila")
    await register_platform(
        settings, server.api_url, platform_url="http://127.0.0.1:8080", runner_key="k"
    )
    async with prefect_api(server.api_url) as client:
        for block in (AerTarget, FakeDeviceTarget):
            slug = block.get_block_type_slug()
            assert (await client.read_block_type_by_slug(slug)).name.startswith("LIMIT ")
        await AerTarget(method="density_matrix", depolarizing_2q=0.02).asave(noisy, client=client)
        await FakeDeviceTarget(device="manila", seed_simulator=4).asave(manila, client=client)
        aer = await AerTarget.aload(noisy, client=client)
        fake = await FakeDeviceTarget.aload(manila, client=client)
    await asyncio.to_thread(EventsWorker.drain_all, 10)  # "loaded" events, sent here
    assert aer.get_target().describe().options["method"] == "density_matrix"
    assert aer.get_target().describe().snapshot_id.startswith("aer-noise:")
    assert fake.get_target().name == "fake:manila" and fake.seed_simulator == 4


def test_aer_transpiles_the_same_whatever_the_seed_at_levels_0_and_1() -> None:
    """The pass-manager cache serves every seed from one manager on all-to-all Aer at
    these levels; this holds only while Qiskit's output there does not depend on it."""
    from qiskit import qasm3
    from qiskit.circuit.random import random_circuit
    from qiskit.transpiler import generate_preset_pass_manager

    target = resolve_target("aer")
    circuit = random_circuit(8, 8, measure=True, seed=3)
    device = target._transpile_target  # type: ignore[attr-defined]
    for level in (0, 1):
        fresh = {
            qasm3.dumps(
                generate_preset_pass_manager(
                    optimization_level=level, target=device, seed_transpiler=seed
                ).run(circuit)
            )
            for seed in range(5)
        }
        cached = qasm3.dumps(target.transpile(circuit, optimization_level=level, seed=99))
        assert fresh == {cached}, level


@pytest.mark.parametrize("target_name", ["aer", "fake:manila"])
def test_sampling_gives_the_counts_of_aers_own_sampler_for_the_same_seed(
    target_name: str,
) -> None:
    """The simulator runs the PUBs itself (no sampler job thread, no per-shot bit
    arrays); the counts are those of Aer's SamplerV2 with the same seed: registers
    joined with the first one rightmost, parameters bound, shots grouped."""
    from qiskit import ClassicalRegister, QuantumRegister
    from qiskit.circuit import Parameter
    from qiskit_aer.primitives import SamplerV2

    q, low, high = QuantumRegister(3), ClassicalRegister(1, "low"), ClassicalRegister(2, "high")
    registers = QuantumCircuit(q, low, high)
    registers.h(0)
    registers.x(1)
    registers.h(2)
    registers.measure(0, low[0])
    registers.measure(1, high[0])
    registers.measure(2, high[1])
    theta = Parameter("theta")
    rotated = QuantumCircuit(2)
    rotated.ry(theta, 0)
    rotated.cx(0, 1)
    rotated.measure_all()
    mid = QuantumCircuit(2, 2)
    mid.h(0)
    mid.measure(0, 0)
    mid.cx(0, 1)
    mid.h(0)
    mid.measure(0, 1)
    target = resolve_target(target_name)
    isa = [target.transpile(c, optimization_level=1, seed=5) for c in (registers, rotated, mid)]
    pubs = [
        SamplePub(isa[0], 700),
        SamplePub(isa[1], 300, {"theta": 0.7}),
        SamplePub(isa[2], 700),
        SamplePub(isa[1], 700, {"theta": 2.0}),
    ]
    ours = target.sample(pubs, seed=9)
    sampler = SamplerV2.from_backend(target.simulator, seed=9)  # type: ignore[attr-defined]
    theirs = sampler.run(
        [
            (
                p.circuit,
                {p.circuit.parameters[0]: v} if (v := p.parameter_values.get("theta")) else {},
                p.shots,
            )
            for p in pubs
        ]
    ).result()
    for pub, mine, reference in zip(pubs, ours, theirs, strict=True):
        assert mine.shots == pub.shots == sum(mine.counts.values())
        assert mine.counts == reference.join_data().get_counts()
    if target_name == "aer":  # low is clbit 0 (always 0 or 1), high's first bit always 1
        assert set(ours[0].counts) == {"010", "011", "110", "111"}


def test_aer_limits_are_all_to_all_with_its_operations_and_no_shot_cap() -> None:
    target = resolve_target("aer")
    limits = target.limits()
    assert (limits.name, limits.simulator, limits.coupling, limits.max_shots) == (
        "aer",
        True,
        None,
        None,
    )
    assert limits.num_qubits == target.num_qubits
    simulator = target.simulator  # type: ignore[attr-defined]
    assert limits.basis_gates == frozenset(simulator.operation_names)
    assert {"cx", "rzz", "measure", "if_else"} <= limits.basis_gates
    assert target.limits() is limits  # built once


def test_fake_device_limits_are_the_devices_coupling_map_and_operations() -> None:
    limits = resolve_target("fake:manila").limits()
    assert (limits.name, limits.num_qubits, limits.simulator, limits.max_shots) == (
        "fake:manila",
        5,
        True,
        None,
    )
    line = [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert limits.coupling == tuple(sorted(line + [(b, a) for a, b in line]))
    assert limits.basis_gates == frozenset(fake_devices()["manila"]().operation_names)
    assert "h" not in limits.basis_gates and {"cx", "rz", "sx", "measure"} <= limits.basis_gates
    brisbane = resolve_target("fake:brisbane").limits()
    assert brisbane.num_qubits == 127 and "ecr" in brisbane.basis_gates
    device_edges = fake_devices()["brisbane"]().coupling_map.get_edges()
    assert brisbane.coupling == tuple(sorted(device_edges))
    assert (1, 0) in brisbane.coupling and (0, 1) not in brisbane.coupling  # ECR: one way
