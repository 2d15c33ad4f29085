"""Driving one workflow run: steps in dependency order, map items, retries, cancel.

A :class:`RunDriver` holds the run's record in memory and writes it to the store at
every step transition (ledger action ``workflow.step``), so the store always says
which steps ended how.  Each step, and each item of a mapped step, is an ordinary
execution submitted through :class:`ExecutionService` with an idempotency key made of
the run, its resume count, the step, the item and the attempt: a driver rebuilt after
a restart submits the same keys, gets the executions already made back instead of new
ones, and so carries the run on without running any attempt twice.

Concurrency: at most ``max_parallel`` executions of the run are in flight at once
(one slot per step, or per map item), and a map's own ``max_parallel`` bounds its
items.  A step that fails after its retries fails the run; the steps downstream of it
are skipped, the others finish.  Retried are executions that failed with a retryable
error or timed out, up to the step's ``retries``, after ``retry_backoff_s`` doubling
each time; an execution interrupted by a restart is run again without counting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from limit_graph.core.errors import Conflict, LimitError
from limit_graph.core.models import (
    BackendKind,
    ErrorInfo,
    Execution,
    ExecutionState,
    StepRun,
    StepState,
    WorkflowRun,
    WorkflowRunState,
    WorkflowTag,
    utcnow,
)
from limit_graph.core.workflows import Scope, StepSpec, ValidWorkflow, evaluate_when, resolve
from limit_graph.governance.auth import Principal
from limit_graph.orchestration.executions import ExecuteCommand, ExecutionService
from limit_graph.storage.base import Storage

__all__ = ["DriverContext", "RunDriver", "idempotency_key"]

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0
SNAPSHOT_INTERVAL_S = 0.2
RETRIED_STATES = frozenset({ExecutionState.FAILED, ExecutionState.TIMED_OUT})
FAILED_UPSTREAM = frozenset({StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED})


def idempotency_key(run: WorkflowRun, step: str, index: int | None, attempt: int) -> str:
    """The key of one attempt of one item: the same after a restart, new after a resume."""
    item = "-" if index is None else str(index)
    return f"wf:{run.id}:{run.resumes}:{step}:{item}:{attempt}"


@dataclass(frozen=True)
class DriverContext:
    """What a driver uses of the platform; built once by the workflow service."""

    storage: Storage
    executions: ExecutionService
    notify: Callable[[uuid.UUID], None]
    sleep: Callable[[float], Awaitable[None]]
    max_parallel: int
    on_final: Callable[[RunDriver], Awaitable[None]]
    """Called once the run has ended, before its final record is written (artifacts)."""


class _StepFailed(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class RunDriver:
    """Runs one workflow run to its end; see the module docstring."""

    def __init__(
        self,
        context: DriverContext,
        run: WorkflowRun,
        workflow: ValidWorkflow,
        principal: Principal,
        *,
        outputs: dict[str, Any] | None = None,
        produced: dict[str, list[uuid.UUID]] | None = None,
        recovered: bool = False,
    ) -> None:
        self.context = context
        self.run = run
        self.workflow = workflow
        self.principal = principal
        self.outputs: dict[str, Any] = dict(outputs or {})
        """Step id → its output (a mapped step's: the list of its items' outputs)."""
        self.produced: dict[str, list[uuid.UUID]] = dict(produced or {})
        """Step id → the executions whose results make its output."""
        self._recovered = recovered
        self._order = workflow.graph.order()
        self._rank = {step: n for n, step in enumerate(self._order)}
        self._children: dict[str, list[str]] = {step: [] for step in self._order}
        for step, upstream in workflow.graph.upstream.items():
            for parent in upstream:
                self._children[parent].append(step)
        self._index = {step.id: i for i, step in enumerate(run.steps)}
        self._specs: dict[str, StepSpec] = {s.id: s for s in workflow.spec.steps}
        self._slots = asyncio.Semaphore(workflow.spec.max_parallel or context.max_parallel)
        self._steps: dict[str, asyncio.Task[None]] = {}
        self._in_flight: dict[uuid.UUID, str] = {}
        self._places: dict[uuid.UUID, tuple[int, int]] = {}
        """Where each execution this driver made stands in its step: (attempt, item)."""
        self._cancelling = False
        self._write_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._writer_stopping = False
        self._stopped = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self.task: asyncio.Task[WorkflowRun] | None = None
        self.finished = asyncio.Event()

    # --- the record ---------------------------------------------------------------

    def step(self, step_id: str) -> StepRun:
        return self.run.steps[self._index[step_id]]

    def _update_step(self, step_id: str, **changes: Any) -> StepRun:
        position = self._index[step_id]
        steps = list(self.run.steps)
        steps[position] = steps[position].model_copy(update=changes)
        self.run = self.run.model_copy(update={"steps": steps})
        return steps[position]

    async def _save(self, action: str) -> None:
        """Write the run as it is now.  Writes are serialised, so the ledger's order of a
        run's entries is the order of its changes."""
        async with self._write_lock:
            await self.context.storage.write_workflow_run(
                self.run, actor=self.run.actor, action=action
            )
        self.context.notify(self.run.session_id)

    def _changed(self) -> None:
        """A step changed: the writer records the run soon (``workflow.step``), changes
        made meanwhile in the same write, so steps never wait on their run's record."""
        self._dirty.set()

    async def _writer(self) -> None:
        """At most one ``workflow.step`` record per :data:`SNAPSHOT_INTERVAL_S`: a fast
        chain of steps is recorded as a few snapshots, not two records a step (each
        execution has its own entries; a restarted run is rebuilt from those)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            if self._writer_stopping:
                return
            wrote = loop.time()
            self._dirty.clear()
            await self._save("workflow.step")
            pause = SNAPSHOT_INTERVAL_S - (loop.time() - wrote)
            if pause > 0 and not self._writer_stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), pause)

    async def _stop_writer(self) -> None:
        """Let the writer finish the write it is in, then stop it (the final record
        carries every change since)."""
        if self._writer_task is None:
            return
        self._writer_stopping = True
        self._stopped.set()
        self._dirty.set()
        await self._writer_task
        self._writer_task = None

    # --- driving ------------------------------------------------------------------

    def start(self) -> asyncio.Task[WorkflowRun]:
        self.task = asyncio.create_task(self.drive(), name=f"limit-workflow-{self.run.id}")
        return self.task

    async def drive(self) -> WorkflowRun:
        """Run every step that can run, until none is left; then record the end."""
        try:
            if self.run.state is WorkflowRunState.PENDING:
                self.run = self.run.model_copy(
                    update={"state": WorkflowRunState.RUNNING, "started_at": utcnow()}
                )
                await self._save("workflow.started")
            self._writer_task = asyncio.create_task(self._writer(), name="limit-workflow-writer")
            candidates: Iterable[str] = self._order
            while True:
                if self._launch_ready(self._order if self._cancelling else candidates):
                    self._changed()
                if not self._steps:
                    break
                await asyncio.wait(self._steps.values(), return_when=asyncio.FIRST_COMPLETED)
                ended: list[str] = []
                for step_id, task in list(self._steps.items()):
                    if task.done():
                        del self._steps[step_id]
                        self._reap(step_id, task)
                        ended.extend(self._children[step_id])
                candidates = ended
            await self._finish()
            return self.run
        except asyncio.CancelledError:
            # The platform is stopping: the run stays running in the store, for the next
            # start to carry on; nothing is recorded for the steps cut short.
            stopping = [*self._steps.values()]
            if self._writer_task is not None:
                stopping.append(self._writer_task)
            for task in stopping:
                task.cancel()
            await asyncio.gather(*stopping, return_exceptions=True)
            raise
        finally:
            self.finished.set()

    def _reap(self, step_id: str, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug of ours: the step fails, the run goes on
            log.error("workflow step %s failed unexpectedly", step_id, exc_info=exc)
            self._update_step(
                step_id,
                state=StepState.FAILED,
                finished_at=utcnow(),
                error=ErrorInfo(type=type(exc).__name__, message=str(exc)[:2000]),
            )

    def _launch_ready(self, candidates: Iterable[str]) -> bool:
        """Start the pending ``candidates`` whose upstream all succeeded; skip the ones
        an upstream failure, skip or cancel has cut off (and, while cancelling, all),
        and look at their children in turn.  Whether it skipped any."""
        upstream_of = self.workflow.graph.upstream
        todo = sorted(set(candidates), key=self._rank.__getitem__)
        skipped = False
        while todo:
            cut: set[str] = set()
            for step_id in todo:
                step = self.step(step_id)
                if step.state is not StepState.PENDING or step_id in self._steps:
                    continue
                if self._cancelling:
                    self._skip(step_id, "the run was cancelled")
                    cut.update(self._children[step_id])
                    continue
                upstream = [self.step(u) for u in upstream_of[step_id]]
                blocked = next((u for u in upstream if u.state in FAILED_UPSTREAM), None)
                if blocked is not None:
                    self._skip(step_id, f"upstream step {blocked.id!r} {blocked.state.value}")
                    cut.update(self._children[step_id])
                elif all(u.state is StepState.SUCCEEDED for u in upstream):
                    self._steps[step_id] = asyncio.create_task(
                        self._run_step(step_id), name=f"limit-step-{step_id}"
                    )
            skipped = skipped or bool(cut)
            todo = sorted(cut, key=self._rank.__getitem__)
        return skipped

    def _skip(self, step_id: str, reason: str) -> None:
        self._update_step(
            step_id, state=StepState.SKIPPED, reason=reason, finished_at=utcnow(), error=None
        )

    async def _finish(self) -> None:
        failed = next((s for s in self.run.steps if s.state is StepState.FAILED), None)
        if self._cancelling:
            state, error = WorkflowRunState.CANCELLED, None
        elif failed is not None:
            state = WorkflowRunState.FAILED
            cause = failed.error or ErrorInfo(type="Failed", message="failed")
            error = ErrorInfo(
                type=cause.type, message=f"step {failed.id!r} failed: {cause.message}"[:4000]
            )
        else:
            state, error = WorkflowRunState.SUCCEEDED, None
        self.run = self.run.model_copy(
            update={"state": state, "error": error, "finished_at": utcnow()}
        )
        await self._stop_writer()
        try:
            await self.context.on_final(self)
        except Exception:  # artifacts are a view: their failure never fails the run
            log.exception("the artifacts of workflow run %s could not be made", self.run.id)
        await self._save(f"workflow.{state.value}")

    # --- one step -------------------------------------------------------------------

    async def _run_step(self, step_id: str) -> None:
        spec = self._specs[step_id]
        scope = Scope(params=self.run.params, outputs=self.outputs)
        try:
            if spec.when is not None and not evaluate_when(spec.when, scope):
                self._skip(step_id, f"`when` is false: {spec.when}")
                self._changed()
                return
            items: list[Any] | None = None
            if spec.map is not None:
                over = resolve(spec.map.over, scope)
                if not isinstance(over, list):
                    raise _StepFailed(
                        ErrorInfo(
                            type="MapOverNotArray",
                            message=f"map.over is a {type(over).__name__}, not an array",
                        )
                    )
                items = over
        except LimitError as exc:
            self._fail(step_id, ErrorInfo(type=type(exc).__name__, message=exc.detail))
            return
        except _StepFailed as failed:
            self._fail(step_id, failed.error)
            return
        self._update_step(
            step_id,
            state=StepState.RUNNING,
            started_at=self.step(step_id).started_at or utcnow(),
            finished_at=None,
            error=None,
            reason=None,
            items=len(items) if items is not None else None,
        )
        self._changed()
        try:
            if items is None:
                execution = await self._run_item(spec, None, None)
                assert execution is not None
                self.outputs[step_id] = execution.result
                self.produced[step_id] = [execution.id]
            else:
                finished = await self._run_map(spec, items)
                self.outputs[step_id] = [e.result for e in finished]
                self.produced[step_id] = [e.id for e in finished]
        except _StepFailed as failed:
            if not self._cancelling:
                self._fail(step_id, failed.error)
                return
            self._cancelled(step_id)
            return
        except asyncio.CancelledError:
            if not self._cancelling:
                raise
            self._cancelled(step_id)
            return
        self._update_step(step_id, state=StepState.SUCCEEDED, finished_at=utcnow())
        self._changed()

    def _cancelled(self, step_id: str) -> None:
        self._update_step(
            step_id, state=StepState.CANCELLED, finished_at=utcnow(), reason="the run was cancelled"
        )
        self._changed()

    def _fail(self, step_id: str, error: ErrorInfo) -> None:
        self._update_step(step_id, state=StepState.FAILED, finished_at=utcnow(), error=error)
        self._changed()

    async def _run_map(self, spec: StepSpec, items: list[Any]) -> list[Execution]:
        assert spec.map is not None
        own = asyncio.Semaphore(spec.map.max_parallel) if spec.map.max_parallel else None
        first_failure: list[_StepFailed] = []

        def stopped() -> bool:
            return bool(first_failure)

        async def item(index: int, value: Any) -> Execution | None:
            if own is None:
                return await self._run_item(spec, index, value, stopped)
            async with own:
                return await self._run_item(spec, index, value, stopped)

        tasks = [asyncio.create_task(item(i, v)) for i, v in enumerate(items)]
        try:
            results: list[Execution] = []
            for task in tasks:
                try:
                    done = await task
                except _StepFailed as failed:
                    first_failure.append(failed)
                    continue
                if done is not None:
                    results.append(done)
            if first_failure:
                # the items not started yet are not started; the others ran to their end
                raise first_failure[0]
            return results
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _item_inputs(self, spec: StepSpec, value: Any) -> dict[str, Any]:
        names = {spec.map.as_: value} if spec.map is not None else {}
        scope = Scope(params=self.run.params, outputs=self.outputs, names=names)
        resolved = resolve(spec.inputs, scope)
        assert isinstance(resolved, dict)
        return resolved

    async def _run_item(
        self,
        spec: StepSpec,
        index: int | None,
        value: Any,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Execution | None:
        """One item's attempts, until one succeeds or the retries are spent; ``None`` if
        ``stopped`` (another item of the map failed) before it began."""
        try:
            inputs = self._item_inputs(spec, value)
        except LimitError as exc:
            raise _StepFailed(ErrorInfo(type=type(exc).__name__, message=exc.detail)) from None
        upstream = [
            e for u in self.workflow.graph.upstream[spec.id] for e in self.produced.get(u, [])
        ]
        attempt, failures = 1, 0
        while True:
            async with self._slots:
                if stopped():
                    return None
                execution = await self._attempt(spec, index, inputs, upstream, attempt)
            if execution.state is ExecutionState.SUCCEEDED:
                return execution
            error = execution.error or ErrorInfo(type="Failed", message=execution.state.value)
            interrupted = error.type == "Interrupted"
            retryable = execution.state is ExecutionState.TIMED_OUT or error.retryable
            if self._cancelling or not (interrupted or (retryable and failures < spec.retries)):
                where = f" (item {index})" if index is not None else ""
                raise _StepFailed(
                    error.model_copy(update={"message": f"{error.message}{where}"[:4000]})
                )
            if not interrupted:
                failures += 1
            attempt += 1
            if not interrupted and not await self._exists(spec, index, attempt):
                delay = min(MAX_BACKOFF_S, spec.retry_backoff_s * 2 ** (failures - 1))
                await self.context.sleep(delay)

    async def _exists(self, spec: StepSpec, index: int | None, attempt: int) -> bool:
        if not self._recovered:
            return False
        key = idempotency_key(self.run, spec.id, index, attempt)
        found = await self.context.storage.find_execution_by_key(self.run.session_id, key)
        return found is not None

    async def _attempt(
        self,
        spec: StepSpec,
        index: int | None,
        inputs: dict[str, Any],
        upstream: list[uuid.UUID],
        attempt: int,
    ) -> Execution:
        command = ExecuteCommand(
            agent=self.run.agents.get(spec.id, spec.agent),
            inputs=inputs,
            backend=self.workflow.backends[spec.id],
            timeout_s=spec.timeout_s,
            idempotency_key=idempotency_key(self.run, spec.id, index, attempt),
            wait_s=0,
            allow_cached=spec.allow_cached,
            policies=tuple(spec.policies),
            new_key=not self._recovered,
            workflow=WorkflowTag(
                run_id=self.run.id, step=spec.id, index=index, attempt=attempt, upstream=upstream
            ),
        )
        executions = self.context.executions
        try:
            execution = await executions.execute(self.principal, self.run.session_id, command)
        except LimitError as exc:
            raise _StepFailed(ErrorInfo(type=type(exc).__name__, message=exc.detail)) from None
        self._note_execution(spec.id, execution.id, (attempt, index or 0))
        if not execution.state.is_final and self._recovered:
            execution = await self._adopt(execution)
        self._in_flight[execution.id] = spec.id
        try:
            if self._cancelling and not execution.state.is_final:
                await self._cancel_execution(execution.id)
            return await executions.wait_final(execution)
        finally:
            self._in_flight.pop(execution.id, None)

    async def _adopt(self, execution: Execution) -> Execution:
        """An unfinished execution found after a restart: local work stopped with the
        process that ran it and runs again here, in the same record; dispatched work is
        back in the dispatcher's queues, and is waited for."""
        if execution.backend is BackendKind.LOCAL:
            return await self.context.executions.carry_on(execution)
        return execution

    def _note_execution(
        self, step_id: str, execution_id: uuid.UUID, place: tuple[int, int]
    ) -> None:
        """Add the execution to its step in (attempt, item) order, whatever order the
        items' admissions end in; executions of an earlier run of the driver (before a
        restart or a resume) stay first, as they were."""
        step = self.step(step_id)
        if execution_id in step.execution_ids:
            return
        self._places[execution_id] = place
        ordered = sorted(
            [*step.execution_ids, execution_id], key=lambda e: self._places.get(e, (0, -1))
        )
        self._update_step(step_id, execution_ids=ordered)

    # --- cancel ---------------------------------------------------------------------

    async def cancel(self) -> None:
        """Stop the running steps (their executions are cancelled, on runners too) and
        skip the rest; returns once the run has ended."""
        self._cancelling = True
        for execution_id in list(self._in_flight):
            await self._cancel_execution(execution_id)
        for task in list(self._steps.values()):
            task.cancel()
        await self.finished.wait()

    async def _cancel_execution(self, execution_id: uuid.UUID) -> None:
        with contextlib.suppress(Conflict):  # it ended meanwhile
            await self.context.executions.cancel(self.principal, self.run.session_id, execution_id)
