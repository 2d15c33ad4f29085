"""The ``ibm:`` target: the real qiskit-ibm-runtime client against a local stand-in of IBM
Cloud and the IBM Quantum API (:mod:`tests.blocks.ibm_responses.server`), which runs the
submitted executor programs on Aer with a fake device's noise."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prefect.events.worker import EventsWorker
from pydantic import SecretStr
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime.api.session import PostForcelistRetry

from limit_graph.blocks.backends import ibm_credentials_block
from limit_graph.blocks.quantum import EstimatePub, QuantumTarget, SamplePub
from limit_graph.blocks.quantum.ibm import (
    DEFAULT_CREDENTIALS_BLOCK,
    IBMQuantumCredentials,
    IBMRuntimeTarget,
    IBMTarget,
    JobCancelled,
)
from limit_graph.core.compliance import Usage
from limit_graph.core.errors import BackendError
from limit_graph.core.models import ExecutionState
from limit_graph.core.settings import load_settings
from limit_graph.deployments.register import prefect_api, register_platform
from limit_graph.deployments.server import PrefectServer
from limit_graph.flows.runner import RunnerLoop
from limit_graph.tasks.quantum.agents import sample_usage
from limit_graph.tasks.quantum.circuits import circuit_source
from limit_graph.tasks.quantum.primitives import SampleRequest, run_sampler
from tests.blocks.ibm_responses.server import FakeIBMQuantum
from tests.fixtures.live import free_port
from tests.fixtures.waiting import wait_until

SHOTS = 200
JOB_PATH = re.compile(r"/jobs/[^/]+")


@pytest.fixture
def ibm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeIBMQuantum]:
    fake = FakeIBMQuantum()
    with fake.running():
        monkeypatch.setenv("IAM_URL", fake.iam_url)
        yield fake
    assert fake.errors() == []


def credentials_for(fake: FakeIBMQuantum, api_key: str | None = None) -> IBMQuantumCredentials:
    return IBMQuantumCredentials(
        api_key=SecretStr(api_key or fake.api_key),
        instance=SecretStr(fake.crn),
        url=fake.url,
        proxy_url=fake.proxy_url,
    )


def target_for(fake: FakeIBMQuantum, mode: str = "job") -> IBMTarget:
    block = IBMRuntimeTarget(
        backend_name=fake.backend_name,
        mode=mode,
        credentials=credentials_for(fake),
        job_tags=["limit-graph-test"],
        poll_interval_s=0.02,
    )
    return block.get_target()


def bell(target: IBMTarget, *, measure: bool = True) -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    if measure:
        circuit.measure_all()
    return target.transpile(circuit, optimization_level=1, seed=11)


def test_sample_returns_counts_and_the_jobs_id_queue_and_usage(ibm: FakeIBMQuantum) -> None:
    target = target_for(ibm)
    assert isinstance(target, QuantumTarget)

    [result] = target.sample([SamplePub(bell(target), SHOTS)], seed=None)

    assert sum(result.counts.values()) == result.shots == SHOTS
    assert {len(bits) for bits in result.counts} == {2}
    assert result.counts.get("00", 0) + result.counts.get("11", 0) > SHOTS * 0.8
    [submitted] = ibm.calls("POST", "/jobs")
    assert submitted.body["program_id"] == "executor"
    assert submitted.body["tags"] == ["limit-graph-test"]
    assert "session_id" not in submitted.body
    assert ibm.calls("POST", "/sessions") == []
    assert result.job is not None
    assert result.job_id == result.job.job_id == submitted_job(ibm)
    assert (result.job.queue_seconds, result.job.usage_seconds) == (12.5, 3.0)
    assert (result.job.mode, result.job.session_id) == ("job", None)


@pytest.mark.parametrize(("mode", "wire_mode"), [("session", "dedicated"), ("batch", "batch")])
def test_session_and_batch_modes_submit_every_call_in_one_session(
    ibm: FakeIBMQuantum, mode: str, wire_mode: str
) -> None:
    with target_for(ibm, mode) as target:
        circuit = bell(target)
        first = target.sample([SamplePub(circuit, SHOTS)], seed=None)[0]
        second = target.sample([SamplePub(circuit, SHOTS)], seed=None)[0]

    [opened] = ibm.calls("POST", "/sessions")
    assert opened.body["mode"] == wire_mode
    assert opened.body["backend"] == ibm.backend_name
    session_id = first.job.session_id if first.job else None
    assert session_id is not None
    assert [job.body["session_id"] for job in ibm.calls("POST", "/jobs")] == [session_id] * 2
    assert second.job is not None and second.job.mode == mode
    [closed] = ibm.calls("PATCH", f"/sessions/{session_id}")
    assert closed.body == {"accepting_jobs": False}


def test_estimate_returns_evs_and_stds_with_the_jobs_record(ibm: FakeIBMQuantum) -> None:
    target = target_for(ibm)
    circuit = bell(target, measure=False)
    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in ("ZZ", "XI")]

    [result] = target.estimate([EstimatePub(circuit, observables)], precision=0.05, seed=None)

    zz, xi = result.evs
    assert 0.8 < zz < 1.1 and abs(xi) < 0.2
    assert len(result.stds) == 2 and all(0 < std < 0.2 for std in result.stds)
    assert result.job is not None and result.job.usage_seconds == 3.0
    assert ibm.calls("POST", "/jobs")[0].body["program_id"] == "executor"


def submitted_job(fake: FakeIBMQuantum) -> str:
    """The id of the first job submitted, once it is (within 10 s)."""
    polled = wait_until(lambda: fake.calls("GET", JOB_PATH), 10, 0.01, what="a job polled")
    return polled[0].path.split("/")[-1]


def test_a_set_cancel_event_cancels_the_job_at_ibm(ibm: FakeIBMQuantum) -> None:
    ibm.hold_jobs = True
    target = target_for(ibm)
    pubs = [SamplePub(bell(target), SHOTS)]
    cancel = threading.Event()

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(target.sample, pubs, seed=None, cancel=cancel)
        job_id = submitted_job(ibm)
        cancel.set()
        with pytest.raises(JobCancelled) as caught:
            running.result(timeout=10)

    assert (caught.value.job_id, caught.value.retryable) == (job_id, False)
    assert "IBM took the cancel request" in caught.value.detail
    assert len(ibm.calls("POST", f"/jobs/{job_id}/cancel")) == 1
    assert ibm.job_status(job_id) == "Cancelled"


def test_a_job_cancelled_at_ibm_is_reported_as_cancelled(ibm: FakeIBMQuantum) -> None:
    ibm.hold_jobs = True
    target = target_for(ibm)
    pubs = [SamplePub(bell(target), SHOTS)]

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(target.sample, pubs, seed=None)
        job_id = submitted_job(ibm)
        ibm.cancel_job(job_id)
        with pytest.raises(JobCancelled, match="cancelled at IBM"):
            running.result(timeout=10)

    assert ibm.calls("POST", f"/jobs/{job_id}/cancel") == []


def test_a_5xx_from_ibm_is_a_retryable_backend_error(
    ibm: FakeIBMQuantum, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client's own retries are real (asserted below); only its ~15 s of backoff is skipped.
    monkeypatch.setattr(PostForcelistRetry, "get_backoff_time", lambda _self: 0.0)
    target = target_for(ibm)
    ibm.fail("POST", "/jobs", 502)

    with pytest.raises(BackendError) as caught:
        target.sample([SamplePub(bell(target), SHOTS)], seed=None)

    assert caught.value.retryable is True
    assert "submitting the job" in caught.value.detail
    assert len(ibm.calls("POST", "/jobs")) == 6


def test_a_401_from_ibm_is_a_final_error_naming_the_credentials(ibm: FakeIBMQuantum) -> None:
    target = target_for(ibm)
    ibm.fail("POST", "/jobs", 401)

    with pytest.raises(BackendError) as caught:
        target.sample([SamplePub(bell(target), SHOTS)], seed=None)

    assert caught.value.retryable is False
    assert "refused the IBM Quantum credentials given" in caught.value.detail
    assert "API key" in caught.value.detail


def test_an_unknown_api_key_is_refused_at_sign_in_naming_the_credentials(
    ibm: FakeIBMQuantum,
) -> None:
    with pytest.raises(BackendError) as caught:
        credentials_for(ibm, api_key="revoked-key").get_service()

    assert caught.value.retryable is False
    assert "refused the IBM Quantum credentials given while signing in" in caught.value.detail
    assert "revoked-key" not in caught.value.detail
    assert [r.host for r in ibm.all_requests()] == ["iam.cloud.test"]


def test_a_device_ibm_does_not_have_is_a_final_backend_error(ibm: FakeIBMQuantum) -> None:
    """The client's own error (``QiskitBackendNotFoundError``): IBM answered, and no retry
    will find the device."""
    settings = IBMRuntimeTarget(backend_name="ibm_nowhere", credentials=credentials_for(ibm))

    with pytest.raises(BackendError) as caught:
        settings.get_target()

    assert caught.value.retryable is False
    assert "finding ibm_nowhere" in caught.value.detail
    assert "No backend matches" in caught.value.detail


def test_no_connection_to_ibm_at_sign_in_is_a_retryable_backend_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing listens where IAM and the proxy are: the client's account error, caused by
    requests' ``ProxyError``, is worth retrying."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("IAM_URL", nowhere)
    crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/0:0::"
    credentials = IBMQuantumCredentials(
        api_key=SecretStr("key"),
        instance=SecretStr(crn),
        url="http://cloud.test",
        proxy_url=nowhere,
    )

    with pytest.raises(BackendError) as caught:
        credentials.get_service()

    assert caught.value.retryable is True
    assert "while signing in to IBM Quantum" in caught.value.detail


def test_a_bug_on_the_way_to_ibm_propagates_as_itself(ibm: FakeIBMQuantum) -> None:
    """A ``TypeError`` raised in our own code inside an IBM call (here a PUB whose
    ``parameter_values`` is ``None``, which the submission turns into a dict) is the bug
    it is, not a final ``BackendError`` that would hide it as IBM's failure."""
    target = target_for(ibm)
    broken = SamplePub(bell(target), SHOTS, parameter_values=None)  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="'NoneType' object is not iterable"):
        target.sample([broken], seed=None)

    assert ibm.calls("POST", "/jobs") == []


