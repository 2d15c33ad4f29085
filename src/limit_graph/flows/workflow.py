"""The scheduled workflow: a Prefect flow that runs one workflow in a new session.

``limit workflow deploy`` makes a deployment of this ``limit-scheduled-workflow`` flow
(:mod:`limit_graph.deployments.workflows`); each of its flow runs, on its schedule or
started by hand, asks the platform's REST API to validate the workflow, makes a session
for it, runs it there, logs its progress (steps done of total), completes the session
and ends Failed when the run did not succeed.  The run's id and address are in the flow
run's logs and in a markdown artifact.  (``limit-workflow`` is another flow: the mirror
of each workflow run, under its session's flow run.)

Where the platform is and which key to call it with:

- the URL is the ``api_url`` parameter, else ``LIMIT_API_URL`` (the workers ``limit up``
  starts carry it), else the address in the ``limit-runner`` block;
- the key is the value of the Prefect ``Secret`` block named by ``key_block``, which
  ``limit workflow deploy`` saves with the deploying user's key
  (:func:`workflow_key_block`).  It is never a parameter and never logged, and it is
  not the runner key: that key may only serve executions, not run them (403).

>>> workflow_key_block("bell-sweep")
'limit-workflow-key-bell-sweep'
>>> # asyncio.run(scheduled_workflow(workflow=spec, params={"shots": 500},
>>> #                                key_block="limit-workflow-key-bell-sweep"))
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import acreate_markdown_artifact
from prefect.blocks.system import Secret

from limit_graph.blocks.backends import RUNNER_CREDENTIALS_BLOCK, RunnerCredentials
from limit_graph.client import AsyncLimitClient, LimitClientError
from limit_graph.client.calls import WorkflowSpec
from limit_graph.core.errors import ConfigError
from limit_graph.core.models import WorkflowRun, WorkflowRunState

__all__ = [
    "DEFAULT_KEY_BLOCK",
    "FLOW_NAME",
    "ScheduledWorkflowFailed",
    "run_link",
    "scheduled_workflow",
    "slug",
    "workflow_endpoint",
    "workflow_key_block",
]

FLOW_NAME = "limit-scheduled-workflow"
DEFAULT_KEY_BLOCK = "limit-workflow-key"
"""The key block of deployments that name none (the examples in ``prefect.yaml``)."""
HOLD_S = 10.0
"""How long each progress poll lets the server hold its answer (it answers at once when
the run ends): progress is logged at least this often while it changes."""


class ScheduledWorkflowFailed(RuntimeError):
    """The workflow run ended other than succeeded, or was refused; the message says why."""


def slug(name: str) -> str:
    """``name`` as Prefect block and artifact names must be: lowercase letters, digits
    and dashes; a name that had to change gets 6 hex of its hash, so two names never
    share a slug.

    >>> slug("bell-sweep"), slug("Bell_Sweep")
    ('bell-sweep', 'bell-sweep-2a6ac3')
    """
    plain = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "workflow"
    if plain == name:
        return plain
    return f"{plain}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"


def workflow_key_block(deployment: str) -> str:
    """The ``Secret`` block that holds the API key of deployment ``deployment``."""
    return f"{DEFAULT_KEY_BLOCK}-{slug(deployment)}"


def run_link(api_url: str, run: WorkflowRun) -> str:
    """The run's address on the platform's REST API."""
    return f"{api_url.rstrip('/')}/sessions/{run.session_id}/workflows/{run.id}"


async def workflow_endpoint(api_url: str | None, key_block: str) -> tuple[str, str]:
    """The platform's URL and the key in the ``Secret`` block ``key_block``; a
    :class:`ConfigError` naming what is missing and how to provide it."""
    url = api_url or os.environ.get("LIMIT_API_URL")
    if not url:
        try:
            runner: Any = await RunnerCredentials.aload(RUNNER_CREDENTIALS_BLOCK)
        except ValueError:
            raise ConfigError(
                "where is LIMIT-Graph? pass the api_url parameter, set LIMIT_API_URL in "
                f"the worker's environment, or register the platform (the "
                f"{RUNNER_CREDENTIALS_BLOCK!r} block names its address)"
            ) from None
        url = str(runner.api_url)
    try:
        secret: Any = await Secret.aload(key_block)
    except ValueError:
        raise ConfigError(
            f"no Secret block {key_block!r} holds the API key for this workflow: "
            "`limit workflow deploy` saves it, or add a Secret block of that name in the "
            "Prefect UI (Blocks) whose value is a key that may run executions"
        ) from None
    key = secret.get()
    if not isinstance(key, str) or not key:
        raise ConfigError(f"the Secret block {key_block!r} does not hold an API key (text)")
    return url.rstrip("/"), key


def _spec(workflow: dict[str, Any] | None, workflow_file: str | None) -> WorkflowSpec:
    """The workflow to send: the spec, or the text of the file (relative to the working
    directory, which the deployment's pull step sets to the checkout)."""
    if (workflow is None) == (workflow_file is None):
        raise ConfigError("give the workflow (a spec) or workflow_file (a path), one of them")
    if workflow is not None:
        return workflow
    path = Path(str(workflow_file))
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read workflow file {path.resolve()}: {getattr(exc, 'strerror', exc)}"
        ) from None


def _steps_done(run: WorkflowRun) -> str:
    done = sum(step.state.is_final for step in run.steps)
    return f"{done} of {len(run.steps)} steps done"


