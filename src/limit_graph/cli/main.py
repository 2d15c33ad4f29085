"""The ``limit`` command: serve the platform, and drive it over REST.

The client commands call the server ``limit up`` serves with the same configuration
(:mod:`limit_graph.cli.target` says how they find it and its key).

Examples::

    limit up
    limit session create --tag demo
    limit exec <session-id> echo --inputs '{"hello": "world"}'
    limit session archive <session-id>
    limit agents show echo
    limit run bell-sweep.yaml --param shots=500 --watch
    limit workflow validate bell-sweep.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from limit_graph.cli import audit_export_cmd, witness_cmd  # noqa: F401 - `limit audit export|witness`
from limit_graph.cli.agents_cmd import agents_app
from limit_graph.cli.audit_cmd import audit_app
from limit_graph.cli.client import CliError
from limit_graph.cli.config_cmd import config_app
from limit_graph.cli.db_cmd import db_app
from limit_graph.cli.deploy_cmd import deploy as deploy_command
from limit_graph.cli.identity_cmd import keys_app, principal_app, tenant_app
from limit_graph.cli.options import KeyOption, UrlOption, call
from limit_graph.cli.output import print_json
from limit_graph.cli.policy_cmd import policy_app
from limit_graph.cli.prefect_cmd import prefect_app
from limit_graph.cli.prefect_cmd import worker as worker_command
from limit_graph.cli.quota_cmd import quota_app
from limit_graph.cli.run_cmd import run as run_command
from limit_graph.cli.runner_cmd import runner as runner_command
from limit_graph.cli.sessions_cmd import session_app
from limit_graph.cli.target import open_client
from limit_graph.cli.workflow_cmd import workflow_app

__all__ = ["app", "main"]

app = typer.Typer(help="LIMIT-Graph: governed workflows for hybrid quantum-classical work.")
app.add_typer(session_app, name="session")
app.add_typer(agents_app, name="agents")
app.add_typer(prefect_app, name="prefect")
app.add_typer(workflow_app, name="workflow")
app.add_typer(tenant_app, name="tenant")
app.add_typer(principal_app, name="principal")
app.add_typer(keys_app, name="keys")
app.add_typer(policy_app, name="policy")
app.add_typer(quota_app, name="quota")
app.add_typer(audit_app, name="audit")
app.add_typer(config_app, name="config")
app.add_typer(db_app, name="db")
err = Console(stderr=True)


@app.command()
def up(
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML config file (or LIMIT_CONFIG).")
    ] = None,
    bind: Annotated[str | None, typer.Option("--bind", help="host:port (or BIND_ADDRESS).")] = None,
    ssl_certfile: Annotated[
        Path | None, typer.Option("--ssl-certfile", help="Serve TLS with this certificate.")
    ] = None,
    ssl_keyfile: Annotated[
        Path | None, typer.Option("--ssl-keyfile", help="The certificate's private key.")
    ] = None,
    prefect: Annotated[
        bool,
        typer.Option(
            "--prefect/--no-prefect",
            help="Start a Prefect server (unless prefect.api_url names one), register "
            "the platform with it and start a worker per pool.",
        ),
    ] = True,
) -> None:
    """Start Prefect, its workers and the platform; serve the REST API until Ctrl-C.

    The API runs in this process, or in `server.workers` processes on the one port.
    """
    from limit_graph.cli.serve import serve

    serve(config, bind, ssl_certfile, ssl_keyfile, prefect=prefect)


@app.command("exec")
def exec_agent(
    session_id: str,
    agent: str,
    inputs: Annotated[str, typer.Option(help="Agent inputs as a JSON object.")] = "{}",
    backend: Annotated[str | None, typer.Option(help="local, remote or quantum.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Execution timeout.")] = None,
    wait_s: Annotated[float, typer.Option(help="How long to wait for the result.")] = 30.0,
    idempotency_key: Annotated[str | None, typer.Option(help="Run at most once.")] = None,
    fan_out: Annotated[
        list[str] | None, typer.Option(help="Run on this backend instance too (repeatable).")
    ] = None,
    allow_cached: Annotated[
        bool, typer.Option(help="A deterministic agent may answer from the cache.")
    ] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Execute AGENT in SESSION_ID and print the execution (exit 2 if it did not succeed)."""
    try:
        parsed = json.loads(inputs)
    except json.JSONDecodeError as exc:
        raise CliError(f"--inputs is not valid JSON: {exc}") from None
    body: dict[str, Any] = {"agent": agent, "inputs": parsed, "wait_s": wait_s}
    for key, value in (
        ("backend", backend),
        ("timeout_s", timeout_s),
        ("idempotency_key", idempotency_key),
        ("fan_out", fan_out or None),
        ("allow_cached", allow_cached or None),
    ):
        if value is not None:
            body[key] = value
    execution = call(url, api_key, "POST", f"/sessions/{session_id}/execute", json=body)
    print_json(execution)
    if execution["state"] not in ("succeeded", "queued", "running", "partial"):
        raise typer.Exit(2)


app.command("runner")(runner_command)
app.command("run")(run_command)
app.command("worker")(worker_command)
workflow_app.command("deploy")(deploy_command)


@app.command("watch")
def watch(
    session_id: Annotated[str | None, typer.Argument(help="The session to watch.")] = None,
    session: Annotated[
        str | None, typer.Option("--session", help="The session (instead of SESSION_ID).")
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", help="Watch this workflow run's steps (exit 1 unless it succeeds)."
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep watching after the queue empties.")
    ] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Show a session's executions live until none runs; with --workflow, a run's steps."""
    from limit_graph.cli.inputs import require_uuid
    from limit_graph.cli.watch import watch_session, watch_workflow

    if session_id and session and session_id != session:
        raise CliError("name the session once: SESSION_ID or --session")
    target = session_id or session
    if target is None:
        raise CliError("which session? limit watch SESSION_ID [--workflow RUN_ID]")
    if workflow is not None and follow:
        raise CliError("--follow watches a session; a workflow run is watched until it ends")
    client = open_client(url, api_key)
    try:
        if workflow is None:
            watch_session(client, target, follow=follow, console=Console())
            return
        run = watch_workflow(client, require_uuid(target, "session"), workflow, Console())
    finally:
        client.close()
    if run.state != "succeeded":
        raise typer.Exit(1)


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the benchmarks of a source checkout (same as `make bench`; options pass through)."""
    import subprocess

    here = Path.cwd()
    if not (here / "bench" / "__main__.py").exists():
        raise CliError("`limit bench` runs from the root of a LIMIT-Graph source checkout")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", *ctx.args], cwd=here))


def main() -> None:
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