def test_describe_names_the_current_calibration_and_transpile_targets_the_device(
    ibm: FakeIBMQuantum,
) -> None:
    target = target_for(ibm)

    info = target.describe()
    circuit = bell(target)

    assert (info.name, info.kind, info.num_qubits, info.simulator) == (
        f"ibm:{ibm.backend_name}",
        "ibm",
        5,
        False,
    )
    assert info.snapshot_id.startswith(f"{ibm.backend_name}@2024-05-27T15:27:23")
    assert target.describe().snapshot_id == info.snapshot_id
    assert {"cx", "rz", "sx"} <= set(info.basis_gates)
    assert circuit.num_qubits == 5
    assert set(circuit.count_ops()) <= set(info.basis_gates) | {"measure", "barrier"}
    assert bell(target).count_ops() == circuit.count_ops()

    ibm.properties["last_update_date"] = "2024-05-28T09:00:00-03:00"
    ibm.properties["qubits"][0][0]["value"] *= 1.5
    recalibrated = target.describe().snapshot_id
    assert recalibrated.startswith(f"{ibm.backend_name}@2024-05-28T09:00:00")
    assert recalibrated.split("/")[1] != info.snapshot_id.split("/")[1]


def test_without_a_url_the_client_calls_ibms_real_endpoints(ibm: FakeIBMQuantum) -> None:
    us_east = "crn:v1:bluemix:public:quantum-computing:us-east:a/0123:4567::"
    real = IBMQuantumCredentials(api_key=SecretStr("k"), instance=SecretStr(us_east))
    assert real.runtime_api_url() == "https://quantum.cloud.ibm.com/api/v1"
    named = IBMQuantumCredentials(api_key=SecretStr("k"), instance=SecretStr("my-instance"))
    assert named.runtime_api_url() is None

    local = credentials_for(ibm)
    service = local.get_service()
    assert local.runtime_api_url() == "http://quantum.cloud.test/api/v1"
    assert service._active_api_client._session.base_url == local.runtime_api_url()


