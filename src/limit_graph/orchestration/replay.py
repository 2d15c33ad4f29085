"""Replay: run a finished execution again from what its ledger entry recorded, and say
whether its result reproduces.

What is replayed is the log, not the mutable record: the execution's final ledger entry
(the one its record points to, checked to be this execution's and ``succeeded``) gives
the agent and version, the canonical inputs, the backend, the timeout and the run
context (:mod:`limit_graph.core.run_context`: library versions, seed, quantum target
and snapshot).  A sensitive execution's entry holds salted commitments instead of its
inputs and result: those come from its stored record, opened, and only once they match
the entry's commitments.

Only work that can reproduce is replayed (:class:`NotReplayable`, a 409, says why not):
an agent that takes a seed must have had one, any other agent must be deterministic, the
agent version must still be registered, and a device (whose shots no seed fixes) is
never replayed.  The replay is submitted through the ordinary execute path -- admission
with every governance check, quotas, the router -- as a new execution whose
``replay_of`` names the original, never answered from the result cache, and waited for.

Results are compared by the SHA-256 of their canonical JSON without the fields that
measure a run rather than compute its answer (durations, device job ids:
:data:`~limit_graph.core.run_context.MEASURED_FIELDS`).  Whatever the verdict, the
answer names each difference of run context (``versions.qiskit-aer``,
``target.snapshot_id``, ``seed``), instance and state; the verdict is itself a ledger
entry (``execution.replayed``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import ValidationError

from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import Conflict, NotFound
from limit_graph.core.models import Execution, ExecutionState, ProvenanceEntry
from limit_graph.core.run_context import comparable_result
from limit_graph.core.sealing import commitment
from limit_graph.governance.auth import Principal
from limit_graph.governance.authorizer import Authorizer
from limit_graph.governance.policy.schema import Action
from limit_graph.orchestration.commands import ExecuteCommand
from limit_graph.orchestration.executions import ExecutionService
from limit_graph.orchestration.sessions import SessionCache, visible_to
from limit_graph.storage.base import Storage
from limit_graph.storage.ledger import EntryDraft

__all__ = ["REPLAYED", "Difference", "NotReplayable", "Replay", "ReplayService"]

REPLAYED = "execution.replayed"
"""The action of the ledger entry that records a replay's verdict."""


class NotReplayable(Conflict):
    """The execution cannot be run again to the same result; ``reason`` says which rule
    refused it (``not-finished``, ``not-succeeded``, ``no-entry``, ``agent-version-gone``,
    ``unseeded``, ``not-deterministic``, ``device``, ``commitment-mismatch``)."""

    title = "Cannot be replayed"
    slug = "not-replayable"

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def extras(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True)
class Difference:
    """One thing the replay ran with, or ended in, that the original did not."""

    field: str
    original: Any
    replay: Any


@dataclass(frozen=True)
class Replay:
    """The original as its ledger entry recorded it, the replay, and the verdict."""

    original: Execution
    replay: Execution
    matches: bool
    original_result_sha256: str
    replay_result_sha256: str | None
    """``None`` when the replay did not succeed."""
    differences: list[Difference]


def result_sha256(result: Any) -> str:
    """The hash a replay compares: of the result's canonical JSON, measured fields out.

    >>> result_sha256({"n": 1, "duration_s": 0.2}) == result_sha256({"n": 1})
    True
    """
    return sha256_hex(comparable_result(result))


