"""``limit agents``: what the platform can run, and each agent's input and output schemas.

Examples::

    limit agents
    limit agents show quantum.sample
    limit agents show echo --json | jq .input_schema
"""

from __future__ import annotations

import json
from typing import Any
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
    """List the agents the platform can run (`limit agents show NAME` for one's schemas)."""
    if ctx.invoked_subcommand is not None:
        return
    print_listing(
        call(url, api_key, "GET", "/agents"),
        ("id", "version", "backends", "description"),
        lambda a: (a["id"], a["version"], ",".join(a["backends"]), a["description"]),
        as_json=as_json,
        noun="agents",
    )


@agents_app.command("show")
def show_agent(
    name: str, as_json: JsonOption = False, url: UrlOption = None, api_key: KeyOption = None
) -> None:
    """Print agent NAME: version, backends, and its input and output JSON Schemas."""
    agent = call(url, api_key, "GET", f"/agents/{quote(name, safe='')}")
    if as_json:
        print_json(agent)
        return
    print_text(describe_agent(agent))


def describe_agent(agent: dict[str, Any]) -> str:
    """The agent as a person reads it: a header, then each schema as indented JSON.

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
    """
    traits = [f"backends: {', '.join(agent['backends'])}"]
    if agent.get("deterministic"):
        traits.append("deterministic")
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
