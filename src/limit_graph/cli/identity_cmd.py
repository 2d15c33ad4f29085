"""``limit tenant``, ``limit principal`` and ``limit keys``: who may call the platform.

The platform admin (the key ``limit up`` prints) makes tenants and each tenant's first
admin; a tenant's admin makes its people, service accounts and keys.  A key, and a
service account's client secret, is printed once, when it is made, and never again.

Examples::

    limit tenant create acme
    limit principal create alice --tenant acme --kind user --role admin
    limit principal create ci --tenant acme --kind service --role author --group builds
    limit keys create --principal <principal-id> --expires-in 30d
    limit keys list --principal <principal-id>
    limit keys revoke <key-id>
    limit keys rotate-signing
    limit keys rotate-data
    limit keys data

>>> parse_duration("30d"), parse_duration("90m")
(datetime.timedelta(days=30), datetime.timedelta(seconds=5400))
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

import typer

from limit_graph.cli.client import CliError
from limit_graph.cli.inputs import require_uuid
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption, call
from limit_graph.cli.output import print_json, print_listing, print_text, tell
from limit_graph.core.identity import PrincipalKind, Role

__all__ = [
    "keys_app",
    "key_expiry",
    "parse_duration",
    "principal_app",
    "tenant_app",
]

tenant_app = typer.Typer(help="Make and list tenants (the platform admin).")
principal_app = typer.Typer(help="Make, list and delete a tenant's users and service accounts.")
keys_app = typer.Typer(
    help="Make, list and revoke API keys; rotate the token-signing key and the data keys."
)

LimitOption = Annotated[int, typer.Option("--limit", min=1, max=500, help="How many at most.")]
CursorOption = Annotated[
    str | None, typer.Option("--cursor", help="Start after this page (next_cursor of --json).")
]

_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_WHOLE_KEY = re.compile(r"^lgk_([0-9a-f]{12})_[A-Za-z0-9_-]+$")


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` or ``2w`` as a duration; anything else is a
    :class:`CliError` saying what is accepted."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise CliError(
            f"--expires-in {text!r} is not a duration: give a whole number and a unit, "
            "s, m, h, d or w (e.g. 30d, 12h)"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def key_expiry(
    expires_in: str | None, expires_at: str | None, now: datetime | None = None
) -> datetime | None:
    """When a new key expires: ``now`` plus ``--expires-in``, or ``--expires-at`` (ISO
    8601 with a time zone), or never; both given, or a time without a zone or already
    past, is a :class:`CliError`."""
    if expires_in is not None and expires_at is not None:
        raise CliError("give --expires-in or --expires-at, not both")
    now = now or datetime.now(UTC)
    if expires_in is not None:
        return now + parse_duration(expires_in)
    if expires_at is None:
        return None
    try:
        when = datetime.fromisoformat(expires_at.strip())
    except ValueError:
        raise CliError(
            f"--expires-at {expires_at!r} is not an ISO 8601 time (e.g. 2027-01-31T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise CliError(
            f"--expires-at {expires_at!r} has no time zone: add one (Z, +02:00) so it "
            "means the same on the server"
        )
    if when <= now:
        raise CliError(f"--expires-at {expires_at} is already past")
    return when


def _short(stamp: str | None) -> str:
    return stamp[:19] if stamp else "-"


# --- tenants ----------------------------------------------------------------------


@tenant_app.command("create")
def tenant_create(name: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Make tenant NAME (lower-case letters, digits, '.', '_', '-') and print it."""
    print_json(call(url, api_key, "POST", "/tenants", json={"name": name}))
    tell(
        "next, its first admin: "
        f"limit principal create NAME --tenant {name} --kind user --role admin"
    )


@tenant_app.command("list")
def tenant_list(
    as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None
) -> None:
    """List the tenants the caller may see."""
    print_listing(
        call(url, api_key, "GET", "/tenants"),
        ("id", "name", "created"),
        lambda t: (t["id"], t["name"], _short(t["created_at"])),
        as_json=as_json,
        noun="tenants",
    )


# --- principals -------------------------------------------------------------------


