"""The compliance checks on their own: declarations parsed (or refused), content judged."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

from limit_graph.core.agents import AgentSpec
from limit_graph.core.compliance import CircuitProfile, TargetLimits, WorkProfile
from limit_graph.core.errors import CheckFailed, InvalidInput, PolicyDenied
from limit_graph.core.models import BackendKind, Session, SessionConfig, SessionState
from limit_graph.governance.auth import Principal
from limit_graph.governance.compliance import ComplianceChecks, ContentContext, parse_declarations
from tests.fixtures.records import T0

pytestmark = pytest.mark.asyncio


class Inputs(BaseModel):
    target: str = "aer"
    records: list[dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"classification": "pii"}
    )
    note: str | None = None


AGENT = AgentSpec(
    name="probe",
    version="1.0.0",
    description="",
    input_model=Inputs,
    output_model=Inputs,
    fn=lambda inputs: inputs,
    backends=(BackendKind.LOCAL, BackendKind.REMOTE, BackendKind.QUANTUM),
)

SEVEN = TargetLimits(
    name="fake:nairobi",
    num_qubits=7,
    basis_gates=frozenset({"cx", "rz", "sx", "x"}),
    max_shots=20_000,
)


def _session(**config: Any) -> Session:
    parsed = SessionConfig(**config)
    return Session(
        id=uuid.uuid4(),
        name="s",
        state=SessionState.ACTIVE,
        config=parsed,
        config_sha256=parsed.sha256(),
        owner="alice",
        tenant="acme",
        created_at=T0,
        updated_at=T0,
    )


def _circuit(
    qubits: int,
    *,
    depth: int = 10,
    cx: int = 2,
    shots: int = 1000,
    ops: tuple[str, ...] = ("h", "cx", "measure"),
) -> CircuitProfile:
    return CircuitProfile(
        num_qubits=qubits, depth=depth, two_qubit_gates=cx, operations=frozenset(ops), shots=shots
    )


def _ctx(
    session: Session,
    *,
    inputs: dict[str, Any] | None = None,
    profile: WorkProfile | None = None,
    backend: BackendKind = BackendKind.QUANTUM,
    instances: tuple[str, ...] = (),
) -> ContentContext:
    raw = inputs if inputs is not None else {"target": "fake:nairobi"}
    return ContentContext(
        Principal(name="alice", tenant="acme"),
        session,
        AGENT,
        backend,
        raw,
        Inputs.model_validate(raw),
        profile,
        instances=instances,
        data_dir=Path("."),
    )


def _checks(**platform: Any) -> ComplianceChecks:
    return ComplianceChecks(
        platform.get("checks", []),
        platform.get("clearances", {"pii": ["local"], "restricted": ["local"]}),
        Path("."),
    )


async def test_a_circuit_wider_than_the_limit_is_refused_with_each_breach() -> None:
    session = _session(
        policies=[
            {
                "check": "circuit-limits",
                "max_qubits": 7,
                "max_depth": 200,
                "max_two_qubit_gates": 100,
                "max_shots": 10_000,
            }
        ]
    )
    profile = WorkProfile("fake:nairobi", (_circuit(30, depth=250, cx=5),), SEVEN)
    ctx = _ctx(session, profile=profile)
    denial = await _checks().evaluate(ctx)
    assert isinstance(denial, CheckFailed) and denial.status_code == 422
    assert denial.policy_ids == ["circuit-limits"]
    limits = {f["limit"]: f for f in denial.failures}
    assert limits["max_qubits"] == {"pub": 0, "limit": "max_qubits", "allowed": 7, "actual": 30}
    assert limits["max_depth"]["actual"] == 250
    assert limits["target_qubits"]["allowed"] == 7
    assert "30 qubits (at most 7)" in denial.detail
    [verdict] = ctx.results
    assert verdict.check == "circuit-limits" and not verdict.passed


async def test_a_circuit_within_the_limits_passes_and_is_on_record() -> None:
    session = _session(policies=[{"check": "circuit-limits", "max_qubits": 7, "max_shots": 5000}])
    ctx = _ctx(session, profile=WorkProfile("fake:nairobi", (_circuit(5),), SEVEN))
    assert await _checks().evaluate(ctx) is None
    [verdict] = ctx.results
    assert verdict.passed and verdict.policy_ids == ["circuit-limits"]
    assert "session policies[0]" in (verdict.detail or "")


async def test_shots_gates_and_the_targets_own_cap() -> None:
    session = _session(
        policies=[{"check": "circuit-limits", "max_shots": 1500, "gates": ["h", "cx"]}]
    )
    profile = WorkProfile(
        "fake:nairobi",
        (_circuit(2, shots=1000, ops=("h", "cx", "ccx", "measure")), _circuit(2, shots=25_000)),
        SEVEN,
    )
    denial = await _checks().evaluate(_ctx(session, profile=profile))
    assert isinstance(denial, CheckFailed)
    found = {(f["limit"], f.get("pub")) for f in denial.failures}
    assert ("gates", 0) in found  # ccx is not allowed; measure always is
    assert ("max_shots", None) in found  # 26,000 in all
    assert ("target_max_shots", 1) in found  # over the device's own cap


async def test_limits_for_other_targets_do_not_apply() -> None:
    session = _session(
        policies=[{"check": "circuit-limits", "targets": ["ibm:*"], "max_qubits": 2}]
    )
    ctx = _ctx(session, profile=WorkProfile("fake:nairobi", (_circuit(5),), SEVEN))
    assert await _checks().evaluate(ctx) is None
    assert ctx.results == []


async def test_allowed_targets() -> None:
    session = _session(policies=[{"check": "allowed-targets", "targets": ["aer", "fake:*"]}])
    assert await _checks().evaluate(_ctx(session, inputs={"target": "fake:manila"})) is None
    denial = await _checks().evaluate(_ctx(session, inputs={"target": "ibm:brisbane"}))
    assert isinstance(denial, PolicyDenied) and denial.status_code == 403
    assert denial.policy_ids == ["allowed-targets"]
    assert "ibm:brisbane" in denial.detail and "aer, fake:*" in denial.detail


async def test_classified_inputs_run_only_where_cleared() -> None:
    session = _session()
    records = {"target": "aer", "records": [{"a": 1}]}
    remote = _ctx(session, inputs=records, backend=BackendKind.REMOTE, instances=("us-1",))
    denial = await _checks().evaluate(remote)
    assert isinstance(denial, PolicyDenied) and denial.policy_ids == ["data-classification"]
    assert "records (pii: cleared for local)" in denial.detail
    local = _ctx(session, inputs=records, backend=BackendKind.LOCAL)
    assert await _checks().evaluate(local) is None
    assert local.results[0].check == "data-classification" and local.results[0].passed
    # Not given, not classified: nothing to check.
    bare = _ctx(session, inputs={"target": "aer"}, backend=BackendKind.REMOTE)
    assert await _checks().evaluate(bare) is None and bare.results == []


async def test_instances_are_cleared_only_if_every_candidate_is() -> None:
    checks = _checks(clearances={"pii": ["local", "remote:eu-*"], "restricted": ["local"]})
    inputs = {"target": "aer", "records": [{"a": 1}]}
    session = _session()
    eu = _ctx(session, inputs=inputs, backend=BackendKind.REMOTE, instances=("eu-1", "eu-2"))
    assert await checks.evaluate(eu) is None
    mixed = _ctx(session, inputs=inputs, backend=BackendKind.REMOTE, instances=("eu-1", "us-1"))
    assert isinstance(await checks.evaluate(mixed), PolicyDenied)


async def test_a_session_classifies_inputs_and_narrows_clearances() -> None:
    session = _session(
        classification={"note": "restricted"},
        policies=[{"check": "data-classification", "pii": []}],
    )
    noted = _ctx(session, inputs={"target": "aer", "note": "x"}, backend=BackendKind.REMOTE)
    denial = await _checks().evaluate(noted)
    assert denial is not None and "note (restricted" in denial.detail
    # The session's declaration clears pii nowhere, not even locally.
    local = _ctx(session, inputs={"target": "aer", "records": [{}]}, backend=BackendKind.LOCAL)
    denial = await _checks().evaluate(local)
    assert denial is not None and "cleared for nothing" in denial.detail


@pytest.mark.parametrize(
    ("declaration", "loc", "says"),
    [
        ({"check": "circuit-limit", "max_qubits": 7}, ["policies", 0, "check"], "unknown check"),
        (
            {"check": "circuit-limits", "max_qubits": -1},
            ["policies", 0, "max_qubits"],
            "greater than or equal to 1",
        ),
        ({"check": "circuit-limits", "max_qbits": 7}, ["policies", 0, "max_qbits"], "Extra"),
        ({"check": "allowed-targets", "targets": []}, ["policies", 0, "targets"], "at least 1"),
        ({"check": "data-classification", "secret": ["local"]}, ["policies", 0, "secret"], "Extra"),
    ],
)
async def test_a_bad_declaration_is_a_422_naming_the_field(
    declaration: dict[str, Any], loc: list[Any], says: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_declarations([declaration], "session", ["policies"])
    assert caught.value.status_code == 422
    assert caught.value.errors[0]["loc"] == loc
    assert says in caught.value.errors[0]["msg"] or says in caught.value.detail


async def test_a_bad_platform_declaration_stops_the_checks_from_being_built() -> None:
    with pytest.raises(InvalidInput, match="platform policies"):
        _checks(checks=[{"check": "circuit-limits", "max_depth": 0}])


async def test_platform_checks_apply_to_every_session() -> None:
    checks = _checks(checks=[{"check": "allowed-targets", "targets": ["aer"]}])
    denial = await checks.evaluate(_ctx(_session(), inputs={"target": "fake:manila"}))
    assert denial is not None and "declared in platform policies[0]" in denial.detail
