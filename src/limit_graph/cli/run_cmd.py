"""``limit run``: run a workflow file, in a session of its own unless one is named.

Examples::

    limit run bell-sweep.yaml --param shots=500 --watch
    limit run pipeline.yaml --session <session-id> --wait 30 --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from limit_graph.cli.client import CliError
from limit_graph.cli.inputs import parse_params, read_workflow_file, require_uuid
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption
from limit_graph.cli.output import print_json, print_table, tell
from limit_graph.cli.workflow_cmd import ParamOption, connected, finish, refuse_invalid
from limit_graph.client import InvalidInputError, LimitClient, LimitClientError, Validation
from limit_graph.core.models import WorkflowRun

__all__ = ["run"]


def _start(
    sdk: LimitClient, session: str | None, text: str, params: dict[str, object], wait_s: float
) -> WorkflowRun:
    """The run, in ``session`` or in a new session named after the workflow; a session
    made for it is deleted again when the run is refused."""
    checked = sdk.validate_workflow(text, params, session_id=session)
    refuse_invalid(checked)
    if session is not None:
        return _run_or_refuse(sdk, session, text, params, wait_s)
    made = sdk.create_session(checked.name or "workflow")
    try:
        return _run_or_refuse(sdk, str(made.id), text, params, wait_s)
    except (LimitClientError, typer.Exit):
        try:
            sdk.delete_session(made.id)
        except LimitClientError:
            tell(f"the session {made.id} made for this run could not be deleted")
        raise


def _run_or_refuse(
    sdk: LimitClient, session: str, text: str, params: dict[str, object], wait_s: float
) -> WorkflowRun:
    try:
        return sdk.run_workflow(session, text, params, wait_s=wait_s)
    except InvalidInputError as exc:  # what only the session can say, e.g. its backends
        refuse_invalid(Validation.from_problem(exc.problem))
        raise


def run(
    file: Annotated[Path, typer.Argument(help="A workflow file, YAML or JSON.")],
    session: Annotated[
        str | None,
        typer.Option("--session", help="Run in this session (default: a new one)."),
    ] = None,
    param: ParamOption = None,
    watch: Annotated[bool, typer.Option("--watch", help="Show it live until it ends.")] = False,
    wait: Annotated[
        float,
        typer.Option("--wait", min=0, max=300, help="Seconds to wait for it to finish."),
    ] = 0.0,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Run the workflow in FILE; print its run id and where to look (exit 1 if it failed)."""
    from limit_graph.cli.watch import watch_workflow

    if watch and as_json:
        raise CliError("--json prints the run as it starts; --watch follows it: choose one")
    text = read_workflow_file(file)
    params = parse_params(param)
    sid = require_uuid(session, "session") if session is not None else None
    with connected(url, api_key) as (client, sdk):
        started = _start(sdk, sid, text, params, wait)
        where = f"--session {started.session_id}"
        if as_json:
            print_json(started.model_dump(mode="json"))
        else:
            print_table(
                ("run", "session", "name", "state"),
                [(str(started.id), str(started.session_id), started.name, started.state.value)],
                whole=("run", "session"),
            )
        if not watch:
            tell(f"watch it: limit watch {started.session_id} --workflow {started.id}")
            tell(f"its steps: limit workflow show {started.id} {where}")
            finish(started)
            return
        finish(watch_workflow(client, str(started.session_id), str(started.id), Console()))