@principal_app.command("create")
def principal_create(
    name: str,
    tenant: Annotated[str, typer.Option("--tenant", help="Its tenant (name or id).")],
    kind: Annotated[
        PrincipalKind,
        typer.Option("--kind", help="user, or service (an account with a client id and secret)."),
    ],
    role: Annotated[
        list[Role] | None, typer.Option("--role", help="A role it holds (repeatable).")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option("--group", help="A group it belongs to (repeatable).")
    ] = None,
    pool: Annotated[
        list[str] | None,
        typer.Option("--pool", help="A runner's work pool (repeatable; none: every pool)."),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Make a user or a service account and print it; a service account's client secret
    is in it, shown this once."""
    body: dict[str, Any] = {
        "name": name,
        "tenant": tenant,
        "kind": kind.value,
        "roles": [r.value for r in role or ()],
        "groups": group or [],
    }
    if pool:
        body["pools"] = pool
    made = call(url, api_key, "POST", "/principals", json=body)
    print_json(made)
    if made.get("client_secret"):
        tell(
            f"the client secret of {made['client_id']} is shown this once and cannot be "
            "shown again: store it now (POST /auth/token exchanges it for a token)"
        )
    else:
        tell(f"next, a key for it: limit keys create --principal {made['id']}")


@principal_app.command("list")
def principal_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="This tenant's (default: the caller's).")
    ] = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List the principals of a tenant, oldest first."""
    params: dict[str, Any] = {"limit": limit}
    if tenant:
        params["tenant"] = tenant
    if cursor:
        params["cursor"] = cursor
    print_listing(
        call(url, api_key, "GET", "/principals", params=params),
        ("id", "name", "tenant", "kind", "roles", "groups", "client_id"),
        lambda p: (
            p["id"],
            p["name"],
            p["tenant"],
            p["kind"],
            ",".join(p["roles"]),
            ",".join(p["groups"]),
            p.get("client_id") or "-",
        ),
        as_json=as_json,
        noun="principals",
    )


@principal_app.command("delete")
def principal_delete(principal_id: str, url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Delete a principal: its keys are refused from now on, and so are its tokens."""
    pid = require_uuid(principal_id, "principal")
    call(url, api_key, "DELETE", f"/principals/{pid}")
    print_text(f"deleted principal {pid}")


# --- keys -------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    principal: Annotated[str, typer.Option("--principal", help="The principal's id.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="An action the key may do, e.g. session.read or session.* (repeatable; "
            "none: all its principal may).",
        ),
    ] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Expire after 45s, 90m, 12h, 30d or 2w.")
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="Expire at this ISO 8601 time, with its time zone."),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Make an API key for a principal and print it, this once."""
    pid = require_uuid(principal, "principal")
    expiry = key_expiry(expires_in, expires_at)
    body: dict[str, Any] = {"principal_id": pid, "scopes": scope or []}
    if expiry is not None:
        body["expires_at"] = expiry.isoformat()
    made = call(url, api_key, "POST", "/keys", json=body)
    print_json(made)
    tell(
        f"key {made['id']} is shown this once and will not be shown again: store it now "
        "(use it as --api-key or LIMIT_API_KEY)"
    )


def _key_state(key: dict[str, Any], now: datetime) -> str:
    if key.get("revoked_at"):
        return "revoked"
    expires = key.get("expires_at")
    if expires and datetime.fromisoformat(expires) <= now:
        return "expired"
    return "active"


@keys_app.command("list")
def keys_list(
    principal: Annotated[
        str | None, typer.Option("--principal", help="Only this principal's keys.")
    ] = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List API keys (never the keys themselves: their ids, owners, scopes and times)."""
    params: dict[str, Any] = {"limit": limit}
    if principal:
        params["principal_id"] = require_uuid(principal, "principal")
    if cursor:
        params["cursor"] = cursor
    now = datetime.now(UTC)
    print_listing(
        call(url, api_key, "GET", "/keys", params=params),
        ("id", "principal", "state", "scopes", "expires", "last used"),
        lambda k: (
            k["id"],
            k["principal_id"],
            _key_state(k, now),
            ",".join(k["scopes"]) or "*",
            _short(k["expires_at"]),
            _short(k["last_used_at"]),
        ),
        as_json=as_json,
        noun="keys",
    )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (the part after lgk_).")],
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Revoke an API key: every API process refuses it within a second."""
    whole = _WHOLE_KEY.fullmatch(key_id.strip())
    if whole is not None:  # never send a key's secret in a URL; its id names it
        key_id = whole.group(1)
    call(url, api_key, "DELETE", f"/keys/{quote(key_id, safe='')}")
    print_text(f"revoked key {key_id}")


@keys_app.command("rotate-signing")
def keys_rotate_signing(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Sign new tokens with a new key (platform admin); tokens signed with the old one
    keep working until they expire."""
    made = call(url, api_key, "POST", "/auth/signing-keys/rotate")
    print_json(made)
    tell(
        f"new tokens are signed with {made['kid']}; the old key stays in "
        "/.well-known/jwks.json until its tokens expire"
    )


@keys_app.command("rotate-data")
def keys_rotate_data(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """Seal with a new data key from now on and re-encrypt, in the background, what the
    older ones sealed (platform admin); the platform keeps serving meanwhile."""
    started = call(url, api_key, "POST", "/data-keys/rotate")
    print_json(started)
    retiring = ", ".join(started["retiring"]) or "none"
    tell(
        f"new records are sealed with {started['active']}; retiring once re-encrypted: "
        f"{retiring}. `limit keys data` shows the progress"
    )


@keys_app.command("data")
def keys_data(url: UrlOption = None, api_key: KeyOption = None) -> None:
    """The data keys of encryption at rest (never their material) and the progress of
    the latest rotation (platform admin)."""
    print_json(call(url, api_key, "GET", "/data-keys"))