def test_the_target_block_holds_its_credentials_as_a_nested_block() -> None:
    schema = IBMRuntimeTarget.model_json_schema()
    assert "credentials" in schema["block_schema_references"]
    assert IBMRuntimeTarget.get_block_type_name() == "LIMIT IBM Runtime Target"
    assert IBMQuantumCredentials.get_block_type_name() == "LIMIT IBM Quantum Credentials"
    assert {"api_key", "instance"} <= set(
        schema["definitions"]["IBMQuantumCredentials"]["secret_fields"]
    )


async def test_a_runner_signs_in_with_the_key_of_the_instance_its_execution_was_routed_to(
    ibm: FakeIBMQuantum, scratch_blocks: PrefectServer, tmp_path: Path
) -> None:
    """The whole path: the instance's key in the config (here from its key file),
    ``limit prefect register`` saving it in the instance's credentials block, and the
    runner resolving the execution's ``ibm:`` target with that block.  An instance with
    no key of its own falls back to the default block, which holds a revoked key here."""
    (tmp_path / "ibm.key").write_text(ibm.api_key)
    config = tmp_path / "limit.toml"
    config.write_text(
        '[backends.quantum]\ntype = "quantum"\nprovider = "ibm"\napi_key_file = "ibm.key"\n'
        '[backends.west]\ntype = "quantum"\nprovider = "ibm"\n'
    )
    settings = load_settings(config, environ={}, home=str(tmp_path / "home"))
    prefect = scratch_blocks
    async with prefect_api(prefect.api_url) as client:
        await IBMQuantumCredentials.aregister_type_and_schema(client=client)
        # Where IBM is (the local stand-in) was set in the UI; the file brings the key.
        await credentials_for(ibm, api_key="stale-key").asave(
            ibm_credentials_block("quantum"), overwrite=True, client=client
        )
        await credentials_for(ibm, api_key="revoked-key").asave(
            DEFAULT_CREDENTIALS_BLOCK, overwrite=True, client=client
        )
        await register_platform(
            settings, prefect.api_url, platform_url="http://127.0.0.1:9", runner_key="k"
        )
        circuit = QuantumCircuit(2)
        circuit.h(0)
        circuit.cx(0, 1)
        circuit.measure_all()
        execution = {
            "id": str(uuid.uuid4()),
            "agent": "quantum.sample",
            "inputs": {
                "target": f"ibm:{ibm.backend_name}",
                "seed": 3,
                "pubs": [{"circuit": circuit_source(circuit, "qasm3"), "shots": SHOTS}],
            },
            "instance": "quantum",
            "timeout_s": 120,
        }
        runner = RunnerLoop("http://127.0.0.1:9", "k", "quantum")

        routed, _ = await runner._outcome(execution)
        fallback, _ = await runner._outcome({**execution, "instance": "west"})
        await asyncio.to_thread(EventsWorker.drain_all, 10)  # "loaded" events, sent here

    assert routed.state is ExecutionState.SUCCEEDED, routed.error
    [pub] = routed.result["pubs"]
    assert sum(pub["counts"].values()) == SHOTS
    assert len(ibm.calls("POST", "/jobs")) == 1
    assert fallback.state is ExecutionState.FAILED and fallback.error is not None
    assert "refused credentials block 'limit-ibm-quantum'" in fallback.error.message
    assert "revoked-key" not in fallback.error.message
    assert ibm.api_key not in fallback.error.message


