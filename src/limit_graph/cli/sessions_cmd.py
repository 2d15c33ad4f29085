"""``limit session``: create, list, inspect, finish, archive and restore sessions.

Examples::

    limit session create --tag demo
    limit session list --state active
    limit session results <session-id> --json
    limit session archive <session-id>        # bundle saved under LIMIT_HOME/archives/
    limit session restore .limit/archives/<session-id>.json
    limit session grant <session-id> --group reviewers --permission read
    limit session grants <session-id>
    limit session revoke-grant <session-id> <grant-id>
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from limit_graph.cli.client import CliError
from limit_graph.cli.inputs import parse_policies, parse_quotas, require_uuid
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption, call
from limit_graph.cli.output import print_json, print_listing, print_text, tell
from limit_graph.cli.target import Configuration, open_client
from limit_graph.core.identity import GrantPermission

__all__ = ["session_app"]

session_app = typer.Typer(
    help="Create, inspect, finish, archive and restore sessions; grant others access."
)


@session_app.command("create")
def session_create(
    name: Annotated[str | None, typer.Option(help="A name; default session-<id>.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    backend: Annotated[
        list[str] | None, typer.Option(help="Allowed backend kind (repeatable).")
    ] = None,
    default_backend: Annotated[str | None, typer.Option(help="Backend used by default.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Default execution timeout.")] = None,
    quota: Annotated[
        list[str] | None,
        typer.Option(
            help="A quota for the session's life, RESOURCE=LIMIT (repeatable): executions, "
            "concurrent, shots, qpu_seconds, storage_bytes."
        ),
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help='A compliance check, as JSON (\'{"check": "circuit-limits", "max_qubits": 7}\') '
            "or @FILE holding one or a list, JSON or YAML (repeatable)."
        ),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Create a session and print it."""
    config: dict[str, Any] = {"tags": tag or []}
    if quota:
        config["quotas"] = parse_quotas(quota)
    if policy:
        config["policies"] = parse_policies(policy)
    if backend:
        config["backends"] = backend
    if default_backend:
        config["default_backend"] = default_backend
    if timeout_s:
        config["timeout_s"] = timeout_s
    body: dict[str, Any] = {"config": config}
    if name:
        body["name"] = name
    print_json(call(url, api_key, "POST", "/sessions", json=body))


@session_app.command("list")
def session_list(
    state: Annotated[str | None, typer.Option(help="Only sessions in this state.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only sessions with this tag.")] = None,
    limit: Annotated[int, typer.Option(help="How many at most.")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List sessions, oldest first (tab-separated when not on a terminal)."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if tag:
        params["tag"] = tag
    print_listing(
        call(url, api_key, "GET", "/sessions", params=params),
        ("id", "name", "state", "tags", "created"),
        lambda s: (
            s["id"],
            s["name"],
            s["state"],
            ",".join(s["config"]["tags"]),
            s["created_at"][:19],
        ),
        as_json=as_json,
        noun="sessions",
    )


@session_app.command("show")
def session_show(session_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Print one session and its execution counts, as JSON."""
    client = open_client(url, api_key)
    try:
        session = client.request("GET", f"/sessions/{session_id}")
        status = client.request("GET", f"/sessions/{session_id}/status")
    finally:
        client.close()
    print_json({**session, "counts": status["counts"]})


@session_app.command("results")
def session_results(
    session_id: str,
    state: Annotated[str | None, typer.Option(help="Only executions in this state.")] = None,
    limit: Annotated[int, typer.Option(help="How many at most.")] = 50,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List a session's executions, oldest first, with their results."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    print_listing(
        call(url, api_key, "GET", f"/sessions/{session_id}/results", params=params),
        ("id", "agent", "backend", "state", "result"),
        lambda e: (
            e["id"],
            e["agent"],
            f"{e['backend']}/{e['instance']}",
            e["state"],
            json.dumps(e["result"] if e["error"] is None else e["error"]),
        ),
        as_json=as_json,
        noun="executions",
    )


@session_app.command("complete")
def session_complete(session_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Mark an active session completed."""
    print_json(call(url, api_key, "POST", f"/sessions/{session_id}/complete"))


@session_app.command("delete")
def session_delete(session_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Delete a session (its provenance stays)."""
    call(url, api_key, "DELETE", f"/sessions/{session_id}")
    print_text(f"deleted {session_id}")


@session_app.command("archive")
def session_archive(
    session_id: str,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write the bundle (default <home>/archives/<id>.json)."
        ),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Archive a session and save its bundle to a file; print the summary and the file."""
    try:
        sid = uuid.UUID(session_id)
    except ValueError:
        raise CliError(f"{session_id!r} is not a session id (a UUID)") from None
    configuration = Configuration()
    client = open_client(url, api_key, configuration)
    target = (output or configuration.home / "archives" / f"{sid}.json").absolute()
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"cannot write the bundle to {target}: {exc}") from None
        summary = client.request("POST", f"/sessions/{sid}/archive")
        bundle = client.request("GET", f"/sessions/{sid}/archive")
    finally:
        client.close()
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
        os.replace(partial, target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(
            f"session {session_id} is archived but its bundle could not be saved to "
            f"{target}: {exc}; GET /sessions/{session_id}/archive returns it"
        ) from None
    print_json({**summary, "bundle_file": str(target)})
    tell(f"bundle saved to {target}")


@session_app.command("restore")
def session_restore(bundle: Path, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Restore a session from an archive bundle file (every hash is verified)."""
    try:
        document = json.loads(bundle.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"cannot read bundle {bundle}: {exc}") from None
    print_json(call(url, api_key, "POST", "/sessions/restore", json=document))


@session_app.command("grant")
def session_grant(
    session_id: str,
    permission: Annotated[
        GrantPermission,
        typer.Option("--permission", help="read, execute (implies read) or admin (all)."),
    ],
    principal: Annotated[
        str | None, typer.Option("--principal", help="Grant this principal (its id).")
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Grant every member of this group.")
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Let a principal or a group of the session's tenant read, execute in or administer
    the session; print the grant."""
    sid = require_uuid(session_id, "session")
    if (principal is None) == (group is None):
        raise CliError("grant to one: --principal ID or --group NAME")
    body: dict[str, Any] = {"permission": permission.value}
    if principal is not None:
        body["principal_id"] = require_uuid(principal, "principal")
    else:
        body["group"] = group
    print_json(call(url, api_key, "POST", f"/sessions/{sid}/grants", json=body))


@session_app.command("grants")
def session_grants(
    session_id: str,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List who was granted what on a session (its owner holds admin without a grant)."""
    sid = require_uuid(session_id, "session")
    print_listing(
        call(url, api_key, "GET", f"/sessions/{sid}/grants"),
        ("id", "permission", "to", "granted by", "created"),
        lambda g: (
            g["id"],
            g["permission"],
            f"principal {g['principal_id']}" if g["principal_id"] else f"group {g['group']}",
            g["created_by"],
            g["created_at"][:19],
        ),
        as_json=as_json,
        noun="grants",
    )


@session_app.command("revoke-grant")
def session_revoke_grant(
    session_id: str, grant_id: str, url: UrlOption = None, api_key: KeyOption = None
) -> None:
    """Take a grant back; what it allowed is refused from the next request."""
    sid, gid = require_uuid(session_id, "session"), require_uuid(grant_id, "grant")
    call(url, api_key, "DELETE", f"/sessions/{sid}/grants/{gid}")
    print_text(f"revoked grant {gid} on session {sid}")
