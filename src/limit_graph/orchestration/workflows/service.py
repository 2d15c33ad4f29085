"""The workflow service: validate, run, watch, cancel and resume workflow runs.

A run is validated whole before anything is recorded (every problem in one answer);
then its record is written ``pending`` (``workflow.created``) and a
:class:`~limit_graph.orchestration.workflows.driver.RunDriver` carries it to its end in
this process.  Its state lives in the store: :meth:`WorkflowService.start` picks up
the runs a stopped process left unfinished and carries them on, and every step is an
ordinary execution (checks, ledger, cache, routing, retries and timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from limit_graph.core.agents import AgentRegistry
from limit_graph.core.errors import Conflict, InvalidInput, NotFound
from limit_graph.core.models import (
    BackendKind,
    ErrorInfo,
    Execution,
    ExecutionState,
    Session,
    StepRun,
    StepState,
    WorkflowRun,
    WorkflowRunState,
    utcnow,
)
from limit_graph.core.settings import WorkflowsSettings
from limit_graph.core.workflows import ValidWorkflow, WorkflowInvalid, validate_workflow
from limit_graph.core.workflows.problems import problem
from limit_graph.governance.auth import Principal
from limit_graph.governance.compliance import ComplianceChecks
from limit_graph.orchestration.executions import ExecutionService
from limit_graph.orchestration.sessions import SessionCache, require_visible
from limit_graph.orchestration.workflows.artifacts import ARTIFACTS, Artifact, make_artifacts
from limit_graph.orchestration.workflows.driver import DriverContext, RunDriver
from limit_graph.storage.base import Storage
from limit_graph.storage.paging import Page

__all__ = ["WorkflowService"]

log = logging.getLogger(__name__)

Source = str | Mapping[str, Any]
PRINCIPALS = "workflow-principals"


class WorkflowService:
    """Workflow runs of every session; one driver task per unfinished run."""

    def __init__(
        self,
        storage: Storage,
        registry: AgentRegistry,
        executions: ExecutionService,
        sessions: SessionCache,
        settings: WorkflowsSettings,
        compliance: ComplianceChecks,
        *,
        notify: Callable[[uuid.UUID], None],
        default_backend: BackendKind = BackendKind.LOCAL,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.executions = executions
        self.sessions = sessions
        self.settings = settings
        self.compliance = compliance
        self.default_backend = default_backend
        self.sleep = sleep
        """Waits out a retry's backoff; a test may put a fake clock's here."""
        self._context = DriverContext(
            storage=storage,
            executions=executions,
            notify=notify,
            sleep=lambda seconds: self.sleep(seconds),
            max_parallel=settings.max_parallel,
            on_final=self._store_artifacts,
        )
        self._drivers: dict[uuid.UUID, RunDriver] = {}

    # --- validating -----------------------------------------------------------------

    def check(
        self,
        source: Source,
        *,
        session: Session | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ValidWorkflow:
        """The workflow validated (for ``session``'s backends, with run ``params`` if
        given); :class:`WorkflowInvalid` lists every problem."""
        return validate_workflow(
            source,
            self.registry,
            allowed_backends=session.config.backends if session is not None else None,
            default_backend=self._default_backend(session),
            max_steps=self.settings.max_steps,
            params=params,
        )

    async def _checked(
        self,
        source: Source,
        *,
        session: Session | None,
        params: Mapping[str, Any] | None,
    ) -> ValidWorkflow:
        """:meth:`check`, and the compliance checks its steps declare (parsed off the
        event loop when slow to parse, as a data-quality suite is).  A run's pinned spec
        passed both when it started; after a restart only :meth:`check` runs again."""
        workflow = self.check(source, session=session, params=params)
        problems: list[dict[str, Any]] = []
        for index, step in enumerate(workflow.spec.steps):
            where: list[str | int] = ["steps", index, "policies"]
            try:
                await self.compliance.aparse(step.policies, f"step {step.id}", where)
            except InvalidInput as exc:
                problems.extend(
                    problem(e["loc"], f"{exc.detail}: {e['msg']}", "invalid_check", step.id)
                    for e in exc.errors
                )
        if problems:
            raise WorkflowInvalid(problems, name=workflow.spec.name)
        return workflow

    def _default_backend(self, session: Session | None) -> BackendKind:
        if session is not None and session.config.default_backend is not None:
            return session.config.default_backend
        return self.default_backend

    async def validate(
        self,
        principal: Principal,
        source: Source,
        *,
        params: Mapping[str, Any] | None = None,
        session_id: uuid.UUID | None = None,
    ) -> ValidWorkflow:
        session = await self._session(principal, session_id) if session_id else None
        return await self._checked(source, session=session, params=params)

    # --- running --------------------------------------------------------------------

    async def run(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        source: Source,
        params: Mapping[str, Any] | None = None,
        *,
        wait_s: float = 0.0,
    ) -> WorkflowRun:
        """Validate and start a run; the record, finished if it ended within ``wait_s``."""
        session = await self._session(principal, session_id)
        workflow = await self._checked(source, session=session, params=params or {})
        bound = workflow.bind(params or {})
        now = utcnow()
        run = WorkflowRun(
            id=uuid.uuid4(),
            session_id=session.id,
            name=workflow.spec.name,
            state=WorkflowRunState.PENDING,
            params=bound,
            spec=workflow.document,
            spec_sha256=workflow.sha256,
            steps=[StepRun(id=step) for step in workflow.graph.steps],
            agents={step: f"{a.name}@{a.version}" for step, a in workflow.agents.items()},
            actor=principal.name,
            created_at=now,
        )
        # Who started it, so that a process carrying it on after a restart acts as them.
        await self.storage.put_value(
            PRINCIPALS,
            str(run.id),
            {"name": principal.name, "tenant": principal.tenant, "roles": sorted(principal.roles)},
        )
        await self.storage.write_workflow_run(
            run, actor=principal.name, action="workflow.created", require_active_session=True
        )
        self._context.notify(run.session_id)
        driver = self._drive(run, workflow, principal)
        return await self._waited(driver, wait_s)

    def _drive(
        self,
        run: WorkflowRun,
        workflow: ValidWorkflow,
        principal: Principal,
        **state: Any,
    ) -> RunDriver:
        driver = RunDriver(self._context, run, workflow, principal, **state)
        self._drivers[run.id] = driver
        task = driver.start()
        task.add_done_callback(lambda t: self._ended(run.id, driver, t))
        return driver

    def _ended(self, run_id: uuid.UUID, driver: RunDriver, task: asyncio.Task[WorkflowRun]) -> None:
        if self._drivers.get(run_id) is driver:
            del self._drivers[run_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("workflow run %s stopped", run_id, exc_info=task.exception())

    async def _waited(self, driver: RunDriver, wait_s: float) -> WorkflowRun:
        if wait_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(driver.finished.wait()), wait_s)
        return driver.run

    # --- reading --------------------------------------------------------------------

    async def get(
        self, principal: Principal, session_id: uuid.UUID, run_id: uuid.UUID
    ) -> WorkflowRun:
        """The run as it stands: from its driver when it runs here, else the store."""
        await self._session(principal, session_id)
        driver = self._drivers.get(run_id)
        if driver is not None and driver.run.session_id == session_id:
            return driver.run
        run = await self.storage.get_workflow_run(run_id)
        if run is None or run.session_id != session_id:
            raise NotFound(f"no workflow run {run_id} in session {session_id}")
        return run

    async def list_runs(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[WorkflowRun]:
        await self._session(principal, session_id)
        page = await self.storage.list_workflow_runs(session_id, limit=limit, cursor=cursor)
        live = [self._drivers[r.id].run if r.id in self._drivers else r for r in page.items]
        return Page(live, page.next_cursor)

    async def wait(
        self, principal: Principal, session_id: uuid.UUID, run_id: uuid.UUID, timeout_s: float
    ) -> WorkflowRun:
        """The run once it has ended, or as it stands after ``timeout_s``."""
        run = await self.get(principal, session_id, run_id)
        driver = self._drivers.get(run_id)
        if driver is None or run.state.is_final:
            return run
        return await self._waited(driver, timeout_s)

    async def artifacts(
        self, principal: Principal, session_id: uuid.UUID, run_id: uuid.UUID
    ) -> list[Artifact]:
        run = await self.get(principal, session_id, run_id)
        index = await self.storage.get_value(ARTIFACTS, str(run.id)) or {}
        found = []
        for name in index.get("names", []):
            stored = await self.storage.get_value(ARTIFACTS, f"{run.id}/{name}")
            if stored is not None:
                found.append(Artifact.model_validate(stored))
        return found

    async def artifact(
        self, principal: Principal, session_id: uuid.UUID, run_id: uuid.UUID, name: str
    ) -> Artifact:
        run = await self.get(principal, session_id, run_id)
        stored = await self.storage.get_value(ARTIFACTS, f"{run.id}/{name}")
        if stored is None:
            raise NotFound(f"workflow run {run_id} has no artifact {name!r}")
        return Artifact.model_validate(stored)

    async def _store_artifacts(self, driver: RunDriver) -> None:
        """Before the final record: the run's summary, its step table and any plots."""
        artifacts = await asyncio.to_thread(make_artifacts, driver.run, driver.outputs)
        for artifact in artifacts:
            await self.storage.put_value(
                ARTIFACTS, f"{driver.run.id}/{artifact.name}", artifact.model_dump(mode="json")
            )
        await self.storage.put_value(
            ARTIFACTS, str(driver.run.id), {"names": [a.name for a in artifacts]}
        )

    # --- cancel and resume ------------------------------------------------------------

    async def cancel(
        self, principal: Principal, session_id: uuid.UUID, run_id: uuid.UUID
    ) -> WorkflowRun:
        """Stop the running steps (on runners too) and skip the rest (409 once ended)."""
        run = await self.get(principal, session_id, run_id)
        if run.state.is_final:
            raise Conflict(f"workflow run {run_id} already {run.state.value}")
        driver = self._drivers.get(run_id)
        if driver is None:
            raise Conflict(f"workflow run {run_id} is not running in this process")
        await driver.cancel()
        return driver.run

    async def resume(
        self,
        principal: Principal,
        session_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        from_step: str | None = None,
        wait_s: float = 0.0,
    ) -> WorkflowRun:
        """Run the failed, cancelled and skipped steps and their downstream again (and
        ``from_step`` with its downstream); succeeded steps keep their results."""
        run = await self.get(principal, session_id, run_id)
        if not run.state.is_final:
            raise Conflict(f"workflow run {run_id} is still {run.state.value}")
        session = await self._session(principal, session_id)
        workflow = self._pinned(run, session)
        graph = workflow.graph
        if from_step is not None and from_step not in graph.upstream:
            raise InvalidInput(
                f"workflow {run.name!r} has no step {from_step!r}",
                [{"loc": ["body", "from_step"], "msg": "unknown step", "type": "value_error"}],
            )
        again = {s.id for s in run.steps if s.state is not StepState.SUCCEEDED}
        if from_step is not None:
            again.add(from_step)
        for step in list(again):
            again |= graph.downstream(step)
        if not again:
            raise Conflict(f"workflow run {run_id} succeeded: name a step to resume from")
        steps = [
            s.model_copy(
                update={
                    "state": StepState.PENDING,
                    "error": None,
                    "reason": None,
                    "finished_at": None,
                    "started_at": None,
                }
            )
            if s.id in again
            else s
            for s in run.steps
        ]
        resumed = run.model_copy(
            update={
                "state": WorkflowRunState.RUNNING,
                "steps": steps,
                "resumes": run.resumes + 1,
                "error": None,
                "finished_at": None,
            }
        )
        await self.storage.write_workflow_run(
            resumed, actor=principal.name, action="workflow.resumed", require_active_session=True
        )
        self._context.notify(resumed.session_id)
        executions = await self.storage.list_workflow_executions(resumed.id)
        outputs, produced = self._results_of(executions, keep=set(graph.steps) - again)
        driver = self._drive(resumed, workflow, principal, outputs=outputs, produced=produced)
        return await self._waited(driver, wait_s)

    def _pinned(self, run: WorkflowRun, session: Session | None) -> ValidWorkflow:
        """The run's workflow, with the agent versions it was made with."""
        spec = dict(run.spec)
        spec["steps"] = [
            {**step, "agent": run.agents.get(step["id"], step["agent"])} for step in spec["steps"]
        ]
        return self.check(spec, session=session)

    @staticmethod
    def _results_of(
        executions: list[Execution], *, keep: set[str]
    ) -> tuple[dict[str, Any], dict[str, list[uuid.UUID]]]:
        """The outputs of the ``keep`` steps, from their latest succeeded executions."""
        latest: dict[str, dict[int | None, Any]] = {}
        for execution in executions:
            tag = execution.workflow
            if tag is None or tag.step not in keep:
                continue
            if execution.state is ExecutionState.SUCCEEDED:
                latest.setdefault(tag.step, {})[tag.index] = execution
        outputs: dict[str, Any] = {}
        produced: dict[str, list[uuid.UUID]] = {}
        for step, by_index in latest.items():
            if None in by_index:
                outputs[step] = by_index[None].result
                produced[step] = [by_index[None].id]
            else:
                ordered = [by_index[i] for i in sorted(i for i in by_index if i is not None)]
                outputs[step] = [e.result for e in ordered]
                produced[step] = [e.id for e in ordered]
        return outputs, produced

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Carry on the runs a stopped process left unfinished, as who started them."""
        for run in await self.storage.list_unfinished_workflow_runs():
            session = await self.storage.get_session(run.session_id)
            who = await self.storage.get_value(PRINCIPALS, str(run.id))
            if who is None:
                await self._abandon(run, "who started the run is not on record")
                continue
            principal = Principal(who["name"], who["tenant"], frozenset(who["roles"]))
            try:
                workflow = self._pinned(run, session)
            except (WorkflowInvalid, NotFound) as exc:
                await self._abandon(run, f"the workflow no longer validates: {exc}")
                continue
            executions = await self.storage.list_workflow_executions(run.id)
            ids: dict[str, list[uuid.UUID]] = {}
            for execution in executions:
                if execution.workflow is not None:
                    ids.setdefault(execution.workflow.step, []).append(execution.id)
            steps = [
                step.model_copy(
                    update={
                        "state": StepState.PENDING
                        if step.state is StepState.RUNNING
                        else step.state,
                        "execution_ids": ids.get(step.id, []),
                    }
                )
                for step in run.steps
            ]
            carried = run.model_copy(update={"steps": steps})
            done = {s.id for s in steps if s.state is StepState.SUCCEEDED}
            outputs, produced = self._results_of(executions, keep=done)
            log.info("carrying on workflow run %s (%s)", run.id, run.name)
            self._drive(
                carried,
                workflow,
                principal,
                outputs=outputs,
                produced=produced,
                recovered=True,
            )

    async def _abandon(self, run: WorkflowRun, why: str) -> None:
        failed = run.model_copy(
            update={
                "state": WorkflowRunState.FAILED,
                "error": ErrorInfo(type="Unrecoverable", message=why[:4000]),
                "finished_at": utcnow(),
            }
        )
        await self.storage.write_workflow_run(failed, actor=run.actor, action="workflow.failed")
        self._context.notify(run.session_id)

    async def close(self) -> None:
        """Stop driving; unfinished runs stay ``running`` in the store for the next start."""
        drivers = list(self._drivers.values())
        for driver in drivers:
            if driver.task is not None:
                driver.task.cancel()
        await asyncio.gather(
            *(d.task for d in drivers if d.task is not None), return_exceptions=True
        )

    async def _session(self, principal: Principal, session_id: uuid.UUID) -> Session:
        return require_visible(await self.sessions.load(session_id), principal, session_id)
