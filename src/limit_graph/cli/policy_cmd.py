"""``limit policy``: the Cedar policies that decide who may do what, listed and changed.

A policy is written from a file of Cedar text; the server validates it against the
entity schema before storing it as the policy's next version, so a policy that does
not validate changes nothing, and each of its problems is printed.

Examples::

    limit policy list
    limit policy show no-archived-work           # its versions
    limit policy show no-archived-work --text > no-archived-work.cedar
    limit policy apply no-archived-work.cedar    # the id is the file's stem
    limit policy apply - --id no-archived-work --expected-version 1 < edited.cedar

>>> leading_comment("// No deletes.\\n// Archive instead.\\nforbid (principal, action, resource);")
'No deletes. Archive instead.'
>>> problem_lines([{"loc": ["policy", "p", "statement", 1], "msg": "unknown action"},
...     {"loc": ["policy", "p"], "msg": "unexpected token"}])
['statement 2  unknown action', '-            unexpected token']
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from limit_graph.cli.client import CliError
from limit_graph.cli.options import JsonOption, KeyOption, UrlOption, call
from limit_graph.cli.output import print_json, print_listing, print_text, tell
from limit_graph.cli.target import open_client
from limit_graph.client import InvalidInputError

__all__ = ["leading_comment", "policy_app", "problem_lines", "read_policy_text"]

policy_app = typer.Typer(help="List, show and apply the Cedar policies that decide access.")

_POLICY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def read_policy_text(file: str) -> str:
    """The Cedar text of ``file`` (``-``: standard input), or a one-line :class:`CliError`."""
    if file == "-":
        text = sys.stdin.read()
        where = "standard input"
    else:
        path = Path(file)
        where = f"policy file {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CliError(f"cannot read {where}: no such file") from None
        except IsADirectoryError:
            raise CliError(f"cannot read {where}: it is a folder") from None
        except UnicodeDecodeError as exc:
            raise CliError(f"cannot read {where}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise CliError(f"cannot read {where}: {exc.strerror or exc}") from None
    if not text.strip():
        raise CliError(f"{where} is empty: a policy needs at least one statement")
    return text


def leading_comment(text: str) -> str:
    """The ``//`` comment lines that open a Cedar text, joined: its description, as the
    shipped default policies take theirs."""
    lines = []
    for line in text.strip().splitlines():
        stripped = line.strip()
        if not stripped.startswith("//"):
            break
        lines.append(stripped[2:].strip())
    return " ".join(line for line in lines if line)


def _check_id(policy_id: str, origin: str) -> str:
    if not _POLICY_ID.fullmatch(policy_id):
        raise CliError(
            f"policy id {policy_id!r} (from {origin}) must be 1-128 letters, digits, '.', "
            "'_' or '-', starting with a letter or digit"
        )
    return policy_id


def _policy_id(file: str, given: str | None) -> str:
    """The id a file is applied as: ``--id``, else the file's stem."""
    if given is not None:
        return _check_id(given, "--id")
    if file == "-":
        raise CliError("a policy read from standard input needs --id")
    return _check_id(Path(file).stem, f"the name of {file}; --id names another")


def problem_lines(problems: Iterable[Mapping[str, Any]]) -> list[str]:
    """One ``where  message`` line per problem the server found; ``where`` is the
    statement, counted from 1 in the file's order, or ``-`` for the whole text."""
    rows = []
    for problem in problems:
        loc = list(problem.get("loc") or [])
        if len(loc) >= 4 and loc[2] == "statement" and isinstance(loc[3], int):
            where = f"statement {loc[3] + 1}"
        elif loc[:1] == ["policy_id"]:
            where = "id"
        else:
            where = "-"
        rows.append((where, str(problem.get("msg", ""))))
    width = max((len(where) for where, _ in rows), default=0)
    return [f"{where:<{width}}  {msg}" for where, msg in rows]


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _scope(policy: Mapping[str, Any]) -> str:
    return str(policy["tenant"]) if policy.get("tenant") else "platform"


@policy_app.command("list")
def policy_list(
    as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None
) -> None:
    """List the policies in force for the caller: the platform's and its tenant's."""
    print_listing(
        call(url, api_key, "GET", "/policies"),
        ("id", "version", "scope", "updated by", "updated", "description"),
        lambda p: (
            p["id"],
            str(p["version"]),
            _scope(p),
            p["updated_by"],
            p["updated_at"][:19],
            _first_line(p["description"]),
        ),
        as_json=as_json,
        noun="policies",
    )


@policy_app.command("show")
def policy_show(
    policy_id: str,
    text: Annotated[
        bool, typer.Option("--text", help="Print the newest version's Cedar text instead.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List every version of POLICY_ID, oldest first (--text: the newest's Cedar text)."""
    if text and as_json:
        raise CliError("--text prints the Cedar text, --json the versions: choose one")
    versions = call(url, api_key, "GET", f"/policies/{_check_id(policy_id, 'POLICY_ID')}/versions")
    if text:
        sys.stdout.write(versions["items"][-1]["text"].rstrip("\n") + "\n")
        return
    print_listing(
        versions,
        ("version", "scope", "updated by", "updated", "description"),
        lambda p: (
            str(p["version"]),
            _scope(p),
            p["updated_by"],
            p["updated_at"][:19],
            _first_line(p["description"]),
        ),
        as_json=as_json,
        noun="versions",
    )


@policy_app.command("apply")
def policy_apply(
    file: Annotated[str, typer.Argument(help="A file of Cedar text; - reads standard input.")],
    policy_id: Annotated[
        str | None, typer.Option("--id", help="The policy's id (default: the file's stem).")
    ] = None,
    expected_version: Annotated[
        int | None,
        typer.Option(
            "--expected-version",
            min=0,
            help="Refuse unless the policy is at this version now (0: it must be new).",
        ),
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(
            "--description", help="What the policy is for (default: its leading // comment)."
        ),
    ] = None,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Write FILE as the next version of a policy of the caller's tenant (a new policy
    starts at version 1) and print it; if it does not validate, print each problem,
    store nothing and exit 1."""
    text = read_policy_text(file)
    pid = _policy_id(file, policy_id)
    body: dict[str, Any] = {
        "text": text,
        "description": leading_comment(text) if description is None else description,
    }
    if expected_version is not None:
        body["expected_version"] = expected_version
    client = open_client(url, api_key)
    try:
        with client.errors() as sdk:
            try:
                stored = sdk.request("PUT", f"/policies/{pid}", json=body)
            except InvalidInputError as exc:
                if not any(list(e.get("loc") or [])[:1] == ["policy"] for e in exc.errors):
                    raise
                for line in problem_lines(exc.errors):
                    print_text(line)
                count = len(exc.errors)
                tell(
                    f"policy {pid} is not valid: {count} problem{'s' if count != 1 else ''}; "
                    "nothing was stored"
                )
                raise typer.Exit(1) from None
    finally:
        client.close()
    print_json(stored)
    tell(f"policy {pid} is at version {stored['version']}")
