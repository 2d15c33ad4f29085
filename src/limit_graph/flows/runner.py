"""The runner: claims executions of one pool from the platform's API and runs them.

It is the ``limit-runner`` flow (one flow run per runner, on the pool's work pool,
started by a Prefect worker) or, without Prefect, ``limit runner --pool K``.  It
talks to the control plane over HTTP only (docs/orchestration.md, "Protocol"): a
long-poll claim, heartbeats that renew its leases and carry cancellations, and
batched result reports.  Each execution runs by calling the agent task's function
(Prefect's task engine would cost ~5 ms each and file the task run under this flow
run; the platform's Prefect mirror files it under the session's flow run instead).

A lease is held, and renewed by the heartbeats, from its claim until the platform has
answered the report of its result: a result waiting to be reported is still held.  Once
more than ``concurrency`` results wait for their reports the runner claims fewer, and
none at twice that, so that claims cannot outrun what the platform records.  ``RunnerLoop(url, key,
"remote").run()`` is one runner; ``limit runner`` starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prefect import flow
from pydantic import ValidationError

from limit_graph.blocks.backends import runner_endpoint
from limit_graph.core.agents import AgentRegistry, AgentSpec
from limit_graph.core.errors import LimitError
from limit_graph.core.models import ErrorInfo, ExecutionState
from limit_graph.core.run_context import RunContext
from limit_graph.core.running import Outcome, error_info, run_agent, running_on
from limit_graph.core.settings import load_settings
from limit_graph.flows.run_context import runner_context

__all__ = ["RunnerLoop", "RunnerRefused", "RunnerSummary", "runner"]

log = logging.getLogger("limit_graph.runner")

CLAIM_WAIT_S = 20.0
REPORT_DELAY_S = 0.002
REPORT_MAX_ITEMS = 500
REPORT_MAX_BYTES = 512 * 1024
RESULT_MAX_BYTES = 900 * 1024
"""The API takes request bodies of up to 1 MiB by default ([server] max_body_bytes)."""
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


class RunnerRefused(Exception):
    """The platform refused a request (4xx): a wrong key, pool or instance; not retried."""

    def __init__(self, path: str, response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        super().__init__(f"{path}: {response.status_code} {detail}")
        self.status_code = response.status_code


def report_slices(results: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Results in requests the API takes: at most REPORT_MAX_ITEMS and about
    REPORT_MAX_BYTES each; a result too large for any request is reported failed."""
    part: list[dict[str, Any]] = []
    size = 0
    for item in results:
        encoded = len(json.dumps(item, separators=(",", ":")))
        if encoded > RESULT_MAX_BYTES:
            # The size of what it reports of the work: its run context is the runner's.
            said = {k: v for k, v in item.items() if k != "run_context"}
            encoded = len(json.dumps(said, separators=(",", ":")))
            item = {
                **item,
                "state": ExecutionState.FAILED.value,
                "result": None,
                "error": {
                    "type": "ResultTooLarge",
                    "message": f"the result is {encoded:,} bytes of JSON; the platform takes "
                    f"at most {RESULT_MAX_BYTES:,}",
                    "retryable": False,
                },
            }
            encoded = 512
        if part and (len(part) >= REPORT_MAX_ITEMS or size + encoded > REPORT_MAX_BYTES):
            yield part
            part, size = [], 0
        part.append(item)
        size += encoded
    if part:
        yield part


