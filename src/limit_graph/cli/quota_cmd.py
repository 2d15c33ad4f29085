"""``limit quota``: the quotas that apply to you, and (as an admin) setting them.

Examples::

    limit quota show                              # your tenant's and your own
    limit quota show --session 3f2a…              # and that session's
    limit quota set tenant:acme --shots 100000 --qpu-seconds 600 --period day
    limit quota set principal:5b1e… --concurrent 2
    limit quota set principal:5b1e…               # no limits: removes its quotas

>>> quota_limits(shots=1000, period="day")
{'shots': 1000, 'period': 'day'}
>>> format_amount("qpu_seconds", 12.5), format_amount("shots", 1000.0)
('12.5 s', '1,000')
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from limit_graph.cli.options import JsonOption, KeyOption, UrlOption, call
from limit_graph.cli.output import print_json, print_listing, tell

__all__ = ["format_amount", "quota_app", "quota_limits"]

quota_app = typer.Typer(help="Show the quotas that apply to you; set a tenant's or principal's.")


def quota_limits(**given: Any) -> dict[str, Any]:
    """The body of ``PUT /quotas/{scope}``: the limits given, none of the absent ones."""
    return {name: value for name, value in given.items() if value is not None}


def format_amount(resource: str, value: float) -> str:
    """An amount as people read it: whole counts with separators, seconds with a unit."""
    if resource == "qpu_seconds":
        return f"{value:g} s"
    return f"{int(value):,}"


@quota_app.command("show")
def quota_show(
    session: Annotated[
        uuid.UUID | None, typer.Option("--session", help="Also show this session's quotas.")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Each quota that applies to you: its limit, what is used and reserved, its reset."""
    params = {"session_id": str(session)} if session is not None else None
    listing = call(url, api_key, "GET", "/quotas", params=params)
    if not listing["items"] and not as_json:
        tell("no quota applies to you")
        return
    print_listing(
        listing,
        ("scope", "resource", "limit", "used", "reserved", "resets"),
        lambda q: (
            q["scope"],
            q["resource"],
            format_amount(q["resource"], q["limit"]),
            format_amount(q["resource"], q["used"]),
            format_amount(q["resource"], q["reserved"]),
            (q.get("resets_at") or "never")[:19],
        ),
        as_json=as_json,
        noun="quotas",
    )


@quota_app.command("set")
def quota_set(
    scope: Annotated[str, typer.Argument(help="tenant:<name> or principal:<id>.")],
    executions: Annotated[int | None, typer.Option(min=0, help="Executions per period.")] = None,
    concurrent: Annotated[int | None, typer.Option(min=0, help="Executions at once.")] = None,
    shots: Annotated[int | None, typer.Option(min=0, help="Shots per period.")] = None,
    qpu_seconds: Annotated[
        float | None, typer.Option("--qpu-seconds", min=0, help="QPU seconds per period.")
    ] = None,
    storage_bytes: Annotated[
        int | None, typer.Option("--storage-bytes", min=0, help="Bytes stored per period.")
    ] = None,
    period: Annotated[
        str | None, typer.Option(help="hour, day or month (UTC): what counts reset after.")
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Replace SCOPE's quotas with the limits given (none given: remove them)."""
    body = quota_limits(
        executions=executions,
        concurrent=concurrent,
        shots=shots,
        qpu_seconds=qpu_seconds,
        storage_bytes=storage_bytes,
        period=period,
    )
    answer = call(url, api_key, "PUT", f"/quotas/{scope}", json=body)
    if as_json:
        print_json(answer)
        return
    limits = {k: v for k, v in answer["limits"].items() if k != "period"}
    if not limits:
        tell(f"{answer['scope']} has no quotas now")
        return
    every = f" per {answer['limits']['period']}" if answer["limits"].get("period") else ""
    shown = ", ".join(f"{k} {format_amount(k, v)}" for k, v in limits.items())
    tell(f"{answer['scope']}: {shown}{every}")
