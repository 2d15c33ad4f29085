"""``limit agents``: what the platform can run, and each agent's input and output schemas.

Examples::

    limit agents                          # every version of every agent
    limit agents show quantum.sample      # its newest version
    limit agents show greet@1.0.0         # that version
    limit agents show echo --json | jq .input_schema
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import quote

import typer

from limit_graph.cli.options import JsonOption, KeyOption, UrlOption, call
from limit_graph.cli.output import print_json, print_listing, print_text

__all__ = ["agents_app"]

agents_app = typer.Typer(
    help="List the agents the platform can run; `show NAME` prints one's JSON Schemas.",
    invoke_without_command=True,
)


@agents_app.callback()
def list_agents(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """List the agents the platform can run, each version of each (`limit agents show
    NAME[@VERSION]` for one's schemas)."""
    if ctx.invoked_subcommand is not None:
        return
    page = call(url, api_key, "GET", "/agents")
    several = Counter(a["id"] for a in page["items"])
    print_listing(
        page,
        ("id", "version", "backends", "description"),
        lambda a: (
            a["id"],
            f"{a['version']} (newest)"
            if several[a["id"]] > 1 and a.get("latest")
            else a["version"],
            ",".join(a["backends"]),
            a["description"],
        ),
        as_json=as_json,
        noun="agents",
    )


@agents_app.command("show")
def show_agent(
    name: Annotated[str, typer.Argument(metavar="NAME[@VERSION]")],
    as_json: JsonOption = False,
    url: UrlOption = None,
    api_key: KeyOption = None,
) -> None:
    """Print agent NAME (its newest version, or VERSION): backends, input and output
    JSON Schemas."""
    agent_id, version = name.partition("@")[::2]
    params = {"version": version} if version else None
    agent = call(url, api_key, "GET", f"/agents/{quote(agent_id, safe='')}", params=params)
    if as_json:
        print_json(agent)
        return
    listing = call(url, api_key, "GET", "/agents")["items"]
    versions = [a["version"] for a in listing if a["id"] == agent["id"]]
    print_text(describe_agent(agent, versions))


def describe_agent(agent: dict[str, Any], versions: Sequence[str] = ()) -> str:
    """The agent as a person reads it: a header (with the ``versions`` there are, when
    several), then each schema as indented JSON.

    >>> print(describe_agent({"id": "echo", "version": "1", "description": "Echo.",
    ...     "backends": ["local"], "deterministic": True,
    ...     "input_schema": {"type": "object"}, "output_schema": {}}))
    echo 1 (backends: local; deterministic)
    Echo.
    <BLANKLINE>
    input schema:
    {
      "type": "object"
    }
    <BLANKLINE>
    output schema:
    {}
    >>> print(describe_agent({"id": "greet", "version": "1.0.0", "description": "Hi.",
    ...     "backends": ["local"], "input_schema": {}, "output_schema": {}},
    ...     ["1.0.0", "2.0.0"]).splitlines()[0])
    greet 1.0.0 (backends: local; versions: 1.0.0, 2.0.0)
    """
    traits = [f"backends: {', '.join(agent['backends'])}"]
    if agent.get("deterministic"):
        traits.append("deterministic")
    if len(versions) > 1:
        traits.append(f"versions: {', '.join(versions)}")
    return "\n".join(
        [
            f"{agent['id']} {agent['version']} ({'; '.join(traits)})",
            agent["description"],
            "",
            "input schema:",
            json.dumps(agent["input_schema"], indent=2),
            "",
            "output schema:",
            json.dumps(agent["output_schema"], indent=2),
        ]
    )