@dataclass
class RunnerSummary:
    runner_id: str
    pool: str
    instance: str | None
    executed: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "runner_id": self.runner_id,
            "pool": self.pool,
            "instance": self.instance,
            "executed": self.executed,
            "by_state": self.by_state,
            "exit_reason": self.reason,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RunnerLoop:
    """One runner: ``concurrency`` executions at a time, results reported in batches."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        pool: str,
        instance: str | None = None,
        *,
        concurrency: int = 16,
        idle_exit_s: float | None = 60.0,
        registry: AgentRegistry | None = None,
        agent_paths: Sequence[Path] = (),
        fault_rate: float = 0.0,
        runner_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.pool = pool
        self.instance = instance
        self.concurrency = max(1, concurrency)
        self.idle_exit_s = idle_exit_s
        self.registry = registry or AgentRegistry.discover(agent_paths)
        self.fault_rate = fault_rate
        self.runner_id = runner_id or f"{pool}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.summary = RunnerSummary(self.runner_id, pool, instance)
        self._active: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._results: list[dict[str, Any]] = []
        self._unreported: set[uuid.UUID] = set()
        """Finished, and their leases still held: not yet answered by a report."""
        self._results_ready = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._lease_s = 10.0
        self._lease_changed = asyncio.Event()
        self._last_activity = time.monotonic()
        self._transport = transport

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop claiming; what is held finishes and is reported (SIGTERM does this)."""
        if not self._stopping.is_set():
            log.info("runner %s draining: %s", self.runner_id, reason)
            self.summary.reason = reason
            self._stopping.set()

    async def run(self) -> RunnerSummary:
        headers = {"X-API-Key": self.api_key}
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
        timeout = httpx.Timeout(CLAIM_WAIT_S + 15.0, connect=5.0)
        async with httpx.AsyncClient(
            base_url=self.api_url,
            headers=headers,
            timeout=timeout,
            limits=limits,
            transport=self._transport,
        ) as client:
            self._client = client
            self._install_signal_handlers()
            reporter = asyncio.create_task(self._report_forever())
            beater = asyncio.create_task(self._heartbeat_forever())
            try:
                await self._claim_forever()
                if self._active:
                    await asyncio.gather(*self._active.values(), return_exceptions=True)
            finally:
                self._stopping.set()
                self._results_ready.set()
                await reporter
                beater.cancel()
                await asyncio.gather(beater, return_exceptions=True)
        log.info(
            "runner %s stopped (%s); ran %d",
            self.runner_id,
            self.summary.reason,
            self.summary.executed,
        )
        return self.summary

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.stop, f"signal {signum.name}")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries on connection errors and 5xx; 4xx is a bug, raised."""
        for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
            try:
                response = await self._client.post(path, json=body)
                if response.status_code < 400:
                    data: dict[str, Any] = response.json()
                    return data
                if response.status_code < 500:
                    raise RunnerRefused(path, response)
                problem = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if delay is None:
                raise ConnectionError(f"{path}: the platform did not answer ({problem})")
            if attempt == 0:
                log.warning("%s failed (%s); retrying", path, problem)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _claim_forever(self) -> None:
        self._last_activity = time.monotonic()
        while not self._stopping.is_set():
            free = self.concurrency - len(self._active) - self._reports_behind()
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            wait_s = CLAIM_WAIT_S
            if self.idle_exit_s is not None:
                left = self.idle_exit_s - (time.monotonic() - self._last_activity)
                if left <= 0 and not self._active:
                    self.stop(f"idle for {self.idle_exit_s:g} s")
                    break
                wait_s = min(wait_s, max(left, 0.05) if not self._active else self.idle_exit_s)
            body = {
                "runner_id": self.runner_id,
                "pool": self.pool,
                "instance": self.instance,
                "max": free,
                "wait_s": wait_s,
            }
            claim = asyncio.ensure_future(self._post("/runners/claim", body))
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({claim, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not claim.done():
                claim.cancel()  # leases granted to a cancelled claim expire and go elsewhere
                break
            answer = claim.result()
            self._cancel(answer.get("cancel", []))
            for lease in answer["leases"]:
                lease_s = float(lease.get("lease_s", self._lease_s))
                if lease_s != self._lease_s:
                    self._lease_s = lease_s
                    self._lease_changed.set()
                execution = lease["execution"]
                execution_id = uuid.UUID(execution["id"])
                task = asyncio.create_task(self._run_one(execution, int(lease["attempt"])))
                self._active[execution_id] = task
                task.add_done_callback(functools.partial(self._done, execution_id))
            if answer["leases"]:
                self._last_activity = time.monotonic()

    def _reports_behind(self) -> int:
        """How far results waiting for their report hold claims back: not at all while
        fewer than ``concurrency`` wait."""
        return max(0, len(self._unreported) - self.concurrency)

    def _done(self, execution_id: uuid.UUID, _: asyncio.Task[None]) -> None:
        self._active.pop(execution_id, None)
        self._last_activity = time.monotonic()
        self._slot_free.set()

    def _cancel(self, ids: list[str]) -> None:
        for raw in ids:
            task = self._active.get(uuid.UUID(raw))
            if task is not None:
                task.cancel()

    async def _run_one(self, execution: dict[str, Any], attempt: int) -> None:
        started = _now()
        context: RunContext | None = None
        try:
            outcome, context = await self._outcome(execution)
        except asyncio.CancelledError:
            outcome = Outcome(
                ExecutionState.CANCELLED,
                error=ErrorInfo(type="Cancelled", message="cancelled while running"),
            )
        self.summary.executed += 1
        state = outcome.state.value
        self.summary.by_state[state] = self.summary.by_state.get(state, 0) + 1
        self._unreported.add(uuid.UUID(execution["id"]))
        self._results.append(
            {
                "execution_id": execution["id"],
                "attempt": attempt,
                "state": state,
                "result": outcome.result,
                "error": outcome.error.model_dump() if outcome.error else None,
                "started_at": started,
                "finished_at": _now(),
                "run_context": context.model_dump(mode="json") if context else None,
            }
        )
        self._results_ready.set()

    async def _outcome(self, execution: dict[str, Any]) -> tuple[Outcome, RunContext | None]:
        name, version = execution["agent"], execution.get("agent_version")
        reference = f"{name}@{version}" if version else name
        if reference not in self.registry:
            return Outcome(
                ExecutionState.FAILED,
                error=ErrorInfo(
                    type="UnknownAgent", message=f"this runner has no agent {reference!r}"
                ),
            ), None
        # Validating and running may resolve the instance's own target (its IBM key).
        with running_on(execution.get("instance")):
            return await self._run(self.registry.find(reference), execution)

    async def _run(
        self, agent: AgentSpec, execution: dict[str, Any]
    ) -> tuple[Outcome, RunContext | None]:
        try:
            inputs = agent.input_model.model_validate(execution["inputs"])
        except ValidationError as exc:
            return Outcome(
                ExecutionState.FAILED,
                error=ErrorInfo(type="InvalidInput", message=str(exc)[:4096]),
            ), None
        except LimitError as exc:  # e.g. an IBM target whose sign-in failed
            return Outcome(ExecutionState.FAILED, error=error_info(exc)), None
        if self.fault_rate and random.random() < self.fault_rate:
            return Outcome(
                ExecutionState.FAILED,
                error=ErrorInfo(
                    type="InjectedFault",
                    message=f"fault injected by runner {self.runner_id}",
                    retryable=True,
                ),
            ), None
        outcome = await run_agent(agent, inputs, execution.get("timeout_s"))
        return outcome, runner_context(inputs, quantum=self.pool == "quantum")

    async def _report_forever(self) -> None:
        while True:
            await self._results_ready.wait()
            await asyncio.sleep(REPORT_DELAY_S)  # let a burst of results share one request
            self._results_ready.clear()
            batch, self._results = self._results, []
            for part in report_slices(batch):
                await self._report(part)
            if self._stopping.is_set() and not self._active and not self._results:
                return

    async def _report(self, results: list[dict[str, Any]]) -> None:
        try:
            answer = await self._post(
                "/runners/report", {"runner_id": self.runner_id, "results": results}
            )
        except (ConnectionError, RunnerRefused) as exc:
            self._reported(results)
            log.error(
                "could not report %d results (%s); their leases will expire and the "
                "executions run again",
                len(results),
                exc,
            )
            return
        self._reported(results)
        for rejected in answer.get("rejected", []):
            log.warning("result of %s rejected: %s", rejected["execution_id"], rejected["reason"])

    def _reported(self, results: list[dict[str, Any]]) -> None:
        """The platform answered for ``results`` (or will not): their leases are no
        longer the runner's to renew."""
        for item in results:
            self._unreported.discard(uuid.UUID(item["execution_id"]))
        self._slot_free.set()

    async def _heartbeat_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lease_changed.wait(), self._lease_s / 3)
            self._lease_changed.clear()
            body = {
                "runner_id": self.runner_id,
                "pool": self.pool,
                "instance": self.instance,
                "executions": [str(i) for i in self._active.keys() | self._unreported],
            }
            try:
                answer = await self._post("/runners/heartbeat", body)
            except ConnectionError as exc:
                log.error("heartbeat failed: %s", exc)
                continue
            self._cancel(answer.get("cancel", []))


@flow(name="limit-runner", persist_result=False)
async def runner(
    pool: str,
    instance: str | None = None,
    api_url: str | None = None,
    concurrency: int = 16,
    idle_exit_s: float = 60.0,
) -> dict[str, Any]:
    """Serve one pool until idle for ``idle_exit_s`` or told to stop (SIGTERM drains)."""
    url, key = await runner_endpoint(api_url)
    folders = load_settings().agents.paths  # LIMIT_CONFIG's [agents] paths, LIMIT_AGENT_PATHS
    loop = RunnerLoop(
        url,
        key,
        pool,
        instance,
        concurrency=concurrency,
        idle_exit_s=idle_exit_s,
        agent_paths=folders,
    )
    summary = await loop.run()
    return summary.as_dict()
