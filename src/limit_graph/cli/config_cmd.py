"""``limit config``: check a configuration before ``limit up`` meets it, and print the
table of every key.

``limit config check FILE`` loads the file with the environment applied, as ``limit up``
would, prints the effective configuration -- every secret masked, every value with
where it came from (a file, a variable, a default) -- and exits 1 naming each problem:
a key with a typo, a secret written in the file, a missing or placeholder secret in
prod mode, a store it cannot reach.  Warnings are printed and do not fail it.

Examples::

    limit config check docker/limit-graph.toml
    LIMIT_CONFIG=limit.toml limit config check --json | jq .errors
    limit config reference > reference.md
"""

from __future__ import annotations

import enum
import json
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr

from limit_graph.cli.config_check import Finding, check_database, check_secrets
from limit_graph.cli.output import print_json, print_table, print_text, tell
from limit_graph.core.errors import ConfigError
from limit_graph.core.settings import (
    ConfigWarning,
    LoadedSettings,
    load_settings_explained,
    render_reference,
)

__all__ = ["config_app", "effective_configuration"]

MASK = "********"

config_app = typer.Typer(
    help="Check the configuration `limit up` would start with.", no_args_is_help=True
)


@config_app.command("check")
def check(
    file: Annotated[
        Path | None,
        typer.Argument(help="TOML config file (default: the one LIMIT_CONFIG names, if any)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Validate FILE with the environment applied; print the effective configuration
    (secrets masked) and exit 1 naming each problem."""
    with warnings.catch_warnings(record=True) as notices:
        warnings.simplefilter("always", ConfigWarning)
        try:
            loaded: LoadedSettings | None = load_settings_explained(file)
        except ConfigError as exc:
            loaded, failed = None, exc
    findings = [
        Finding("warning", str(n.message)) for n in notices if issubclass(n.category, ConfigWarning)
    ]
    rows: list[tuple[str, Any, str]] = []
    if loaded is None:
        findings.append(Finding("error", failed.detail))
    else:
        findings.extend(_check_processes(loaded))
        secrets, origins = check_secrets(loaded)
        findings.extend(secrets)
        findings.append(check_database(loaded.settings))
        rows = list(effective_configuration(loaded, {**loaded.origins, **origins}))
    errors = [f.message for f in findings if f.level == "error"]
    source = str(file) if file is not None else (loaded.settings.source if loaded else None)
    if as_json:
        print_json(
            {
                "file": source,
                "mode": loaded.settings.mode if loaded else None,
                "ok": not errors,
                "settings": {key: {"value": value, "from": where} for key, value, where in rows},
                "errors": errors,
                "warnings": [f.message for f in findings if f.level == "warning"],
                "checked": [f.message for f in findings if f.level == "ok"],
            }
        )
    else:
        if loaded is not None:
            print_text(f"# {source or 'no config file'}, {loaded.settings.mode} mode")
            table = [(key, json.dumps(value), where) for key, value, where in rows]
            print_table(["key", "value", "from"], table, whole=["key"])
        for finding in findings:
            tell(f"{finding.level}: {finding.message}")
        tell(
            "configuration OK"
            if not errors
            else f"configuration refused: {len(errors)} problem{'s' if len(errors) > 1 else ''}"
        )
    if errors:
        raise typer.Exit(1)


@config_app.command("reference")
def reference() -> None:
    """Print the table of every key (Markdown): its variables, default and meaning."""
    print_text(render_reference())


def _check_processes(loaded: LoadedSettings) -> list[Finding]:
    """``[server] workers`` above 1 on a store that processes cannot share."""
    try:
        from limit_graph.cli.api_workers import check_shared_storage  # the API: slow

        check_shared_storage(loaded.settings)
    except ConfigError as exc:
        return [Finding("error", exc.detail)]
    return []


def effective_configuration(
    loaded: LoadedSettings, origins: Mapping[str, str]
) -> Iterator[tuple[str, Any, str]]:
    """(key, value, where it came from) for every key, the value as JSON data with every
    secret masked, and the password of a URL too."""
    settings = loaded.settings.model_dump(exclude={"source"})
    for key, value in _flatten(settings, ""):
        yield key, _shown(value), origins.get(key, "default")


def _flatten(tree: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if key == "backends.instances":
            key = "backends"  # [backends.<name>] in the file
            if not value:
                continue
        if isinstance(value, Mapping) and value and all(isinstance(k, str) for k in value):
            if key in {"governance.clearances"}:
                yield key, value
            else:
                yield from _flatten(value, f"{key}.")
        else:
            yield key, value


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, list | tuple):
        return [_shown(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _shown(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _mask_password(value)
    return value


def _mask_password(text: str) -> str:
    """A URL with its password masked; anything else as it is."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
