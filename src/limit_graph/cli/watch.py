"""``limit watch``: a session's executions as a live progress bar, or one workflow run's
steps as a live table, both fed by the session's event stream.

A workflow run is read again whenever the stream says something changed (and at least
every second, should the stream break off), so the table follows the run without
asking the server more often than things happen.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from limit_graph.cli.client import ApiClient, CliError
from limit_graph.cli.output import tsv_line
from limit_graph.cli.workflow_view import STEP_COLUMNS, run_summary, step_row, steps_table
from limit_graph.client import AsyncLimitClient, LimitConnectionError, parse_sse
from limit_graph.core.models import WorkflowRun

__all__ = ["follow_run", "parse_sse", "watch_session", "watch_workflow"]

UNFINISHED = ("queued", "running")
STATES = ("queued", "running", "succeeded", "failed", "cancelled", "timed_out")
REFRESH_S = 1.0
"""Read the run at least this often, whatever the stream says."""
SETTLE_S = 0.1
"""After a change, let the burst it belongs to arrive before reading the run again."""

Show = Callable[[WorkflowRun, Mapping[str, str]], None]


def _summary(states: dict[str, str]) -> str:
    counts = Counter(states.values())
    return "  ".join(f"{s} {counts.get(s, 0)}" for s in STATES)


def watch_session(client: ApiClient, session_id: str, *, follow: bool, console: Console) -> None:
    """A progress bar of the session's executions until none is queued or running."""
    with client.errors() as sdk:
        expected = sum(sdk.session_status(session_id).counts.values())
        states: dict[str, str] = {}
        progress = Progress(
            TextColumn("[bold]{task.fields[session]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
        )
        with progress:
            bar = progress.add_task("", total=max(expected, 1), session=session_id[:8])
            try:
                for event in sdk.events(session_id):
                    if event.get("resource_type") == "execution" and "state" in event:
                        states[str(event["resource_id"])] = str(event["state"])
                    finished = sum(1 for s in states.values() if s not in UNFINISHED)
                    progress.update(
                        bar,
                        total=max(len(states), 1),
                        completed=finished,
                        description=_summary(states),
                    )
                    caught_up = len(states) >= expected
                    if caught_up and finished == len(states) and not follow:
                        break
                    if event.get("state") in ("archived", "deleted") and not follow:
                        break
            except LimitConnectionError as exc:
                raise CliError(f"event stream from {client.url} broke off: {exc.reason}") from None
    if not states:
        console.print("no executions in this session yet")


async def _track_executions(
    client: AsyncLimitClient, session_id: str, states: dict[str, str], changed: asyncio.Event
) -> None:
    async for event in client.events(session_id):
        if event.get("resource_type") == "execution" and "state" in event:
            states[str(event["resource_id"])] = str(event["state"])
        changed.set()


async def follow_run(
    client: AsyncLimitClient, session_id: str, run_id: str, show: Show
) -> WorkflowRun:
    """Read the run each time the session's events say something changed, hand it to
    ``show`` with the executions' states so far, and return it once it has ended."""
    states: dict[str, str] = {}
    changed = asyncio.Event()
    tracker = asyncio.create_task(_track_executions(client, session_id, states, changed))
    try:
        while True:
            run = await client.get_workflow_run(session_id, run_id)
            show(run, states)
            if run.state.is_final:
                return run
            changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), REFRESH_S)
            await asyncio.sleep(SETTLE_S)
    finally:
        tracker.cancel()
        # A stream that broke off only slows the table down; the run is read anyway.
        await asyncio.gather(tracker, return_exceptions=True)


class _Lines:
    """For a pipe or a log: a line each time a step's state or progress changes."""

    def __init__(self, console: Console) -> None:
        self.out = console.file  # written to as it is: rich would turn the tabs to spaces
        self.seen: dict[str, tuple[str, str]] = {}
        self._write(STEP_COLUMNS)

    def _write(self, row: Sequence[str]) -> None:
        self.out.write(tsv_line(row) + "\n")
        self.out.flush()

    def __call__(self, run: WorkflowRun, states: Mapping[str, str]) -> None:
        for step in run.steps:
            row = step_row(step, states)
            if self.seen.get(step.id) != (row[1], row[2]):
                self.seen[step.id] = (row[1], row[2])
                self._write(row)


def watch_workflow(
    client: ApiClient, session_id: str, run_id: str, console: Console
) -> WorkflowRun:
    """Show a workflow run's steps until it ends (a live table on a terminal, a line per
    change elsewhere), then its summary; the run as it ended."""
    try:
        uuid.UUID(run_id)
    except ValueError:
        raise CliError(f"{run_id!r} is not a workflow run id (a UUID)") from None

    async def watch(show: Show) -> WorkflowRun:
        async with client.async_sdk() as sdk:
            return await follow_run(sdk, session_id, run_id, show)

    with client.errors():
        if console.is_terminal:
            with Live(console=console, auto_refresh=False) as live:

                def redraw(run: WorkflowRun, states: Mapping[str, str]) -> None:
                    live.update(steps_table(run, states), refresh=True)

                return asyncio.run(watch(redraw))
        run = asyncio.run(watch(_Lines(console)))
    console.print(run_summary(run), markup=False, highlight=False, soft_wrap=True)
    return run
