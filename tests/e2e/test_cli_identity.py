"""`limit tenant`, `principal`, `keys`, `policy` and the session grants, as people drive
them: the real CLI against one real `limit up` for the module, read back over REST.

Each test makes a tenant of its own, so they share the server without sharing state.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.cli import LIMIT, Server, start
from tests.fixtures.identity import Member

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "governance.md"
WORKED_EXAMPLE = re.compile(r"^```sh worked-example\n(.*?)^```", re.S | re.M)
BAD_POLICY = (
    'forbid (principal, action == Action::"session.remove", resource);\n'
    "forbid (principal, action, resource) when { principal.bogus };\n"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start(tmp_path_factory.mktemp("identity"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    return (server.cwd / ".limit" / "admin.key").read_text().strip()


def rest(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"X-API-Key": key}, timeout=30)


def as_caller(
    server: Server, who: Member | str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`limit ARGS` with ``who``'s key (or a token) as LIMIT_API_KEY."""
    key = who.key if isinstance(who, Member) else who
    return subprocess.run(
        [LIMIT, *args],
        cwd=server.cwd,
        env={**server.env, "LIMIT_API_KEY": key},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def json_documents(text: str) -> list[Any]:
    """The JSON documents printed one after another."""
    decoder, found = json.JSONDecoder(), []
    while text.strip():
        document, end = decoder.raw_decode(text.lstrip())
        found.append(document)
        text = text.lstrip()[end:]
    return found


def tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


def member(server: Server, admin_key: str, tenant: str, name: str, *roles: str) -> Member:
    """A user of ``tenant`` (made when missing) with ``roles`` and a new key.  Set up over
    REST, as the platform admin, where the CLI is not what a test is about."""
    with rest(server, admin_key) as http:
        if http.post("/tenants", json={"name": tenant}).status_code not in (201, 409):
            raise AssertionError(f"cannot make tenant {tenant}")
        made = http.post(
            "/principals",
            json={"name": name, "tenant": tenant, "kind": "user", "roles": list(roles)},
        )
        assert made.status_code == 201, made.text
        key = http.post("/keys", json={"principal_id": made.json()["id"]})
        assert key.status_code == 201, key.text
    return Member(key.json()["key"], name, tenant, made.json()["id"])


def key_id(who: Member) -> str:
    return who.key.split("_")[1]


def new_session(server: Server, who: Member) -> str:
    with rest(server, who.key) as http:
        session = http.post("/sessions", json={"config": {}})
    assert session.status_code == 201, session.text
    return str(session.json()["id"])


@pytest.mark.skipif(shutil.which("jq") is None, reason="the worked example pipes into jq")
def test_the_worked_example_runs_as_documented(server: Server, admin_key: str) -> None:
    (script,) = WORKED_EXAMPLE.findall(GUIDE.read_text(encoding="utf-8"))
    env = {**server.env, "PATH": f"{Path(LIMIT).parent}{os.pathsep}{server.env['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script + 'echo "ids $ALICE $BOB $SESSION $BOB_KEY"\n'],
        cwd=server.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ids = done.stdout.strip().splitlines()[-1].split()
    assert ids[0] == "ids"
    alice, bob, session, bob_key = ids[1:]
    printed = json_documents(done.stdout[: done.stdout.rindex("ids ")])
    assert printed[0]["name"] == "acme"  # limit tenant create's record
    execution = printed[-1]
    assert execution["state"] == "succeeded" and execution["result"] == {"hello": "acme"}
    assert "shown this once and will not be shown again" in done.stderr

    with rest(server, admin_key) as http:
        people = http.get("/principals", params={"tenant": "acme"}).json()["items"]
        assert {(p["id"], p["name"], tuple(p["roles"])) for p in people} == {
            (alice, "alice", ("admin",)),
            (bob, "bob", ("author",)),
        }
        (record,) = http.get("/keys", params={"principal_id": bob}).json()["items"]
        assert bob_key.startswith(f"lgk_{record['id']}_")
        assert record["expires_at"] is not None and record["revoked_at"] is None
        assert http.get(f"/sessions/{session}").status_code == 404  # not the admin's tenant
    with rest(server, bob_key) as http:
        made = http.get(f"/sessions/{session}").json()
        assert made["owner"] == "bob" and made["tenant"] == "acme"
        results = http.get(f"/sessions/{session}/results").json()["items"]
        assert [(e["agent"], e["state"]) for e in results] == [("echo", "succeeded")]


def test_a_service_accounts_token_works_where_a_key_does(server: Server, admin_key: str) -> None:
    boss = member(server, admin_key, "tokens-co", "boss", "admin")
    made = as_caller(
        server, boss, "principal", "create", "ci", "--tenant", "tokens-co",
        "--kind", "service", "--role", "author",
    )  # fmt: skip
    account = ok_json(made)
    assert account["kind"] == "service" and account["client_id"] and account["client_secret"]
    assert "shown this once" in made.stderr and account["client_id"] in made.stderr
    listed = as_caller(server, boss, "principal", "list", "--json")
    assert account["client_secret"] not in listed.stdout
    assert account["client_id"] in listed.stdout

    answer = httpx.post(
        server.url + "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": account["client_id"],
            "client_secret": account["client_secret"],
        },
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]

    session = ok_json(as_caller(server, token, "session", "create", "--name", "from-ci"))
    assert session["owner"] == "ci" and session["tenant"] == "tokens-co"
    ran = server.limit(
        "exec", session["id"], "echo", "--inputs", '{"via": "token"}', "--api-key", token
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == {"via": "token"}

    header, payload, signature = token.split(".")
    forged = f"{header}.{payload[:-4]}{'AAAA' if payload[-4:] != 'AAAA' else 'BBBB'}.{signature}"
    refused = as_caller(server, forged, "session", "list")
    assert refused.returncode == 1 and "Authentication required (401)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_revoked_key_fails_on_the_next_command(server: Server, admin_key: str) -> None:
    boss = member(server, admin_key, "revokers", "boss", "admin")
    author = member(server, admin_key, "revokers", "ann", "author")
    assert as_caller(server, author, "session", "list").returncode == 0

    revoked = as_caller(server, boss, "keys", "revoke", key_id(author))
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == f"revoked key {key_id(author)}"
    refused = as_caller(server, author, "session", "list")
    assert refused.returncode == 1
    assert f"(401): API key {key_id(author)} was revoked" in refused.stderr
    assert "Authentication required" in refused.stderr and "Traceback" not in refused.stderr

    second = ok_json(as_caller(server, boss, "keys", "create", "--principal", boss.id))
    whole = as_caller(server, boss, "keys", "revoke", second["key"])  # only its id is sent
    assert whole.stdout.strip() == f"revoked key {second['id']}"
    table = tsv(as_caller(server, boss, "keys", "list").stdout)
    assert table[0] == ["id", "principal", "state", "scopes", "expires", "last used"]
    states = {row[0]: row[2] for row in table[1:]}
    assert states[key_id(author)] == "revoked" and states[second["id"]] == "revoked"
    assert states[key_id(boss)] == "active"
    with rest(server, admin_key) as http:
        keys = http.get("/keys", params={"principal_id": boss.id}).json()["items"]
    assert {k["id"]: k["revoked_at"] is not None for k in keys}[second["id"]]


def test_policy_apply_validates_then_versions(
    server: Server, admin_key: str, tmp_path: Path
) -> None:
    boss = member(server, admin_key, "policy-co", "boss", "admin")
    bad = tmp_path / "pc-no-deletes.cedar"
    bad.write_text(BAD_POLICY)
    refused = as_caller(server, boss, "policy", "apply", str(bad))
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        'statement 1  unrecognized action `Action::"session.remove"`',
        "statement 1  unable to find an applicable action given the policy scope constraints",
        "statement 2  attribute `bogus` on entity type `Principal` not found",
    ]
    assert "3 problems; nothing was stored" in refused.stderr
    missing = as_caller(server, boss, "policy", "show", "pc-no-deletes")
    assert missing.returncode == 1 and "Not found (404)" in missing.stderr

    good = tmp_path / "pc-no-deletes.cedar"
    good.write_text(
        "// Nothing is deleted in policy-co: archive instead.\n"
        'forbid (principal, action == Action::"session.delete", resource);\n'
    )
    first = ok_json(
        as_caller(server, boss, "policy", "apply", str(good), "--expected-version", "0")
    )
    assert (first["id"], first["version"], first["tenant"]) == ("pc-no-deletes", 1, "policy-co")
    assert first["description"] == "Nothing is deleted in policy-co: archive instead."
    second = ok_json(
        as_caller(
            server, boss, "policy", "apply", "-", "--id", "pc-no-deletes",
            "--expected-version", "1", "--description", "no deletes", stdin=good.read_text(),
        )
    )  # fmt: skip
    assert second["version"] == 2
    stale = as_caller(server, boss, "policy", "apply", str(good), "--expected-version", "1")
    assert stale.returncode == 1 and "Conflict (409)" in stale.stderr

    versions = ok_json(as_caller(server, boss, "policy", "show", "pc-no-deletes", "--json"))
    assert [(v["version"], v["description"]) for v in versions["items"]] == [
        (1, "Nothing is deleted in policy-co: archive instead."),
        (2, "no deletes"),
    ]
    text = as_caller(server, boss, "policy", "show", "pc-no-deletes", "--text")
    assert text.stdout == good.read_text()
    listed = tsv(as_caller(server, boss, "policy", "list").stdout)
    assert listed[0] == ["id", "version", "scope", "updated by", "updated", "description"]
    rows = {row[0]: row for row in listed[1:]}
    assert rows["pc-no-deletes"][1:4] == ["2", "policy-co", "boss"]
    assert rows["tenant-isolation"][2] == "platform"

    session = new_session(server, boss)
    denied = as_caller(server, boss, "session", "delete", session)
    assert denied.returncode == 1 and "Denied by policy (403)" in denied.stderr
    assert "denied by: policy-co/pc-no-deletes" in denied.stderr


def test_session_grants_from_the_cli(server: Server, admin_key: str) -> None:
    owner = member(server, admin_key, "sharers", "olga", "author")
    other = member(server, admin_key, "sharers", "carl", "author")
    carl = other.id
    session = new_session(server, owner)
    before = as_caller(server, other, "exec", session, "echo", "--inputs", "{}")
    assert before.returncode == 1 and "Denied by policy (403)" in before.stderr

    grant = ok_json(
        as_caller(
            server, owner, "session", "grant", session, "--principal", carl,
            "--permission", "execute",
        )
    )  # fmt: skip
    assert (grant["principal_id"], grant["permission"]) == (carl, "execute")
    group = ok_json(
        as_caller(
            server, owner, "session", "grant", session, "--group", "reviewers",
            "--permission", "read",
        )
    )  # fmt: skip
    ran = as_caller(server, other, "exec", session, "echo", "--inputs", '{"by": "carl"}')
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"] == {"by": "carl"}

    table = tsv(as_caller(server, owner, "session", "grants", session).stdout)
    assert table[0] == ["id", "permission", "to", "granted by", "created"]
    assert sorted(row[:4] for row in table[1:]) == sorted(
        [
            [grant["id"], "execute", f"principal {carl}", "olga"],
            [group["id"], "read", "group reviewers", "olga"],
        ]
    )
    gone = as_caller(server, owner, "session", "revoke-grant", session, grant["id"])
    assert gone.returncode == 0, gone.stderr
    after = as_caller(server, other, "exec", session, "echo", "--inputs", "{}")
    assert after.returncode == 1 and "Denied by policy (403)" in after.stderr
    left = ok_json(as_caller(server, owner, "session", "grants", session, "--json"))
    assert [g["id"] for g in left["items"]] == [group["id"]]


def test_listings_print_tables_or_json(server: Server, admin_key: str) -> None:
    boss = member(server, admin_key, "listers", "boss", "admin")
    tenants = ok_json(server.limit("tenant", "list", "--json"))
    assert "listers" in {t["name"] for t in tenants["items"]}
    table = tsv(server.limit("tenant", "list").stdout)
    assert table[0] == ["id", "name", "created"] and "listers" in {r[1] for r in table[1:]}

    people = ok_json(as_caller(server, boss, "principal", "list", "--json"))
    assert [p["name"] for p in people["items"]] == ["boss"]
    assert people["next_cursor"] is None
    table = tsv(server.limit("principal", "list", "--tenant", "listers").stdout)
    assert table == [
        ["id", "name", "tenant", "kind", "roles", "groups", "client_id"],
        [people["items"][0]["id"], "boss", "listers", "user", "admin", "", "-"],
    ]
    keys = ok_json(as_caller(server, boss, "keys", "list", "--json"))
    assert [k["id"] for k in keys["items"]] == [key_id(boss)]
    assert boss.key not in json.dumps(keys)
    policies = ok_json(as_caller(server, boss, "policy", "list", "--json"))
    assert "tenant-isolation" in {p["id"] for p in policies["items"]}


def test_bad_input_is_a_clear_error_and_changes_nothing(
    server: Server, admin_key: str, tmp_path: Path
) -> None:
    boss = member(server, admin_key, "typos", "boss", "admin")
    me = boss.id

    role = as_caller(
        server, boss, "principal", "create", "x", "--tenant", "typos", "--kind", "user",
        "--role", "boss",
    )  # fmt: skip
    assert role.returncode == 2 and "'--role'" in role.stderr and "'boss'" in role.stderr
    no_kind = as_caller(server, boss, "principal", "create", "x", "--tenant", "typos")
    assert no_kind.returncode == 2 and "'--kind'" in no_kind.stderr
    people = ok_json(as_caller(server, boss, "principal", "list", "--json"))
    assert [p["name"] for p in people["items"]] == ["boss"]

    for option, value, message in [
        ("--expires-in", "30x", "--expires-in '30x' is not a duration"),
        ("--expires-at", "2030-01-01T00:00:00", "has no time zone"),
        ("--expires-at", "2020-01-01T00:00:00Z", "is already past"),
    ]:
        done = as_caller(server, boss, "keys", "create", "--principal", me, option, value)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    not_an_id = as_caller(server, boss, "keys", "create", "--principal", "boss")
    assert not_an_id.returncode == 1 and "'boss' is not a principal id" in not_an_id.stderr
    keys = ok_json(as_caller(server, boss, "keys", "list", "--json"))
    assert [k["id"] for k in keys["items"]] == [key_id(boss)]

    missing = as_caller(server, boss, "policy", "apply", str(tmp_path / "absent.cedar"))
    assert missing.returncode == 1 and "absent.cedar: no such file" in missing.stderr
    no_id = as_caller(
        server, boss, "policy", "apply", "-", stdin="forbid (principal, action, resource);"
    )
    assert no_id.returncode == 1 and "needs --id" in no_id.stderr
    policies = ok_json(as_caller(server, boss, "policy", "list", "--json"))
    assert all(p["tenant"] is None for p in policies["items"])

    session = new_session(server, boss)
    both = as_caller(
        server, boss, "session", "grant", session, "--principal", me, "--group", "g",
        "--permission", "read",
    )  # fmt: skip
    assert both.returncode == 1 and "--principal ID or --group NAME" in both.stderr
    bad_permission = as_caller(
        server, boss, "session", "grant", session, "--group", "g", "--permission", "write"
    )
    assert bad_permission.returncode == 2 and "'--permission'" in bad_permission.stderr
    grants = ok_json(as_caller(server, boss, "session", "grants", session, "--json"))
    assert grants["items"] == []