def _flat(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested document as dotted paths to its leaves (lists are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(original: Execution, replay: Execution) -> list[Difference]:
    """What differs between the two runs: state, instance, and each leaf of their run
    contexts (or the whole context, when one of them recorded none)."""
    found = [
        Difference(name, was, now)
        for name, was, now in (
            ("state", original.state.value, replay.state.value),
            ("instance", original.instance, replay.instance),
        )
        if was != now
    ]
    before, after = original.run_context, replay.run_context
    if before is None or after is None:
        if before != after:
            found.append(
                Difference(
                    "run_context",
                    before.model_dump(mode="json") if before else None,
                    after.model_dump(mode="json") if after else None,
                )
            )
        return found
    old, new = _flat(before.model_dump(mode="json")), _flat(after.model_dump(mode="json"))
    found.extend(
        Difference(path, old.get(path), new.get(path))
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path)
    )
    return found


def _seed_field(agent: AgentSpec) -> tuple[bool, Any]:
    """Whether the agent takes a ``seed`` input, and its default."""
    field = agent.input_model.model_fields.get("seed")
    return (False, None) if field is None else (True, field.default)


class ReplayService:
    """Replays executions (see the module's docstring); the platform builds it."""

    def __init__(
        self,
        storage: Storage,
        executions: ExecutionService,
        registry: AgentRegistry,
        sessions: SessionCache,
        authorizer: Authorizer,
        *,
        notify: Callable[[uuid.UUID], None] = lambda _: None,
    ) -> None:
        self.storage = storage
        self.executions = executions
        self.registry = registry
        self.sessions = sessions
        self.authorizer = authorizer
        self.notify = notify

    async def replay_anywhere(self, principal: Principal, execution_id: uuid.UUID) -> Replay:
        """:meth:`replay` for an execution named alone: its session must be visible to
        the caller (else the same 404 as no execution), who must be allowed to execute
        in it."""
        record = await self.storage.get_execution(execution_id)
        session = await self.sessions.load(record.session_id) if record is not None else None
        if record is None or session is None or not visible_to(session, principal):
            raise NotFound(f"no execution {execution_id}")
        await self.authorizer.on_session(principal, Action.SESSION_EXECUTE, session)
        return await self.replay(principal, session.id, execution_id)

    async def replay(
        self, principal: Principal, session_id: uuid.UUID, execution_id: uuid.UUID
    ) -> Replay:
        """Run the execution again in its session and compare; the caller has been
        allowed to execute in the session (the route asked the authorizer).

        >>> # verdict = await platform.replay.replay(principal, session_id, execution_id)
        """
        record = await self.executions.get(principal, session_id, execution_id)
        original = _as_recorded(record, await self._final_entry(record))
        agent = self._agent(original)
        inputs = _replay_inputs(agent, original)
        _refuse_unless_reproducible(agent, original, inputs)
        command = ExecuteCommand(
            agent=agent.reference,
            inputs=inputs,
            backend=original.backend,
            timeout_s=original.timeout_s,
            wait_s=0,
            replay_of=original.id,
        )
        started = await self.executions.execute(principal, session_id, command)
        final = await self.executions.wait_final(started)
        before = result_sha256(original.result)
        after = result_sha256(final.result) if final.state is ExecutionState.SUCCEEDED else None
        verdict = Replay(
            original, final, after == before, before, after, differences(original, final)
        )
        await self._record(principal, verdict)
        return verdict

    async def _final_entry(self, record: Execution) -> ProvenanceEntry:
        """The ledger entry the record points to, if it is this execution's and records
        it succeeded."""
        index = record.provenance_entry
        entries = (
            await self.storage.list_entries(session_id=record.session_id, after=index - 1, limit=1)
            if index is not None
            else []
        )
        entry = entries[0] if entries and entries[0].index == index else None
        if (
            entry is None
            or entry.resource_type != "execution"
            or entry.resource_id != str(record.id)
        ):
            raise NotReplayable(
                f"execution {record.id} has no ledger entry of its own to replay from",
                "no-entry",
            )
        if entry.payload is None:
            raise NotReplayable(
                f"the payload of ledger entry {entry.index} was erased: nothing is left of "
                f"execution {record.id} to replay from",
                "no-entry",
            )
        state = entry.payload.get("state")
        if state in (ExecutionState.QUEUED, ExecutionState.RUNNING):
            raise NotReplayable(
                f"execution {record.id} is {state}: only a finished execution is replayed",
                "not-finished",
            )
        if state != ExecutionState.SUCCEEDED:
            raise NotReplayable(
                f"execution {record.id} ended {state}: only a succeeded execution has a "
                "result to reproduce",
                "not-succeeded",
            )
        return entry

    def _agent(self, original: Execution) -> AgentSpec:
        """The agent at the recorded version, while it is registered."""
        try:
            return self.registry.get(original.agent, original.agent_version)
        except NotFound as exc:
            raise NotReplayable(
                f"{exc.detail}: the agent version execution {original.id} ran is no longer "
                "registered, so its run cannot be repeated",
                "agent-version-gone",
            ) from None

    async def _record(self, principal: Principal, verdict: Replay) -> None:
        """The verdict as a ledger entry of the replay's session (a sensitive pair's
        result hashes left out: unsalted, they would let a guess at a result be tested)."""
        original, replay = verdict.original, verdict.replay
        payload: dict[str, Any] = {
            "original": str(original.id),
            "replay": str(replay.id),
            "matches": verdict.matches,
            "differences": [asdict(d) for d in verdict.differences],
        }
        if not (original.sensitive or replay.sensitive):
            payload["original_result_sha256"] = verdict.original_result_sha256
            payload["replay_result_sha256"] = verdict.replay_result_sha256
        await self.storage.write_entry(
            EntryDraft(
                actor=principal.name,
                action=REPLAYED,
                resource_type="replay",
                resource_id=str(replay.id),
                session_id=replay.session_id,
                payload=payload,
            )
        )
        self.notify(replay.session_id)


def _replay_inputs(agent: AgentSpec, original: Execution) -> dict[str, Any]:
    """The recorded inputs, with the recorded seed where the inputs give none (a seed
    the platform chose rather than the caller)."""
    takes_seed, default = _seed_field(agent)
    recorded = original.run_context.seed if original.run_context is not None else None
    inputs = dict(original.inputs)
    if takes_seed and inputs.get("seed", default) is None and recorded is not None:
        inputs["seed"] = recorded
    return inputs


def _refuse_unless_reproducible(
    agent: AgentSpec, original: Execution, inputs: Mapping[str, Any]
) -> None:
    """:class:`NotReplayable` unless a second run should give the same result: seeded if
    the agent takes a seed, else deterministic; never on a device."""
    takes_seed, default = _seed_field(agent)
    if takes_seed and inputs.get("seed", default) is None:
        raise NotReplayable(
            f"execution {original.id} of agent {agent.name!r} ran unseeded (its inputs give "
            "no seed): its result was drawn at random, so a replay has nothing to reproduce",
            "unseeded",
        )
    if not takes_seed and not agent.deterministic:
        raise NotReplayable(
            f"agent {agent.name!r} is not deterministic and takes no seed: a second run need "
            f"not give execution {original.id}'s result",
            "not-deterministic",
        )
    context = original.run_context
    target = context.target if context is not None else None
    if target is not None and not target.simulator:
        raise NotReplayable(
            f"execution {original.id} ran on the device {target.name!r}, whose shots no seed "
            "repeats and whose calibration has moved since",
            "device",
        )


def _as_recorded(record: Execution, entry: ProvenanceEntry) -> Execution:
    """The execution as its ledger entry records it.  A sensitive one's entry holds
    commitments: its inputs and result are the stored record's, once they match them."""
    payload = dict(entry.payload or {})
    payload["provenance_entry"] = entry.index
    if payload.get("sensitive"):
        for name in ("inputs", "result"):
            salt = record.salts.get(name)
            value = getattr(record, name)
            if salt is None or commitment(value, salt) != payload.get(name):
                raise NotReplayable(
                    f"the stored record of sensitive execution {record.id} does not match "
                    f"the commitment to its {name} in ledger entry {entry.index}: refusing "
                    "to replay what the log did not record",
                    "commitment-mismatch",
                )
            payload[name] = value
        payload["salts"] = dict(record.salts)
    try:
        return Execution.model_validate(payload)
    except ValidationError:
        raise NotReplayable(
            f"ledger entry {entry.index} does not hold an execution this version can read",
            "no-entry",
        ) from None
