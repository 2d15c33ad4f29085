"""The ``limit`` command: serve the platform, and drive it over REST.

Examples::

    limit up
    limit session create --tag demo
    limit exec <session-id> echo --inputs '{"hello": "world"}'
    limit session archive <session-id> --output bundle.json
    limit session restore bundle.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from limit_graph.cli.client import ApiClient, CliError
from limit_graph.cli.prefect_cmd import prefect_app
from limit_graph.cli.prefect_cmd import worker as worker_command
from limit_graph.cli.runner_cmd import runner as runner_command

__all__ = ["app", "main"]

app = typer.Typer(help="LIMIT-Graph: governed workflows for hybrid quantum-classical work.")
session_app = typer.Typer(help="Create, inspect, finish, archive and restore sessions.")
app.add_typer(session_app, name="session")
app.add_typer(prefect_app, name="prefect")
out = Console()
err = Console(stderr=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="API address (default LIMIT_API_URL or :8080).")
]
KeyOption = Annotated[
    str | None,
    typer.Option("--api-key", help="API key (default LIMIT_API_KEY or .limit/admin.key)."),
]


def _call(url: str | None, key: str | None, method: str, path: str, **kwargs: Any) -> Any:
    client = ApiClient(url, key)
    try:
        return client.request(method, path, **kwargs)
    finally:
        client.close()


def _print_json(document: Any) -> None:
    out.print_json(json.dumps(document))


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
    """Start Prefect, its workers and the platform; serve the REST API until Ctrl-C."""
    from limit_graph.cli.serve import serve

    serve(config, bind, ssl_certfile, ssl_keyfile, prefect=prefect)


@session_app.command("create")
def session_create(
    name: Annotated[str | None, typer.Option(help="A name; default session-<id>.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    backend: Annotated[
        list[str] | None, typer.Option(help="Allowed backend kind (repeatable).")
    ] = None,
    default_backend: Annotated[str | None, typer.Option(help="Backend used by default.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Default execution timeout.")] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Create a session and print it."""
    config: dict[str, Any] = {"tags": tag or []}
    if backend:
        config["backends"] = backend
    if default_backend:
        config["default_backend"] = default_backend
    if timeout_s:
        config["timeout_s"] = timeout_s
    body: dict[str, Any] = {"config": config}
    if name:
        body["name"] = name
    _print_json(_call(url, api_key, "POST", "/sessions", json=body))


@session_app.command("list")
def session_list(
    state: Annotated[str | None, typer.Option(help="Only sessions in this state.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only sessions with this tag.")] = None,
    limit: Annotated[int, typer.Option(help="How many at most.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List sessions, oldest first."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if tag:
        params["tag"] = tag
    page = _call(url, api_key, "GET", "/sessions", params=params)
    if as_json:
        _print_json(page)
        return
    table = Table("name", "state", "tags", "created")
    table.add_column("id", no_wrap=True, min_width=36)
    for s in page["items"]:
        table.add_row(
            s["name"], s["state"], ",".join(s["config"]["tags"]), s["created_at"][:19], s["id"]
        )
    out.print(table)
    if page["next_cursor"]:
        out.print(f"more: --json shows next_cursor {page['next_cursor']}")


@session_app.command("show")
def session_show(session_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Print one session and its execution counts."""
    session = _call(url, api_key, "GET", f"/sessions/{session_id}")
    status = _call(url, api_key, "GET", f"/sessions/{session_id}/status")
    _print_json({**session, "counts": status["counts"]})


@session_app.command("complete")
def session_complete(session_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Mark an active session completed."""
    _print_json(_call(url, api_key, "POST", f"/sessions/{session_id}/complete"))


@session_app.command("delete")
def session_delete(session_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Delete a session (its provenance stays)."""
    _call(url, api_key, "DELETE", f"/sessions/{session_id}")
    out.print(f"deleted {session_id}")


@session_app.command("archive")
def session_archive(
    session_id: str,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Where to write the bundle.")
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Archive a session and save its bundle to a file."""
    summary = _call(url, api_key, "POST", f"/sessions/{session_id}/archive")
    bundle = _call(url, api_key, "GET", f"/sessions/{session_id}/archive")
    target = output or Path(f"session-{session_id}.archive.json")
    target.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
    _print_json({**summary, "bundle_file": str(target)})


@session_app.command("restore")
def session_restore(bundle: Path, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Restore a session from an archive bundle file (every hash is verified)."""
    try:
        document = json.loads(bundle.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read bundle {bundle}: {exc}") from None
    _print_json(_call(url, api_key, "POST", "/sessions/restore", json=document))


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
    execution = _call(url, api_key, "POST", f"/sessions/{session_id}/execute", json=body)
    _print_json(execution)
    if execution["state"] not in ("succeeded", "queued", "running", "partial"):
        raise typer.Exit(2)


app.command("runner")(runner_command)
app.command("worker")(worker_command)


@app.command("watch")
def watch(
    session_id: str,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep watching after the queue empties.")
    ] = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Show a session's executions by state, live, until none is queued or running."""
    from limit_graph.cli.watch import watch_session

    client = ApiClient(url, api_key)
    try:
        watch_session(client, session_id, follow=follow, console=out)
    finally:
        client.close()


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Run the benchmarks of a source checkout (same as `make bench`; options pass through)."""
    import subprocess

    here = Path.cwd()
    if not (here / "bench" / "__main__.py").exists():
        raise CliError("`limit bench` runs from the root of a LIMIT-Graph source checkout")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", *ctx.args], cwd=here))


@app.command("agents")
def list_agents(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """List the agents the platform can run."""
    table = Table("id", "version", "backends", "description")
    for agent in _call(url, api_key, "GET", "/agents")["items"]:
        table.add_row(
            agent["id"], agent["version"], ",".join(agent["backends"]), agent["description"]
        )
    out.print(table)


def main() -> None:
    try:
        app()
    except CliError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)