def _why(run: WorkflowRun) -> str:
    """The failed steps and their errors, or the run's own error."""
    failed = [
        f"step {step.id}: {step.error.type}: {step.error.message}" if step.error else step.id
        for step in run.steps
        if step.state == "failed"
    ]
    if failed:
        return "; ".join(failed)
    return run.error.message if run.error else f"the run is {run.state.value}"


def _summary(run: WorkflowRun, link: str) -> str:
    counts: dict[str, int] = {}
    for step in run.steps:
        counts[step.state.value] = counts.get(step.state.value, 0) + 1
    steps = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [
        f"## Workflow `{run.name}`: {run.state.value}",
        "",
        "| | |",
        "| --- | --- |",
        f"| run | [{run.id}]({link}) |",
        f"| session | `{run.session_id}` |",
        f"| steps | {steps or 'none'} |",
        f"| spec | `sha256:{run.spec_sha256[:16]}` |",
    ]
    if run.started_at and run.finished_at:
        lines.append(f"| took | {(run.finished_at - run.started_at).total_seconds():.1f} s |")
    if run.state != WorkflowRunState.SUCCEEDED:
        lines += ["", f"**Why:** {_why(run)}"]
    return "\n".join(lines) + "\n"


async def _await_end(client: AsyncLimitClient, run: WorkflowRun, timeout_s: float) -> WorkflowRun:
    """The run once it has ended, progress logged as steps finish; a run still going
    after ``timeout_s``, or left by an interrupted flow run, is cancelled."""
    logger = get_run_logger()
    deadline = time.monotonic() + timeout_s
    progress = _steps_done(run)
    try:
        while not run.state.is_final:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the workflow run did not end within {timeout_s:g} s")
            run = await client.get_workflow_run(run.session_id, run.id, wait_s=min(HOLD_S, left))
            if _steps_done(run) != progress:
                progress = _steps_done(run)
                logger.info("workflow run %s: %s", run.id, progress)
    except BaseException:
        try:
            await client.cancel_workflow_run(run.session_id, run.id)
            logger.warning("workflow run %s cancelled", run.id)
        except LimitClientError as exc:
            logger.warning("workflow run %s could not be cancelled: %s", run.id, exc)
        raise
    return run


@flow(name=FLOW_NAME, persist_result=False)
async def scheduled_workflow(
    workflow: dict[str, Any] | None = None,
    workflow_file: str | None = None,
    params: dict[str, Any] | None = None,
    session_name: str | None = None,
    session_tags: list[str] | None = None,
    wait_timeout_s: float = 6 * 3600.0,
    api_url: str | None = None,
    key_block: str = DEFAULT_KEY_BLOCK,
) -> dict[str, Any]:
    """Run ``workflow`` (or the file ``workflow_file``) with ``params`` in a new session.

    The session is named ``session_name`` (default: the workflow's name) and tagged
    ``scheduled``, ``deployment:<name>`` and ``session_tags``; it is completed when the
    run ends.  Waits ``wait_timeout_s`` at most, then cancels the run.  Raises
    :class:`ScheduledWorkflowFailed` unless the run succeeds.
    """
    logger = get_run_logger()
    spec = _spec(workflow, workflow_file)
    url, key = await workflow_endpoint(api_url, key_block)
    async with AsyncLimitClient(url, key, timeout=60.0) as client:
        checked = await client.validate_workflow(spec, params or {})
        if not checked.valid:
            problems = "; ".join(
                f"{p.step or '-'} {p.field or '-'}: {p.msg}" for p in checked.errors
            )
            raise ScheduledWorkflowFailed(f"the workflow is invalid: {problems}")
        tags = ["scheduled", *(session_tags or [])]
        if runtime.deployment.name:
            tags.insert(1, f"deployment:{runtime.deployment.name}")
        session = await client.create_session(
            session_name or checked.name, {"tags": list(dict.fromkeys(tags))}
        )
        try:
            run = await client.run_workflow(session.id, spec, params or {})
        except LimitClientError:  # refused for this session (its backends): nothing ran
            try:
                await client.delete_session(session.id)
            except LimitClientError as exc:
                logger.warning("session %s could not be deleted: %s", session.id, exc)
            raise
        link = run_link(url, run)
        logger.info("workflow %s: run %s in session %s (%s)", run.name, run.id, session.id, link)
        try:
            run = await _await_end(client, run, wait_timeout_s)
        finally:
            try:
                await client.complete_session(session.id)
            except LimitClientError as exc:
                logger.warning("session %s could not be completed: %s", session.id, exc)
            if run.state.is_final:
                await acreate_markdown_artifact(
                    _summary(run, link),
                    key=f"limit-workflow-{slug(run.name)}",
                    description=f"Workflow run {run.id}: {run.state.value}",
                )
    took = (run.finished_at - run.created_at).total_seconds() if run.finished_at else 0.0
    if run.state != WorkflowRunState.SUCCEEDED:
        logger.error(
            "workflow run %s %s after %.1f s: %s", run.id, run.state.value, took, _why(run)
        )
        raise ScheduledWorkflowFailed(
            f"workflow run {run.id} of {run.name!r} {run.state.value}: {_why(run)} ({link})"
        )
    logger.info("workflow run %s succeeded in %.1f s: %s", run.id, took, link)
    return {
        "session_id": str(session.id),
        "run_id": str(run.id),
        "state": run.state.value,
        "link": link,
    }
