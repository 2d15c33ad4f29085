"""``AsyncLimitClient``: :class:`~limit_graph.client.LimitClient`'s methods, awaited.

Same names, arguments and returns; ``events`` is an async iterator, ``close`` a
coroutine.

>>> # from limit_graph.client import AsyncLimitClient
>>> # async with AsyncLimitClient.from_env() as client:
>>> #     session = await client.create_session("sweep")
>>> #     run = await client.run_workflow(session.id, Path("bell-sweep.yaml"))
>>> #     async for event in client.events(session.id):
>>> #         print(event["action"], event.get("state"))
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Self, TypeVar

import anyio
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
from limit_graph.client.sse import SSEDecoder
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

__all__ = ["AsyncLimitClient"]

T = TypeVar("T")


class AsyncLimitClient:
    """An asyncio (or trio) client of one LIMIT-Graph server, calling it with one key.

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
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
        return f"<AsyncLimitClient {self.base_url}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; the client cannot be used after."""
        await self._http.aclose()

    # --- plumbing ------------------------------------------------------------------

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                timeout=read_timeout(self._timeout, call.wait_s),
            )
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        return read_answer(call, response)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any endpoint, for what the methods do not cover: the answer's JSON (``None``
        for an empty one); ``kwargs`` go to :meth:`httpx.AsyncClient.request`."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json() if response.content else None

    async def _wait(
        self,
        current: T,
        fetch: Callable[[float], Awaitable[T]],
        done: Callable[[T], bool],
        timeout: float | None,
    ) -> T:
        """Fetch until ``done``, as ``LimitClient`` does."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delays = poll_delays()
        while not done(current):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WaitTimeout(f"still not finished after {timeout} s", current)
            current = await fetch(LONG_POLL_S if left is None else min(LONG_POLL_S, left))
            if not done(current):
                pause = next(delays)
                if deadline is not None:
                    pause = min(pause, max(deadline - time.monotonic(), 0))
                await anyio.sleep(pause)
        return current

    # --- sessions ------------------------------------------------------------------

    async def create_session(
        self, name: str | None = None, config: SessionConfig | Mapping[str, Any] | None = None
    ) -> Session:
        """A new session; ``config`` (backends, default_backend, tags, timeout_s) is
        fixed for its life."""
        return await self._send(calls.create_session(name, config))

    async def get_session(self, session_id: Id) -> Session:
        return await self._send(calls.get_session(session_id))

    async def list_sessions(
        self,
        *,
        state: SessionState | str | None = None,
        tag: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Session]:
        """One page of the sessions the key may see, oldest first (``paginate`` walks
        them all)."""
        return await self._send(calls.list_sessions(state, tag, limit, cursor))

    async def complete_session(self, session_id: Id) -> Session:
        return await self._send(calls.complete_session(session_id))

    async def delete_session(self, session_id: Id) -> None:
        """Delete the session (its provenance stays)."""
        await self._send(calls.delete_session(session_id))

    async def archive_session(self, session_id: Id) -> ArchiveSummary:
        return await self._send(calls.archive_session(session_id))

    async def get_archive(self, session_id: Id) -> dict[str, Any]:
        """An archived session's bundle, to keep or to give :meth:`restore_session`."""
        return await self._send(calls.get_archive(session_id))

    async def restore_session(self, bundle: Mapping[str, Any]) -> Session:
        return await self._send(calls.restore_session(bundle))

    async def session_status(self, session_id: Id) -> SessionStatus:
        return await self._send(calls.session_status(session_id))

    # --- executions ----------------------------------------------------------------

    async def execute(
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
        execution = await self._send(
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
        return await self.wait_execution(execution, timeout=timeout) if wait else execution

    async def wait_execution(
        self, execution: Execution, *, timeout: float | None = None
    ) -> Execution:
        """The execution once it has ended (polled; ``WaitTimeout`` after ``timeout``)."""
        return await self._wait(
            execution,
            lambda _: self.get_execution(execution.session_id, execution.id),
            lambda e: e.state.is_final,
            timeout,
        )

    async def list_results(
        self,
        session_id: Id,
        *,
        state: ExecutionState | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """One page of the session's executions, oldest first, with their results."""
        return await self._send(calls.list_results(session_id, state, limit, cursor))

    async def get_execution(self, session_id: Id, execution_id: Id) -> Execution:
        return await self._send(calls.get_execution(session_id, execution_id))

    async def cancel_execution(self, session_id: Id, execution_id: Id) -> Execution:
        """Cancel an unfinished execution (``ConflictError`` if it already ended)."""
        return await self._send(calls.cancel_execution(session_id, execution_id))

    async def events(
        self, session_id: Id, *, last_event_id: int | str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The session's changes as they happen, as for ``LimitClient.events``."""
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        path = calls.events_path(session_id)
        decoder = SSEDecoder()
        try:
            async with self._http.stream(
                "GET", path, headers=headers, timeout=stream_timeout(self._timeout)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from_response(response)
                async for line in response.aiter_lines():
                    event = decoder.feed(line)
                    if event is not None:
                        yield decode_event(event)
                last = decoder.flush()
                if last is not None:
                    yield decode_event(last)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    # --- agents --------------------------------------------------------------------

    async def list_agents(self) -> list[Agent]:
        """Every agent version the platform can run."""
        return await self._send(calls.list_agents())

    async def get_agent(self, name: str) -> Agent:
        """One agent (``name`` or ``name@version``) with its input and output schemas."""
        return await self._send(calls.get_agent(name))

    # --- workflows -----------------------------------------------------------------

    async def validate_workflow(
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
        return await self._send(calls.validate_workflow(spec, params, session_id))

    async def workflow_schema(self) -> dict[str, Any]:
        """The JSON Schema of the workflow spec (for editors and linters)."""
        return await self._send(calls.workflow_schema())

    async def run_workflow(
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
        run = await self._send(calls.run_workflow(session_id, spec, params, wait_s))
        return await self.wait_workflow_run(run, timeout=timeout) if wait else run

    async def list_workflow_runs(
        self, session_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[WorkflowRun]:
        return await self._send(calls.list_workflow_runs(session_id, limit, cursor))

    async def get_workflow_run(
        self, session_id: Id, run_id: Id, *, wait_s: float = 0.0
    ) -> WorkflowRun:
        """The run; with ``wait_s`` (at most 60) the server answers once it ends or after
        that long, whichever is first."""
        return await self._send(calls.get_workflow_run(session_id, run_id, wait_s))

    async def cancel_workflow_run(self, session_id: Id, run_id: Id) -> WorkflowRun:
        """Stop the run's running steps and skip the rest."""
        return await self._send(calls.cancel_workflow_run(session_id, run_id))

    async def resume_workflow_run(
        self, session_id: Id, run_id: Id, *, from_step: str | None = None, wait_s: float = 0.0
    ) -> WorkflowRun:
        """Run the failed, cancelled and skipped steps again (and what depends on them);
        ``from_step`` reruns that step and everything downstream too; ``wait_s`` as for
        :meth:`run_workflow`."""
        return await self._send(calls.resume_workflow_run(session_id, run_id, from_step, wait_s))

    async def wait_workflow_run(
        self, run: WorkflowRun, *, timeout: float | None = None
    ) -> WorkflowRun:
        """The run once it has ended (polled; ``WaitTimeout`` after ``timeout``)."""
        return await self._wait(
            run,
            lambda hold: self.get_workflow_run(run.session_id, run.id, wait_s=hold),
            lambda r: r.state.is_final,
            timeout,
        )

    async def list_artifacts(self, session_id: Id, run_id: Id) -> list[ArtifactInfo]:
        """The artifacts a run published (summary, tables, plots)."""
        return await self._send(calls.list_artifacts(session_id, run_id))

    async def get_artifact(self, session_id: Id, run_id: Id, name: str) -> Artifact:
        """One artifact's bytes and media type."""
        return await self._send(calls.get_artifact(session_id, run_id, name))
