"""Executions as OpenLineage run events, built and sent with ``openlineage-python``.

Each execution is a run (its ``runId`` the execution's id) of a job in the configured
namespace: the agent (``quantum.sample``), or for a workflow step ``<workflow>.<step>``.
Its ``execution.started`` entry is a START event and its final entry a COMPLETE (it
succeeded), FAIL (it failed or timed out) or ABORT (it was cancelled) event; a cache hit
has only its COMPLETE.  Each event carries

- the ``parent`` run facet: the session's run (job ``limit-session``, ``runId`` the
  session's id), or for a workflow step the workflow run's (job
  ``limit-workflow.<name>``), with the session's run as its ``root``;
- the input datasets and, once it succeeded, the output dataset, named by their content
  hash as the lineage graph names them (``sha256:<hex>``; a sealed field by its
  commitment), each with a ``datasetType`` facet (``INPUT``, ``DATASET``, ``CIRCUIT``,
  ``OUTPUT``);
- the verdicts of the governance checks' data-quality suites as
  ``dataQualityAssertions`` input facets, on the input each suite read;
- ``errorMessage`` on a failure (the error's type; its message too, unless sealed) and
  ``processing_engine`` (this platform's version).

Every field comes from the ledger entry, and times are the execution's own, so an event
sent again after a crash is the same event.  Events go to a file, one JSON event a line
as openlineage-python's file transport writes them (its ``Serde``), a batch appended with
one write and one fsync (the transport opens the file once per event), or through the
client's HTTP transport (Marquez's ``/api/v1/lineage``), used directly, not through
``OpenLineageClient``, which would add facets read from the process's environment and
its working directory's git checkout.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    dataset_type_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    processing_engine_run,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport
from openlineage.client.transport.http_common import DEFAULT_RETRY_CONFIG

from limit_graph import __version__
from limit_graph.core.durable import append_durably
from limit_graph.core.lineage_settings import LineageSettings
from limit_graph.orchestration.lineage_derive import Content, Derived

__all__ = [
    "PRODUCER",
    "SESSION_JOB",
    "EventSink",
    "FileSink",
    "HttpSink",
    "event_sink",
    "job_name",
    "run_events",
]

PRODUCER = f"urn:limit-graph:{__version__}"
"""Who produced the events (a URI, as the spec asks)."""
SESSION_JOB = "limit-session"
WORKFLOW_JOB = "limit-workflow"
_FINAL_EVENTS = {
    "succeeded": RunState.COMPLETE,
    "failed": RunState.FAIL,
    "timed_out": RunState.FAIL,
    "cancelled": RunState.ABORT,
}
_SUITE = re.compile(r"^suite (['\"])(?P<suite>.*?)\1 on input (['\"])(?P<input>.*?)\3")


def job_name(agent: str, workflow_name: str | None, step: str | None) -> str:
    """The job an execution is a run of.

    >>> job_name("echo", None, None), job_name("echo", "pipeline", "load")
    ('echo', 'pipeline.load')
    """
    if workflow_name is not None and step is not None:
        return f"{workflow_name}.{step}"
    return agent


@functools.cache
def _adapter_version() -> str:
    """openlineage-python's version, read once: a metadata lookup walks ``sys.path``."""
    return version("openlineage-python")


def _dataset_facets(content: Content) -> dict[str, Any]:
    sub_type = content.attributes.get("format")
    facet = dataset_type_dataset.DatasetTypeDatasetFacet(
        datasetType=content.kind.upper(), subType=sub_type, producer=PRODUCER
    )
    return {"datasetType": facet}


def _assertions(derived: Derived) -> dict[str, list[data_quality_assertions_dataset.Assertion]]:
    """The data-quality verdicts among the execution's checks, by the node they read."""
    checks = derived.record.document.get("checks") or []
    found: dict[str, list[data_quality_assertions_dataset.Assertion]] = {}
    datasets = [c for c in derived.inputs if c.kind == "dataset"]
    for check in checks:
        if not isinstance(check, dict) or check.get("check") != "data-quality":
            continue
        detail = str(check.get("detail") or "")
        matched = _SUITE.match(detail)
        assertion = data_quality_assertions_dataset.Assertion(
            assertion="data-quality",
            success=bool(check.get("passed")),
            name=matched["suite"] if matched else None,
            description=detail or None,
        )
        read = [c for c in derived.inputs if matched and matched["input"] in c.names]
        for content in read or datasets:
            found.setdefault(content.node_id, []).append(assertion)
    return found


def _inputs(derived: Derived, namespace: str) -> list[InputDataset]:
    assertions = _assertions(derived)
    datasets = []
    for content in derived.inputs:
        input_facets: dict[str, Any] = {}
        if content.node_id in assertions:
            input_facets["dataQualityAssertions"] = (
                data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=assertions[content.node_id], producer=PRODUCER
                )
            )
        datasets.append(
            InputDataset(
                namespace,
                content.node_id,
                facets=_dataset_facets(content),
                inputFacets=input_facets,
            )
        )
    return datasets


