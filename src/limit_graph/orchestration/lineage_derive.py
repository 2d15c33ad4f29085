"""What lineage reads of an execution's ledger entry: its content by hash, its graph.

An execution's entry holds its whole document (``storage.base.execution_draft``), so
the lineage of a finished execution is a function of that one entry:

- each **input** value is content named by the SHA-256 of its canonical JSON
  (:func:`~limit_graph.core.canonical.sha256_hex`), except that
- a **circuit** -- an input ``{"format": "qasm3" | "qasm2" | "qpy_b64", "source": ...}``
  or OpenQASM text, at the top or anywhere inside an input (a PUB's ``circuit``) -- is
  named by the SHA-256 of its canonical text (:func:`circuit_hash`: UTF-8, line ends as
  ``\\n``, surrounding whitespace dropped), so that the same circuit is the same node
  whatever else the PUB holds;
- a **dataset** -- a table (a list of records of JSON scalars) by the hash of its
  canonical JSON, or a file reference (``"x.csv"``, ``{"path": "x.parquet"}``) by the
  SHA-256 of the file's bytes: the one the agent reported (a result's ``source:
  {"path", "sha256"}``, as ``data.load_csv`` gives), else the file's in the data folder
  when lineage reads it, else (no such file there) the reference's own hash, which the
  node says;
- the **output** (a succeeded execution's result) by the hash of its canonical JSON;
- a sensitive execution's inputs and result are ``sealed:sha256:`` commitments in its
  entry: each is one node named by the commitment, with no content hash.

>>> circuit_hash("OPENQASM 3.0;\\r\\nqubit q;\\n") == circuit_hash("OPENQASM 3.0;\\nqubit q;")
True
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limit_graph.core.canonical import sha256_hex
from limit_graph.core.errors import InvalidInput
from limit_graph.core.models import ProvenanceEntry
from limit_graph.core.sealing import COMMITMENT_PREFIX
from limit_graph.governance.compliance.data_quality.tables import resolve_table_input
from limit_graph.storage.lineage import (
    LineageEdge,
    LineageNode,
    NodeKind,
    execution_node_id,
)

__all__ = [
    "FINAL_STATES",
    "Content",
    "Derived",
    "ExecutionRecord",
    "circuit_hash",
    "derive",
    "execution_record",
]

log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
CIRCUIT_FORMATS = frozenset({"qasm2", "qasm3", "qpy_b64"})
TABLE_SUFFIXES = (".csv", ".parquet")
MAX_DEPTH = 8
"""How deep inside an input circuits are looked for."""
MAX_NAMES = 32
_SCALARS = (str, int, float, bool, type(None))
MAX_LABEL = 300


def circuit_hash(text: str) -> str:
    """The SHA-256 (hex) of a circuit's canonical text."""
    canonical = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ExecutionRecord:
    """An execution as one of its ledger entries recorded it."""

    entry: int
    action: str
    tenant: str
    id: uuid.UUID
    session_id: uuid.UUID
    document: Mapping[str, Any]

    @property
    def state(self) -> str:
        return str(self.document.get("state", ""))

    @property
    def agent(self) -> str:
        return str(self.document.get("agent", ""))

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def workflow(self) -> Mapping[str, Any] | None:
        tag = self.document.get("workflow")
        return tag if isinstance(tag, Mapping) else None

    @property
    def workflow_run_id(self) -> uuid.UUID | None:
        tag = self.workflow
        try:
            return uuid.UUID(str(tag["run_id"])) if tag else None
        except (KeyError, ValueError):
            return None


def execution_record(entry: ProvenanceEntry) -> ExecutionRecord | None:
    """The execution an entry records, or ``None`` (another resource, a denial, an
    erased payload)."""
    payload = entry.payload
    if entry.resource_type != "execution" or not isinstance(payload, Mapping):
        return None
    try:
        execution_id = uuid.UUID(str(payload["id"]))
        session_id = uuid.UUID(str(payload["session_id"]))
    except (KeyError, ValueError):
        return None
    if "state" not in payload or "agent" not in payload:
        return None
    return ExecutionRecord(
        entry.index, entry.action, entry.tenant or "", execution_id, session_id, payload
    )


