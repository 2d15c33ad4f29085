"""What the report shows, read from an export document: the verification done again here,
and per session who did what when and the policies that decided.

The verification is the reader's own: the export's ``verification`` is the server's
word, while :func:`recheck` opens the checkpoint's note with a key (the one given, else
the one the export carries), and checks every entry's hashes and inclusion proof against
it with the same :func:`~limit_graph.orchestration.audit_export.check_entry` a verifier
outside the platform would run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from limit_graph.core import notes
from limit_graph.core.models import ProvenanceEntry
from limit_graph.orchestration.audit_export import (
    Tally,
    check_checkpoint,
    check_entry,
    key_label,
)
from limit_graph.storage.ledger import decode_hash

__all__ = ["PolicyUse", "Recheck", "SessionView", "group_sessions", "outcome", "recheck"]


@dataclass(frozen=True)
class Recheck:
    """What checking the export here found; ``sentence`` says it in plain words."""

    ok: bool
    sentence: str
    key: str | None
    pinned: bool
    server_summary: str | None
    server_agrees: bool
    entries: list[ProvenanceEntry]


def _parse(doc: Mapping[str, Any]) -> tuple[ProvenanceEntry, list[bytes]]:
    fields = {k: v for k, v in doc.items() if k != "proof"}
    return ProvenanceEntry.model_validate(fields), [decode_hash(h) for h in doc.get("proof", [])]


def recheck(document: Mapping[str, Any], trusted_key: str | None = None) -> Recheck:
    """Check ``document`` (an export, as parsed from its JSON) against its checkpoint,
    whose note must be signed by ``trusted_key`` (a note verifier key) when one is given,
    else by the key the export carries."""
    checkpoint = document.get("checkpoint")
    docs: Sequence[Mapping[str, Any]] = document.get("entries") or []
    server = document.get("verification") or {}
    tally, entries = Tally(), []
    signature: str | None = None
    key: str | None = None
    if checkpoint is None:
        signature = "the export has entries but no checkpoint" if docs else None
    else:
        key = key_label(checkpoint)
        try:
            verifier = notes.Verifier.from_verifier_key(trusted_key or checkpoint["public_key"])
        except ValueError as exc:  # notes.NoteError is one
            signature = f"the key to check the checkpoint with is not a verifier key: {exc}"
        else:
            signature = check_checkpoint(checkpoint, verifier)
            key = f"{verifier.name}+{verifier.key_id.hex()}"
    size = checkpoint["tree_size"] if checkpoint else 0
    root = decode_hash(checkpoint["root_hash"]) if checkpoint else b""
    previous = -1
    for n, doc in enumerate(docs):
        try:
            entry, proof = _parse(doc)
        except (ValidationError, ValueError, TypeError) as exc:
            tally.add(n, f"exported entry {n} is not an entry: {str(exc).splitlines()[0]}")
            continue
        problem = check_entry(entry, proof, size, root) if checkpoint else None
        if problem is None and entry.index <= previous:
            problem = f"entry {entry.index}: out of order after entry {previous}"
        previous = max(previous, entry.index)
        tally.add(entry.index, problem)
        entries.append(entry)
    ok = signature is None and not tally.failed
    summary = server.get("summary")
    return Recheck(
        ok=ok,
        sentence=tally.summary(checkpoint, signature, key),
        key=key,
        pinned=trusted_key is not None,
        server_summary=summary if isinstance(summary, str) else None,
        server_agrees=server.get("ok") is ok,
        entries=entries,
    )


def outcome(entry: ProvenanceEntry) -> str:
    """What came of it, in a word: a denial, the state the record was left in, a replay's
    verdict; ``recorded`` for the rest."""
    payload = entry.payload
    if entry.action.endswith(".denied"):
        return "denied"
    if payload is None:
        return "payload erased"
    if isinstance(payload.get("state"), str):
        return str(payload["state"])
    if isinstance(payload.get("matches"), bool):
        return "reproduced" if payload["matches"] else "differs"
    return "recorded"


def resource(entry: ProvenanceEntry) -> str:
    """The resource as a person names it: an execution by its agent, else type and id."""
    agent = (entry.payload or {}).get("agent")
    if entry.resource_type == "execution" and isinstance(agent, str):
        short = entry.resource_id[:8] if entry.resource_id != agent else ""
        return f"execution {agent} {short}".rstrip()
    return f"{entry.resource_type} {entry.resource_id}"


@dataclass
class PolicyUse:
    """A policy deciding in a session: what it decided, on what, how often, when last."""

    policy_id: str
    decided: str
    by: str
    times: int = 0
    last: datetime | None = None
    detail: str | None = None
    _seen: set[str] = field(default_factory=set, repr=False)

    def count(self, resource_id: str, at: datetime, detail: str | None) -> None:
        """Count the decision once per resource (an execution's entries repeat its checks)."""
        if resource_id not in self._seen:
            self._seen.add(resource_id)
            self.times += 1
        if self.last is None or at > self.last:
            self.last = at
            self.detail = detail or self.detail


def _decisions(entry: ProvenanceEntry) -> Iterable[tuple[str, str, str, str | None]]:
    """``(policy id, decided, by, detail)`` for each policy an entry names."""
    payload = entry.payload or {}
    for check in payload.get("checks") or []:
        if isinstance(check, dict):
            decided = "permitted" if check.get("passed") else "refused"
            for policy in check.get("policy_ids") or []:
                yield str(policy), decided, f"check {check.get('check')}", check.get("detail")
    if entry.action.endswith(".denied"):
        by = str(payload.get("action") or entry.action)
        for policy in payload.get("policy_ids") or []:
            yield str(policy), "denied", by, payload.get("reason")


@dataclass
class SessionView:
    """One session's entries (or, with ``session_id`` ``None``, those of no session)."""

    session_id: uuid.UUID | None
    entries: list[ProvenanceEntry] = field(default_factory=list)
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    owner: str | None = None
    state: str | None = None
    tenant: str | None = None
    policies: dict[tuple[str, str, str], PolicyUse] = field(default_factory=dict)

    def add(self, entry: ProvenanceEntry) -> None:
        self.entries.append(entry)
        self.tenant = self.tenant or entry.tenant
        payload = entry.payload or {}
        if entry.resource_type == "session" and entry.session_id is not None:
            self._describe(payload)
        for policy, decided, by, detail in _decisions(entry):
            use = self.policies.setdefault((policy, decided, by), PolicyUse(policy, decided, by))
            use.count(entry.resource_id, entry.timestamp, detail)

    def _describe(self, session: Mapping[str, Any]) -> None:
        if isinstance(session.get("name"), str):
            self.name = session["name"]
        config = session.get("config")
        if isinstance(config, dict) and isinstance(config.get("tags"), list):
            self.tags = [str(t) for t in config["tags"]]
        if isinstance(session.get("owner"), str):
            self.owner = session["owner"]
        if isinstance(session.get("state"), str):
            self.state = session["state"]

    @property
    def anchor(self) -> str:
        return f"session-{self.session_id}" if self.session_id else "outside-sessions"

    def policy_uses(self) -> list[PolicyUse]:
        """Refusals first, then by how often."""
        order = {"denied": 0, "refused": 1, "permitted": 2}
        return sorted(self.policies.values(), key=lambda u: (order[u.decided], -u.times))


def group_sessions(entries: Iterable[ProvenanceEntry]) -> list[SessionView]:
    """The entries by session, in the order sessions first appear; those of no session
    last."""
    views: dict[uuid.UUID | None, SessionView] = {}
    for entry in entries:
        view = views.get(entry.session_id)
        if view is None:
            view = views[entry.session_id] = SessionView(entry.session_id)
        view.add(entry)
    outside = views.pop(None, None)
    return [*views.values(), *([outside] if outside else [])]