def _parent(derived: Derived, namespace: str, workflow_name: str | None) -> Any:
    session = str(derived.record.session_id)
    tag = derived.record.workflow
    if tag is None or workflow_name is None:
        return parent_run.ParentRunFacet(
            run=parent_run.Run(runId=session),
            job=parent_run.Job(namespace=namespace, name=SESSION_JOB),
            producer=PRODUCER,
        )
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=str(tag["run_id"])),
        job=parent_run.Job(namespace=namespace, name=f"{WORKFLOW_JOB}.{workflow_name}"),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=session),
            job=parent_run.RootJob(namespace=namespace, name=SESSION_JOB),
        ),
        producer=PRODUCER,
    )


def _error_facet(document: dict[str, Any]) -> Any:
    error = document.get("error") or {}
    kind = str(error.get("type") or "error")
    message = error.get("message")
    sealed = not isinstance(message, str) or message.startswith("sealed:")
    return error_message_run.ErrorMessageRunFacet(
        message=kind if sealed else f"{kind}: {message}",
        programmingLanguage="python",
        producer=PRODUCER,
    )


def run_events(
    derived: Derived, *, namespace: str, workflow_name: str | None = None
) -> list[RunEvent]:
    """The events one execution entry stands for (none for a queued execution, a retry,
    or a restored session's copy of an execution that ran before)."""
    record = derived.record
    doc = dict(record.document)
    if record.action == "execution.restored":
        return []
    if record.state == "running":
        state, at = RunState.START, doc.get("started_at")
    elif record.state in _FINAL_EVENTS:
        state, at = _FINAL_EVENTS[record.state], doc.get("finished_at")
    else:
        return []
    run_facets: dict[str, Any] = {
        "parent": _parent(derived, namespace, workflow_name),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=__version__,
            name="limit-graph",
            openlineageAdapterVersion=_adapter_version(),
            producer=PRODUCER,
        ),
    }
    if state is RunState.FAIL:
        run_facets["errorMessage"] = _error_facet(doc)
    tag = record.workflow
    step = str(tag["step"]) if tag and "step" in tag else None
    job_facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH",
            integration="LIMIT_GRAPH",
            jobType="WORKFLOW_STEP" if step else "AGENT",
            producer=PRODUCER,
        )
    }
    outputs = []
    if derived.output is not None and state is RunState.COMPLETE:
        output = derived.output
        outputs.append(OutputDataset(namespace, output.node_id, facets=_dataset_facets(output)))
    return [
        RunEvent(
            eventType=state,
            eventTime=str(at or doc.get("submitted_at")),
            run=Run(runId=str(record.id), facets=run_facets),
            job=Job(namespace, job_name(record.agent, workflow_name, step), facets=job_facets),
            inputs=_inputs(derived, namespace),
            outputs=outputs,
            producer=PRODUCER,
        )
    ]


class EventSink(Protocol):
    """Where events go; :meth:`send` blocks (call it in a worker thread) and raises when
    they did not all arrive."""

    kind: str

    def send(self, events: Sequence[RunEvent]) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """One JSON event a line, appended to ``path`` and fsynced: a batch's events are
    serialized by the OpenLineage client (``Serde.to_json``, as its file transport
    writes them) and appended with one write and one fsync, where the transport opens
    the file once per event."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def send(self, events: Sequence[RunEvent]) -> None:
        if not events:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(Serde.to_json(event) + "\n" for event in events).encode("utf-8")
        append_durably(self.path, lines, 0o644)

    def close(self) -> None:
        """Nothing is held open between batches."""


class HttpSink:
    """Each event POSTed to ``<url>/<endpoint>`` (an OpenLineage HTTP endpoint)."""

    kind = "http"

    def __init__(self, settings: LineageSettings) -> None:
        if settings.url is None:
            raise ValueError("an HTTP sink needs a url")
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        config = HttpConfig(
            url=settings.url,
            endpoint=settings.endpoint,
            timeout=settings.timeout_s,
            retry={**DEFAULT_RETRY_CONFIG, "total": 2},  # then the follower's own backoff
        )
        if key is not None:
            config.auth = ApiKeyTokenProvider({"apiKey": key})
        self._transport = HttpTransport(config)

    def send(self, events: Sequence[RunEvent]) -> None:
        for event in events:
            self._transport.emit(event)

    def close(self) -> None:
        self._transport.close(0)


def event_sink(settings: LineageSettings, path: Path) -> EventSink | None:
    """The sink ``[lineage] openlineage`` names (``None``: off); ``path`` is the file's."""
    if settings.openlineage == "file":
        return FileSink(path)
    if settings.openlineage == "http":
        return HttpSink(settings)
    return None
