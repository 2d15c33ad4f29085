"""What the workflow commands read from their arguments: ids, ``--param`` pairs, files.

>>> parse_params(["shots=500", "thetas=[0, 1.57]", "label=bell pair", "exact=true"])
{'shots': 500, 'thetas': [0, 1.57], 'label': 'bell pair', 'exact': True}
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from limit_graph.cli.client import CliError

__all__ = ["key_text", "parse_params", "read_workflow_file", "require_uuid"]


def require_uuid(value: str, what: str) -> str:
    """``value`` as a canonical UUID, or a :class:`CliError` saying what it should be."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise CliError(f"{value!r} is not a {what} id (a UUID)") from None


def key_text(given: str, what: str = "the key") -> str:
    """A verifier key given as text, or read from the file it names."""
    path = Path(given)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {what} {path}: {exc}") from None
    return given.strip()


def parse_params(pairs: Iterable[str] | None) -> dict[str, Any]:
    """``--param KEY=VALUE`` options: VALUE as JSON when it reads as JSON (numbers,
    lists, objects, true/false/null, quoted text), else as the text it is."""
    params: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"--param {pair!r} is not KEY=VALUE")
        if key in params:
            raise CliError(f"--param {key} is given twice")
        try:
            params[key] = json.loads(text, parse_constant=_not_json)
        except ValueError:
            params[key] = text
    return params


def _not_json(name: str) -> Any:
    """NaN and Infinity read as JSON by Python's parser, but no JSON document holds them."""
    raise ValueError(f"{name} is not JSON")


def read_workflow_file(path: Path) -> str:
    """The workflow file's text (YAML or JSON; the server parses it), or a one-line
    :class:`CliError` when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"cannot read workflow file {path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"cannot read workflow file {path}: it is a folder") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read workflow file {path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise CliError(f"cannot read workflow file {path}: {exc.strerror or exc}") from None
