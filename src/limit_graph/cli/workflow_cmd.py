"""``limit workflow``: check a workflow file, draw its DAG, and look after its runs.

Examples::

    limit workflow validate bell-sweep.yaml --param shots=500
    limit workflow graph bell-sweep.yaml --format mermaid
    limit workflow list --session <session-id>
    limit workflow show <run-id> --session <session-id>
    limit workflow cancel <run-id> --session <session-id>
    limit workflow resume <run-id> --session <session-id> --from-step sample --watch
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console

from limit_graph.cli.client import ApiClient, CliError
from limit_graph.cli.inputs import parse_params, read_workflow_file, require_uuid
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption
from limit_graph.cli.output import print_json, print_table, print_text, tell
from limit_graph.cli.target import open_client
from limit_graph.cli.workflow_view import (
    RUN_COLUMNS,
    STEP_COLUMNS,
    problem_lines,
    run_row,
    run_summary,
    step_row,
)
from limit_graph.client import LimitClient, Validation, paginate
from limit_graph.core.models import SessionState, WorkflowRun

__all__ = [
    "ParamOption",
    "SessionOption",
    "connected",
    "finish",
    "refuse_invalid",
    "workflow_app",
]

workflow_app = typer.Typer(help="Validate workflow files, draw their DAGs, and manage runs.")

ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param", help="A workflow param as KEY=VALUE, VALUE read as JSON if it is (repeatable)."
    ),
]
SessionOption = Annotated[str, typer.Option("--session", help="The run's session id.")]
FileArgument = Annotated[Path, typer.Argument(help="A workflow file, YAML or JSON.")]


@contextmanager
def connected(url: str | None, key: str | None) -> Iterator[tuple[ApiClient, LimitClient]]:
    """The CLI client and its SDK, errors as one-line messages, closed after the block."""
    client = open_client(url, key)
    try:
        with client.errors() as sdk:
            yield client, sdk
    finally:
        client.close()


def refuse_invalid(validation: Validation) -> None:
    """For an invalid workflow: each problem as a ``step  field  message`` line, then
    exit 1.  Nothing for a valid one."""
    if validation.valid:
        return
    for line in problem_lines(validation.errors) or [validation.detail or "invalid"]:
        print_text(line)
    count = len(validation.errors)
    tell(f"invalid: {count} problem{'s' if count != 1 else ''}")
    raise typer.Exit(1)


def finish(run: WorkflowRun) -> None:
    """Leave with 1 when the run ended other than succeeded (0 while it still runs)."""
    if run.state.is_final and run.state != "succeeded":
        raise typer.Exit(1)


def show_run(run: WorkflowRun, as_json: bool) -> None:
    """The run: its JSON document, or its summary (on standard error) and steps table."""
    if as_json:
        print_json(run.model_dump(mode="json"))
        return
    tell(run_summary(run))
    print_table(STEP_COLUMNS, [step_row(step) for step in run.steps], whole=STEP_COLUMNS[:1])


@workflow_app.command("validate")
def validate(
    file: FileArgument,
    param: ParamOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Check FILE without running it: every problem as `step  field  message` (exit 1)."""
    text = read_workflow_file(file)
    params = parse_params(param) if param else None
    with connected(url, api_key) as (_, sdk):
        validation = sdk.validate_workflow(text, params)
    if as_json:
        print_json(validation.model_dump(mode="json", by_alias=True, exclude_none=True))
        raise typer.Exit(0 if validation.valid else 1)
    refuse_invalid(validation)
    steps, edges = len(validation.nodes), len(validation.edges)
    print_text(
        f"valid: {steps} step{'s' if steps != 1 else ''}, {edges} edge{'s' if edges != 1 else ''}"
    )


@workflow_app.command("graph")
def graph(
    file: FileArgument,
    fmt: Annotated[
        Literal["mermaid", "json"], typer.Option("--format", help="mermaid text or JSON.")
    ] = "mermaid",
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print FILE's DAG as Mermaid (paste it into a Markdown file) or as JSON."""
    text = read_workflow_file(file)
    with connected(url, api_key) as (_, sdk):
        validation = sdk.validate_workflow(text)
    refuse_invalid(validation)
    if fmt == "json":
        print_json(validation.graph())
    else:
        print_text((validation.mermaid or "").rstrip("\n"))


@workflow_app.command("list")
def list_runs(
    session: Annotated[
        str | None, typer.Option("--session", help="Only this session's runs.")
    ] = None,
    limit: Annotated[int, typer.Option(help="How many at most (the newest).")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List workflow runs, oldest first: one session's, or those of every session."""
    with connected(url, api_key) as (_, sdk):
        if session is not None:
            page = sdk.list_workflow_runs(require_uuid(session, "session"), limit=limit)
            runs, more = page.items, page.next_cursor
        else:
            runs = [
                run
                for s in paginate(sdk.list_sessions, limit=500)
                if s.state != SessionState.DELETED
                for run in paginate(sdk.list_workflow_runs, session_id=s.id, limit=500)
            ]
            runs = sorted(runs, key=lambda r: r.created_at)[-limit:]
            more = None
    if as_json:
        print_json({"items": [r.model_dump(mode="json") for r in runs], "next_cursor": more})
        return
    print_table(RUN_COLUMNS, [run_row(r) for r in runs], whole=RUN_COLUMNS[:1])
    if more:
        tell(f"more runs: --json shows next_cursor {more}")


@workflow_app.command("show")
def show(
    run_id: str,
    session: SessionOption,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Show run RUN_ID: id, state, executions, duration and error of each step."""
    sid, rid = require_uuid(session, "session"), require_uuid(run_id, "workflow run")
    with connected(url, api_key) as (_, sdk):
        run = sdk.get_workflow_run(sid, rid)
    show_run(run, as_json)


@workflow_app.command("cancel")
def cancel(
    run_id: str,
    session: SessionOption,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Cancel run RUN_ID: its running steps stop, the rest are skipped."""
    sid, rid = require_uuid(session, "session"), require_uuid(run_id, "workflow run")
    with connected(url, api_key) as (_, sdk):
        run = sdk.cancel_workflow_run(sid, rid)
    show_run(run, as_json)


@workflow_app.command("resume")
def resume(
    run_id: str,
    session: SessionOption,
    from_step: Annotated[
        str | None,
        typer.Option("--from-step", help="Also rerun this step and everything downstream."),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Show it live until it ends.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Resume run RUN_ID: its failed, cancelled and skipped steps run again."""
    from limit_graph.cli.watch import watch_workflow

    if watch and as_json:
        raise CliError("--json prints the run as it resumes; --watch follows it: choose one")
    sid, rid = require_uuid(session, "session"), require_uuid(run_id, "workflow run")
    with connected(url, api_key) as (client, sdk):
        run = sdk.resume_workflow_run(sid, rid, from_step=from_step)
        if watch:
            finish(watch_workflow(client, sid, rid, Console()))
            return
    show_run(run, as_json)
