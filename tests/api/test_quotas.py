"""Quotas and circuit limits as a user meets them over REST: refused with a clear
message, shown by ``GET /quotas``, every decision in the ledger."""

from __future__ import annotations

import uuid
from typing import Any

from tests.fixtures.api import Api, assert_problem

BELL = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
h q[0];
cx q[0], q[1];
c = measure q;
"""


def _wide(qubits: int) -> str:
    gates = "".join(f"h q[{i}];\n" for i in range(qubits))
    return (
        f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{qubits}] q;\nbit[{qubits}] c;\n'
        f"{gates}c = measure q;\n"
    )


def sample(source: str, shots: int, target: str = "aer") -> dict[str, Any]:
    return {
        "agent": "quantum.sample",
        "backend": "quantum",
        "wait_s": 0,
        "inputs": {
            "target": target,
            "seed": 7,
            "pubs": [{"circuit": {"format": "qasm3", "source": source}, "shots": shots}],
        },
    }


async def _denials(api: Api, session_id: str) -> list[dict[str, Any]]:
    entries = await api.platform.storage.list_entries(session_id=uuid.UUID(session_id))
    return [e.payload for e in entries if e.action == "execution.denied"]


async def test_a_session_over_its_shot_quota_is_refused_and_get_quotas_shows_why(
    api: Api,
) -> None:
    sid = await api.new_session(backends=["quantum"], quotas={"shots": 150, "executions": 5})
    first = await api.client.post(f"/sessions/{sid}/execute", json=sample(BELL, 100))
    assert first.status_code == 202, first.text
    assert [c["check"] for c in first.json()["checks"]][-1] == "quota"

    refused = await api.client.post(f"/sessions/{sid}/execute", json=sample(BELL, 100))
    body = assert_problem(refused, 403)
    assert body["type"].endswith("/quota-cap-reached")
    assert body["quota"]["resource"] == "shots" and body["quota"]["limit"] == 150
    assert body["quota"]["reserved"] == 100 and body["quota"]["requested"] == 100
    assert "150" in body["detail"] and "shots" in body["detail"]
    assert body["policy_ids"] == [f"quota:session:{sid}:shots"]

    shown = (await api.client.get("/quotas", params={"session_id": sid})).json()["items"]
    by_resource = {q["resource"]: q for q in shown if q["scope"] == f"session:{sid}"}
    assert by_resource["shots"]["reserved"] == 100 and by_resource["shots"]["used"] == 0
    assert by_resource["shots"]["resets_at"] is None
    assert by_resource["executions"]["reserved"] == 1

    [denial] = await _denials(api, sid)
    assert denial["policy_ids"] == [f"quota:session:{sid}:shots"]
    assert denial["quota"]["resource"] == "shots"
    assert {c["check"] for c in denial["checks"]} >= {"access"}

    # Cancelled before it ran: the shots come back, the execution is counted.
    eid = first.json()["id"]
    cancelled = await api.client.post(f"/sessions/{sid}/executions/{eid}/cancel")
    assert cancelled.json()["state"] == "cancelled"
    shown = (await api.client.get("/quotas", params={"session_id": sid})).json()["items"]
    by_resource = {q["resource"]: q for q in shown if q["scope"] == f"session:{sid}"}
    assert by_resource["shots"] == {**by_resource["shots"], "used": 0, "reserved": 0}
    assert by_resource["executions"]["used"] == 1 and by_resource["executions"]["reserved"] == 0
    again = await api.client.post(f"/sessions/{sid}/execute", json=sample(BELL, 100))
    assert again.status_code == 202, again.text


async def test_a_30_qubit_circuit_on_a_7_qubit_limit_is_refused_before_queueing(
    api: Api,
) -> None:
    limits = {"check": "circuit-limits", "max_qubits": 7, "max_shots": 10_000}
    sid = await api.new_session(backends=["quantum"], policies=[limits])
    refused = await api.client.post(f"/sessions/{sid}/execute", json=sample(_wide(30), 100))
    body = assert_problem(refused, 422)
    assert body["type"].endswith("/check-failed") and body["policy_ids"] == ["circuit-limits"]
    assert {"pub": 0, "limit": "max_qubits", "allowed": 7, "actual": 30} in body["failures"]
    assert "30 qubits (at most 7)" in body["detail"]
    listed = (await api.client.get(f"/sessions/{sid}/results")).json()["items"]
    assert listed == []  # nothing queued
    [denial] = await _denials(api, sid)
    assert denial["policy_ids"] == ["circuit-limits"]
    verdicts = {c["check"]: c["passed"] for c in denial["checks"]}
    assert verdicts == {"access": True, "circuit-limits": False}

    fits = await api.client.post(f"/sessions/{sid}/execute", json=sample(_wide(5), 100))
    assert fits.status_code == 202, fits.text
    kept = {c["check"]: c["passed"] for c in fits.json()["checks"]}
    assert kept["circuit-limits"] is True


async def test_tenant_quotas_are_set_by_the_platform_admin_and_shown_to_members(
    api: Api,
) -> None:
    put = await api.client.put(
        "/quotas/tenant:other-tenant", json={"executions": 1, "period": "day"}
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "scope": "tenant:other-tenant",
        "limits": {"executions": 1, "period": "day"},
    }
    shown = (await api.other.get("/quotas")).json()["items"]
    assert [(q["scope"], q["resource"], q["limit"]) for q in shown] == [
        ("tenant:other-tenant", "executions", 1)
    ]
    assert shown[0]["resets_at"] is not None

    # Bob, an author of that tenant, may not raise it.
    assert_problem(
        await api.other.put("/quotas/tenant:other-tenant", json={"executions": 9, "period": "day"}),
        403,
    )
    sid = (await api.other.post("/sessions", json={"config": {}})).json()["id"]
    done = await api.other.post(f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {}})
    assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    over = await api.other.post(f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {}})
    body = assert_problem(over, 429)
    assert int(over.headers["Retry-After"]) >= 1 and body["retry_after_s"] > 0
    assert body["quota"]["scope"] == "tenant:other-tenant"


async def test_bad_quota_settings_are_a_422_and_nothing_is_written(api: Api) -> None:
    before = await api.ledger_size()
    for scope, body in [
        ("tenant:other-tenant", {"shots": -1, "period": "day"}),
        ("tenant:other-tenant", {"shots": 10}),  # counted, no period
        ("tenant:other-tenant", {"shots": 10, "period": "week"}),
        ("tenant:other-tenant", {"shotz": 10, "period": "day"}),
        ("team:other-tenant", {"shots": 10, "period": "day"}),
        (f"session:{uuid.uuid4()}", {"shots": 10}),
    ]:
        assert_problem(await api.client.put(f"/quotas/{scope}", json=body), 422)
    assert await api.ledger_size() == before
    assert (await api.other.get("/quotas")).json()["items"] == []


async def test_quick_local_work_over_its_quota_is_refused_unrecorded_and_counted_once(
    api: Api,
) -> None:
    sid = await api.new_session(quotas={"executions": 2, "concurrent": 1})
    for n in range(2):
        done = await api.client.post(
            f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {"n": n}}
        )
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "succeeded"
    size = await api.ledger_size()
    over = await api.client.post(f"/sessions/{sid}/execute", json={"agent": "echo", "inputs": {}})
    body = assert_problem(over, 403)
    assert body["quota"]["resource"] == "executions" and body["quota"]["used"] == 2
    assert await api.actions_since(size) == ["execution.denied"]  # no record of the run
    listed = await api.client.get(f"/sessions/{sid}/results")
    assert len(listed.json()["items"]) == 2
    quotas = await api.client.get("/quotas", params={"session_id": sid})
    use = {i["resource"]: (i["used"], i["reserved"]) for i in quotas.json()["items"]}
    assert use == {"executions": (2, 0), "concurrent": (0, 0)}
