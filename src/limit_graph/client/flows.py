"""Ordinary Prefect flows that run agents and workflows through a LIMIT-Graph session.

:func:`limit_session` makes a session on the platform for the block it opens and
completes it at the end; :func:`run_agent` and :func:`run_workflow` are Prefect tasks
(so each call is a task run in the flow's run graph, ``.submit()`` runs them
concurrently) that call the REST API and wait for the result.  Every agent run is a
governed, ledgered execution of the session, as one made over REST is.  The
platform is ``LIMIT_API_URL`` with ``LIMIT_API_KEY`` unless a client is given.

This module imports Prefect; ``import limit_graph.client`` alone does not.

>>> # from prefect import flow
>>> # from limit_graph.client.flows import limit_session, run_agent, run_workflow
>>> # @flow
>>> # def nightly(shots: int = 500) -> float:
>>> #     with limit_session(name="nightly") as session:
>>> #         prepared = run_agent(session, "echo", {"angles": [0.0, 1.571]})
>>> #         run = run_workflow(session, Path("bell-sweep.yaml"), {"shots": shots})
>>> #         return session.step_outputs(run, "compare")["max_difference"]
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prefect import get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from limit_graph.client.calls import WorkflowSpec
from limit_graph.client.errors import LimitClientError
from limit_graph.client.sync import LimitClient
from limit_graph.core.models import (
    BackendKind,
    Execution,
    ExecutionState,
    Session,
    SessionConfig,
    WorkflowRun,
    WorkflowRunState,
)

__all__ = [
    "AgentFailed",
    "LimitSession",
    "WorkflowFailed",
    "limit_session",
    "run_agent",
    "run_workflow",
]


class AgentFailed(LimitClientError):
    """An agent's execution ended in another state than ``succeeded``; ``execution``
    is its record (``error`` says why)."""

    def __init__(self, execution: Execution) -> None:
        why = f": {execution.error.message}" if execution.error is not None else ""
        super().__init__(f"agent {execution.agent!r} {execution.state.value}{why}")
        self.execution = execution


class WorkflowFailed(LimitClientError):
    """A workflow run ended ``failed`` or ``cancelled``; ``run`` is its record."""

    def __init__(self, run: WorkflowRun) -> None:
        failed = [s.id for s in run.steps if s.state.value in ("failed", "cancelled")]
        which = f" (steps: {', '.join(failed)})" if failed else ""
        super().__init__(f"workflow run {run.name!r} {run.state.value}{which}")
        self.run = run


class LimitSession:
    """A session on the platform and the client that reaches it, as the tasks take it."""

    def __init__(self, client: LimitClient, session: Session) -> None:
        self.client = client
        self.session = session

    @property
    def id(self) -> str:
        return str(self.session.id)

    def __repr__(self) -> str:
        return f"<LimitSession {self.id} at {self.client.base_url}>"

    def step_outputs(self, run: WorkflowRun, step_id: str) -> Any:
        """What a finished run's step produced: its agent's output or, for a mapped
        step, the list of its items' outputs in order (the last attempt of each)."""
        step = run.step(step_id)
        latest: dict[int | None, Execution] = {}
        for execution_id in step.execution_ids:
            execution = self.client.get_execution(self.id, execution_id)
            index = execution.workflow.index if execution.workflow is not None else None
            latest[index] = execution
        if step.items is None:
            return latest[None].result if None in latest else None
        return [latest[i].result for i in sorted(i for i in latest if i is not None)]


def _config(config: SessionConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    """``config`` with a tag naming the Prefect flow run it was made in, if any."""
    if isinstance(config, SessionConfig):
        document = config.model_dump(mode="json", exclude_unset=True)
    else:
        document = dict(config or {})
    run_id = flow_run.get_id()
    if run_id is not None:
        document["tags"] = [*document.get("tags", []), f"prefect-flow-run:{run_id}"]
    return document


@contextlib.contextmanager
def limit_session(
    client: LimitClient | None = None,
    *,
    name: str | None = None,
    config: SessionConfig | Mapping[str, Any] | None = None,
    complete: bool = True,
) -> Iterator[LimitSession]:
    """A new session for the block, completed when it ends (even by an error).

    ``client`` defaults to ``LimitClient.from_env()`` (closed again at the end).
    Inside a flow run the session is tagged ``prefect-flow-run:<id>``, and the task
    runs the block starts are tagged ``limit-session:<id>``.
    """
    owned = client is None
    sdk = LimitClient.from_env() if client is None else client
    try:
        session = sdk.create_session(name, _config(config))
        handle = LimitSession(sdk, session)
        with tags(f"limit-session:{session.id}"):
            try:
                yield handle
            except BaseException:
                if complete:  # the block's error is the one to see, not this one's
                    with contextlib.suppress(LimitClientError):
                        sdk.complete_session(session.id)
                raise
        if complete:
            sdk.complete_session(session.id)
    finally:
        if owned:
            sdk.close()


@task(name="limit-agent", task_run_name="{agent}", cache_policy=NO_CACHE, persist_result=False)
def run_agent(
    session: LimitSession,
    agent: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    backend: BackendKind | str | None = None,
    timeout_s: float | None = None,
    allow_cached: bool = False,
    wait_timeout: float | None = None,
) -> Execution:
    """Run ``agent`` (``name`` or ``name@version``) in the session and wait for it; the
    finished execution (its output is ``.result``).  Raises :class:`AgentFailed` when
    it did not succeed, which fails the task run."""
    execution = session.client.execute(
        session.id,
        agent,
        inputs,
        backend=backend,
        timeout_s=timeout_s,
        allow_cached=allow_cached,
        wait=True,
        timeout=wait_timeout,
    )
    get_run_logger().info(
        "%s %s on %s (%s): execution %s",
        execution.agent,
        execution.state.value,
        execution.backend.value,
        execution.instance,
        execution.id,
    )
    if execution.state is not ExecutionState.SUCCEEDED:
        raise AgentFailed(execution)
    return execution


def _workflow_run_name(parameters: dict[str, Any]) -> str:
    spec = parameters.get("workflow")
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        return f"workflow-{spec['name']}"
    if isinstance(spec, os.PathLike):
        return f"workflow-{Path(spec).stem}"
    return "workflow"


@task(
    name="limit-workflow-run",
    # Prefect's protocol for a callback taking ``parameters`` also asks for a
    # classmethod, which no function has; Prefect calls it as documented.
    task_run_name=_workflow_run_name,  # type: ignore[arg-type]
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_workflow(
    session: LimitSession,
    workflow: WorkflowSpec,
    params: Mapping[str, Any] | None = None,
    *,
    wait_timeout: float | None = None,
) -> WorkflowRun:
    """Run a workflow (a :class:`~limit_graph.client.workflow.Workflow`, a spec mapping,
    YAML/JSON text or a file) in the session and wait for its end; the finished run.
    Raises :class:`WorkflowFailed` unless it succeeded, and the SDK's
    ``InvalidInputError`` (every problem, with its step and field) if it is invalid."""
    run = session.client.run_workflow(session.id, workflow, params, wait=True, timeout=wait_timeout)
    get_run_logger().info(
        "workflow %s %s: %s",
        run.name,
        run.state.value,
        ", ".join(f"{s.id} {s.state.value}" for s in run.steps),
    )
    if run.state is not WorkflowRunState.SUCCEEDED:
        raise WorkflowFailed(run)
    return run
