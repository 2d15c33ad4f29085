"""``LimitClient``: the platform's REST API from Python, blocking calls over httpx.

>>> # from limit_graph.client import LimitClient
>>> # with LimitClient.from_env() as client:            # LIMIT_API_URL, LIMIT_API_KEY
>>> #     session = client.create_session("sweep", {"tags": ["demo"]})
>>> #     run = client.run_workflow(session.id, Path("bell-sweep.yaml"), {"shots": 500})
>>> #     run = client.wait_workflow_run(run, timeout=600)
>>> #     print(run.state, [step.state for step in run.steps])
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Self, TypeVar

import httpx

from limit_graph.client import calls
from limit_graph.client.calls import Call, Id, WorkflowSpec
from limit_graph.client.errors import WaitTimeout, error_from_response
from limit_graph.client.paging import Page
from limit_graph.client.records import (
    Agent,
    ArchiveSummary,
    Artifact,
    ArtifactInfo,
    SessionStatus,
    Validation,
)
from limit_graph.client.sse import parse_sse
from limit_graph.client.transport import (
    DEFAULT_URL,
    LONG_POLL_S,
    client_headers,
    decode_event,
    env_target,
    poll_delays,
    read_answer,
    read_timeout,
    stream_timeout,
    unreachable,
)
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    Session,
    SessionConfig,
    SessionState,
    WorkflowRun,
)

__all__ = ["LimitClient"]

T = TypeVar("T")


class LimitClient:
    """A client of one LIMIT-Graph server, calling it with one API key.

    Every method raises :class:`~limit_graph.client.LimitAPIError` (a subclass per
    status) when the server says no, and
    :class:`~limit_graph.client.LimitConnectionError` when nothing answers.
    ``verify`` is httpx's: ``False``, or an :class:`ssl.SSLContext` trusting a
    self-signed server.  ``transport`` swaps httpx's (e.g. ``httpx.ASGITransport``).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        verify: ssl.SSLContext | bool = True,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=client_headers(api_key, headers),
            timeout=self._timeout,
            verify=verify,
            transport=transport,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A client for ``LIMIT_API_URL`` (default ``http://127.0.0.1:8080``) with
        ``LIMIT_API_KEY``; ``options`` as for the constructor."""
        url, key = env_target(os.environ if environ is None else environ)
        return cls(url, key, **options)

    def __repr__(self) -> str:
        return f"<LimitClient {self.base_url}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; the client cannot be used after."""
        self._http.close()

    # --- plumbing ------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                timeout=read_timeout(self._timeout, call.wait_s),
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return read_answer(call, response)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any endpoint, for what the methods do not cover: the answer's JSON (``None``
        for an empty one); ``kwargs`` go to :meth:`httpx.Client.request`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json() if response.content else None

    def _wait(
        self,
        current: T,
        fetch: Callable[[float], T],
        done: Callable[[T], bool],
        timeout: float | None,
    ) -> T:
        """Fetch until ``done``; ``fetch`` is told how long the server may hold its answer
        (a long poll where the endpoint has one), and short pauses space the rest."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delays = poll_delays()
        while not done(current):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"still not finished after {timeout} s", current)
            current = fetch(LONG_POLL_S if left is None else min(LONG_POLL_S, left))
            if not done(current):
                pause = next(delays)
                if deadline is not None:
                    pause = min(pause, max(deadline - time.monotonic(), 0))
                time.sleep(pause)
        return current

    # --- sessions ------------------------------------------------------------------

    def create_session(
        self, name: str | None = None, config: SessionConfig | Mapping[str, Any] | None = None
    ) -> Session:
        """A new session; ``config`` (backends, default_backend, tags, timeout_s) is
        fixed for its life."""
        return self._send(calls.create_session(name, config))

    def get_session(self, session_id: Id) -> Session:
        return self._send(calls.get_session(session_id))

    def list_sessions(
        self,
        *,
        state: SessionState | str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Session]:
        """One page of the sessions the key may see, oldest first (``paginate`` walks
        them all)."""
        return self._send(calls.list_sessions(state, tag, limit, cursor))

    def complete_session(self, session_id: Id) -> Session:
        return self._send(calls.complete_session(session_id))

    def delete_session(self, session_id: Id) -> None:
        """Delete the session (its provenance stays)."""
        self._send(calls.delete_session(session_id))

    def archive_session(self, session_id: Id) -> ArchiveSummary:
        return self._send(calls.archive_session(session_id))

    def get_archive(self, session_id: Id) -> dict[str, Any]:
        """An archived session's bundle, to keep or to give :meth:`restore_session`."""
        return self._send(calls.get_archive(session_id))

    def restore_session(self, bundle: Mapping[str, Any]) -> Session:
        return self._send(calls.restore_session(bundle))

    def session_status(self, session_id: Id) -> SessionStatus:
        return self._send(calls.session_status(session_id))

    # --- executions ----------------------------------------------------------------

    def execute(
        self,
        session_id: Id,
        agent: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        backend: BackendKind | str | None = None,
        timeout_s: float | None = None,
        idempotency_key: str | None = None,
        allow_cached: bool = False,
        wait_s: float = 30.0,
        wait: bool = False,
        timeout: float | None = None,
    ) -> Execution:
        """Run ``agent`` (``name`` or ``name@version``) in the session.  The server holds
        the answer up to ``wait_s`` (at most 300); with ``wait`` the client then polls
        until the execution ends, for at most ``timeout`` seconds (``WaitTimeout``)."""
        execution = self._send(
            calls.execute(
                session_id,
                agent,
                inputs,
                backend=backend,
                timeout_s=timeout_s,
                idempotency_key=idempotency_key,
                wait_s=wait_s,
                allow_cached=allow_cached,
            )
        )
        return self.wait_execution(execution, timeout=timeout) if wait else execution

    def wait_execution(self, execution: Execution, *, timeout: float | None = None) -> Execution:
        """The execution once it has ended (polled; ``WaitTimeout`` after ``timeout``)."""
        return self._wait(
            execution,
            lambda _: self.get_execution(execution.session_id, execution.id),
            lambda e: e.state.is_final,
            timeout,
        )

    def list_results(
        self,
        session_id: Id,
        *,
        state: ExecutionState | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """One page of the session's executions, oldest first, with their results."""
        return self._send(calls.list_results(session_id, state, limit, cursor))

    def get_execution(self, session_id: Id, execution_id: Id) -> Execution:
        return self._send(calls.get_execution(session_id, execution_id))

    def cancel_execution(self, session_id: Id, execution_id: Id) -> Execution:
        """Cancel an unfinished execution (``ConflictError`` if it already ended)."""
        return self._send(calls.cancel_execution(session_id, execution_id))

    def events(
        self, session_id: Id, *, last_event_id: int | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """The session's changes as they happen (``GET /sessions/{id}/events``): every
        one since ``last_event_id`` (or the start), then live ones, until the stream
        ends or the loop stops.  Each is a dict with ``index`` (pass it as
        ``last_event_id`` to resume), ``action``, ``resource_type``, ``resource_id``
        and, for state changes, ``state``."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        path = calls.events_path(session_id)
        try:
            with self._http.stream(
                "GET", path, headers=headers, timeout=stream_timeout(self._timeout)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                for event in parse_sse(response.iter_lines()):
                    yield decode_event(event)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    # --- agents --------------------------------------------------------------------

    def list_agents(self) -> list[Agent]:
        """Every agent version the platform can run."""
        return self._send(calls.list_agents())

    def get_agent(self, name: str) -> Agent:
        """One agent (``name`` or ``name@version``) with its input and output schemas."""
        return self._send(calls.get_agent(name))

    # --- workflows -----------------------------------------------------------------

    def validate_workflow(
        self,
        spec: WorkflowSpec,
        params: Mapping[str, Any] | None = None,
        *,
        session_id: Id | None = None,
    ) -> Validation:
        """Check a workflow without running it: ``valid`` with its DAG, or every problem
        found (each with its step and field); nothing is recorded either way.  With
        ``params`` they are checked too; with ``session_id``, the backends against
        that session's config."""
        return self._send(calls.validate_workflow(spec, params, session_id))

    def workflow_schema(self) -> dict[str, Any]:
        """The JSON Schema of the workflow spec (for editors and linters)."""
        return self._send(calls.workflow_schema())

    def run_workflow(
        self,
        session_id: Id,
        spec: WorkflowSpec,
        params: Mapping[str, Any] | None = None,
        *,
        wait_s: float = 0.0,
        wait: bool = False,
        timeout: float | None = None,
    ) -> WorkflowRun:
        """Start a workflow run in the session.  ``spec`` is a mapping, YAML/JSON text
        or a file (a :class:`~pathlib.Path`).  An invalid one raises
        ``InvalidInputError`` whose ``errors`` name each step and field; ``wait_s`` and
        ``wait`` as for :meth:`execute`."""
        run = self._send(calls.run_workflow(session_id, spec, params, wait_s))
        return self.wait_workflow_run(run, timeout=timeout) if wait else run

    def list_workflow_runs(
        self, session_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WorkflowRun]:
        return self._send(calls.list_workflow_runs(session_id, limit, cursor))

    def get_workflow_run(self, session_id: Id, run_id: Id, *, wait_s: float = 0.0) -> WorkflowRun:
        """The run; with ``wait_s`` (at most 60) the server answers once it ends or after
        that long, whichever is first."""
        return self._send(calls.get_workflow_run(session_id, run_id, wait_s))

    def cancel_workflow_run(self, session_id: Id, run_id: Id) -> WorkflowRun:
        """Stop the run's running steps and skip the rest."""
        return self._send(calls.cancel_workflow_run(session_id, run_id))

    def resume_workflow_run(
        self, session_id: Id, run_id: Id, *, from_step: str | None = None, wait_s: float = 0.0
    ) -> WorkflowRun:
        """Run the failed, cancelled and skipped steps again (and what depends on them);
        ``from_step`` reruns that step and everything downstream too; ``wait_s`` as for
        :meth:`run_workflow`."""
        return self._send(calls.resume_workflow_run(session_id, run_id, from_step, wait_s))

    def wait_workflow_run(self, run: WorkflowRun, *, timeout: float | None = None) -> WorkflowRun:
        """The run once it has ended (polled; ``WaitTimeout`` after ``timeout``)."""
        return self._wait(
            run,
            lambda hold: self.get_workflow_run(run.session_id, run.id, wait_s=hold),
            lambda r: r.state.is_final,
            timeout,
        )

    def list_artifacts(self, session_id: Id, run_id: Id) -> list[ArtifactInfo]:
        """The artifacts a run published (summary, tables, plots)."""
        return self._send(calls.list_artifacts(session_id, run_id))

    def get_artifact(self, session_id: Id, run_id: Id, name: str) -> Artifact:
        """One artifact's bytes and media type."""
        return self._send(calls.get_artifact(session_id, run_id, name))