@dataclass
class Content:
    """One piece of content an execution used or produced, and where it was found."""

    kind: NodeKind
    node_id: str
    hash: str | None
    label: str
    attributes: dict[str, Any] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Derived:
    """An execution's content, and its part of its session's graph (final ones only)."""

    record: ExecutionRecord
    inputs: list[Content]
    output: Content | None
    nodes: list[LineageNode]
    edges: list[LineageEdge]


def _content_id(hashed: str) -> str:
    return f"sha256:{hashed}"


def _sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(COMMITMENT_PREFIX)


def _circuit_source(value: Any) -> tuple[str, str] | None:
    """(format, text) when ``value`` is a circuit."""
    if isinstance(value, Mapping) and isinstance(value.get("source"), str):
        fmt = value.get("format")
        if fmt in CIRCUIT_FORMATS and value.keys() <= {"format", "source"}:
            return str(fmt), value["source"]
    if isinstance(value, str) and value.lstrip().upper().startswith("OPENQASM"):
        return ("qasm3" if "OPENQASM 3" in value.upper() else "qasm2"), value
    return None


def _nested_circuits(value: Any, where: str, depth: int = 0) -> Iterator[tuple[str, str, str]]:
    """(where, format, text) of every circuit inside ``value`` (not ``value`` itself)."""
    if depth >= MAX_DEPTH:
        return
    items: Iterator[tuple[str, Any]]
    if isinstance(value, Mapping):
        items = ((f"{where}.{k}", v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return
    for at, item in items:
        found = _circuit_source(item)
        if found is not None:
            yield (at, *found)
        else:
            yield from _nested_circuits(item, at, depth + 1)


def _file_reference(value: Any) -> str | None:
    path = value.get("path") if isinstance(value, Mapping) else value
    if isinstance(value, Mapping) and not value.keys() <= {"path", "root"}:
        return None
    if isinstance(path, str) and "\n" not in path and path.lower().endswith(TABLE_SUFFIXES):
        return path
    return None


def _reported_file_hash(document: Mapping[str, Any], path: str) -> str | None:
    result = document.get("result")
    source = result.get("source") if isinstance(result, Mapping) else None
    if isinstance(source, Mapping) and source.get("path") == path:
        digest = source.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest.lower()
    return None


def _file_hash(value: Any, data_dir: Path | None) -> str | None:
    if data_dir is None:
        return None
    try:
        found = resolve_table_input(value, data_dir)
    except InvalidInput:
        return None
    if not isinstance(found, Path):
        return None
    try:
        with open(found, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _dataset(name: str, value: Any, document: Mapping[str, Any], data_dir: Path | None) -> Content:
    path = _file_reference(value)
    if path is None:
        hashed = sha256_hex(value)
        return Content("dataset", _content_id(hashed), hashed, name, {"rows": len(value)})
    reported = _reported_file_hash(document, path)
    read = reported or _file_hash(value, data_dir)
    how = "reported" if reported else "file" if read else "reference"
    digest = read or sha256_hex(value)
    return Content("dataset", _content_id(digest), digest, path, {"path": path, "hashed": how})


def _is_table(value: Any) -> bool:
    """A list of records whose cells are JSON scalars (``tasks/data/table.py``'s tables;
    a list of PUBs, whose fields are objects, is not one)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(row, Mapping) and all(isinstance(cell, _SCALARS) for cell in row.values())
            for row in value
        )
    )


def _input_contents(
    name: str, value: Any, document: Mapping[str, Any], data_dir: Path | None
) -> Iterator[tuple[str, Content]]:
    circuit = _circuit_source(value)
    if circuit is not None:
        fmt, text = circuit
        hashed = circuit_hash(text)
        yield name, Content("circuit", _content_id(hashed), hashed, name, {"format": fmt})
        return
    if _is_table(value) or _file_reference(value) is not None:
        yield name, _dataset(name, value, document, data_dir)
        return
    hashed = sha256_hex(value)
    yield name, Content("input", _content_id(hashed), hashed, name)
    for at, fmt, text in _nested_circuits(value, name):
        inner = circuit_hash(text)
        yield at, Content("circuit", _content_id(inner), inner, at, {"format": fmt})


def input_contents(record: ExecutionRecord, data_dir: Path | None) -> list[Content]:
    """Every piece of content among the execution's inputs, once each, with the names
    (dotted paths) it was found under."""
    inputs = record.document.get("inputs")
    if _sealed(inputs):
        return [Content("input", str(inputs), None, "inputs (sealed)", {"sealed": True}, ["*"])]
    if not isinstance(inputs, Mapping):
        return []
    found: dict[str, Content] = {}
    for name, value in inputs.items():
        try:
            for at, content in _input_contents(str(name), value, record.document, data_dir):
                kept = found.setdefault(content.node_id, content)
                if len(kept.names) < MAX_NAMES:
                    kept.names.append(at[:200])
        except InvalidInput as exc:  # not I-JSON: it could not have been stored as such
            log.warning("input %r of execution %s has no hash: %s", name, record.id, exc)
    return list(found.values())


def output_content(record: ExecutionRecord) -> Content | None:
    """A succeeded execution's result as content (``None`` for anything else)."""
    result = record.document.get("result")
    if record.state != "succeeded" or result is None:
        return None
    label = f"{record.agent} result"
    if _sealed(result):
        return Content("output", str(result), None, label, {"sealed": True})
    try:
        hashed = sha256_hex(result)
    except InvalidInput as exc:
        log.warning("the result of execution %s has no hash: %s", record.id, exc)
        return None
    return Content("output", _content_id(hashed), hashed, label, {"agent": record.agent})


def _execution_attributes(record: ExecutionRecord, workflow_name: str | None) -> dict[str, Any]:
    doc = record.document
    attributes: dict[str, Any] = {
        key: doc.get(key)
        for key in (
            "agent",
            "agent_version",
            "backend",
            "instance",
            "state",
            "submitted_at",
            "started_at",
            "finished_at",
        )
    }
    for key in ("cache_hit", "cached_from", "replay_of"):
        if doc.get(key):
            attributes[key] = doc[key]
    error = doc.get("error")
    if isinstance(error, Mapping) and error.get("type"):
        attributes["error"] = error["type"]
    tag = record.workflow
    if tag is not None:
        attributes["workflow"] = {
            "run_id": tag.get("run_id"),
            "name": workflow_name,
            "step": tag.get("step"),
            "index": tag.get("index"),
        }
    return attributes


def derive(
    record: ExecutionRecord, *, workflow_name: str | None = None, data_dir: Path | None = None
) -> Derived:
    """The execution's content and, once it is final, its nodes and edges."""
    inputs = input_contents(record, data_dir)
    output = output_content(record)
    if not record.is_final:
        return Derived(record, inputs, output, [], [])
    session, tenant, entry = record.session_id, record.tenant, record.entry
    ran = execution_node_id(record.id)
    attributes = _execution_attributes(record, workflow_name)
    nodes = [LineageNode(session, ran, "execution", None, tenant, record.agent, attributes, entry)]
    edges: list[LineageEdge] = []
    for content in inputs:
        nodes.append(_node(record, content))
        names = {"names": sorted(set(content.names))}
        edges.append(LineageEdge(session, content.node_id, ran, "used", tenant, names))
    if output is not None:
        nodes.append(_node(record, output))
        edges.append(LineageEdge(session, ran, output.node_id, "produced", tenant, {}))
    tag = record.workflow or {}
    for upstream in tag.get("upstream") or ():
        step = {"step": tag.get("step")}
        edges.append(
            LineageEdge(session, execution_node_id(upstream), ran, "informed", tenant, step)
        )
    return Derived(record, inputs, output, nodes, edges)


def _node(record: ExecutionRecord, content: Content) -> LineageNode:
    return LineageNode(
        record.session_id,
        content.node_id,
        content.kind,
        content.hash,
        record.tenant,
        content.label[:MAX_LABEL],
        content.attributes,
        entry=record.entry,
    )
