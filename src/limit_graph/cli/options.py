"""The options every client command shares, and the one helper that makes a call."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from limit_graph.cli.target import open_client

__all__ = ["JsonOption", "KeyOption", "UrlOption", "call"]

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="API address (default LIMIT_API_URL, else the bind address of the "
        "configuration `limit up` reads: LIMIT_CONFIG, BIND_ADDRESS).",
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key (default LIMIT_API_KEY, LIMIT_ADMIN_API_KEY, else admin.key in "
        "LIMIT_HOME or the configuration's home, .limit by default).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the server's JSON document, nothing else.")
]


def call(url: str | None, key: str | None, method: str, path: str, **kwargs: Any) -> Any:
    """One request to the server the options and configuration name; its JSON body."""
    client = open_client(url, key)
    try:
        return client.request(method, path, **kwargs)
    finally:
        client.close()