def test_limits_come_from_the_devices_configuration_once(ibm: FakeIBMQuantum) -> None:
    ibm.configuration["max_shots"] = 20_000  # the device's own cap, as IBM serves it
    target = target_for(ibm)

    limits = target.limits()
    served = len(ibm.all_requests())
    assert target.limits() is limits
    assert len(ibm.all_requests()) == served  # built once, then no more requests

    assert (limits.name, limits.num_qubits, limits.simulator, limits.max_shots) == (
        f"ibm:{ibm.backend_name}",
        5,
        False,
        20_000,
    )
    edges = sorted(tuple(edge) for edge in ibm.configuration["coupling_map"])
    assert limits.coupling == tuple(edges)
    assert {"cx", "rz", "sx", "x", "measure"} <= limits.basis_gates
    assert limits.basis_gates == frozenset(target.describe().basis_gates)


def test_a_run_records_each_jobs_billed_seconds_once_and_usage_reads_them(
    ibm: FakeIBMQuantum,
) -> None:
    target = target_for(ibm)
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    requests = [SampleRequest(circuit, SHOTS), SampleRequest(circuit, SHOTS)]  # IBM: one count

    run = run_sampler(target, requests, seed=3)
    document = {
        "pubs": [{"counts": r.counts, "shots": r.shots} for r in run.results],
        "target": target.name,
        "metadata": run.metadata.model_dump(mode="json"),
    }

    assert len(ibm.calls("POST", "/jobs")) == 1
    assert [p.usage_s for p in run.metadata.pubs] == [3.0, 3.0]
    assert run.metadata.usage_s == 3.0  # one job, however many PUBs it ran
    assert sample_usage(document) == Usage(shots=2 * SHOTS, qpu_seconds=3.0)
