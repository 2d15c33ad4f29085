"""What the commands read from their arguments: ids, ``--param`` and ``--quota`` pairs,
``--policy`` declarations, files.

>>> parse_params(["shots=500", "thetas=[0, 1.57]", "label=bell pair", "exact=true"])
{'shots': 500, 'thetas': [0, 1.57], 'label': 'bell pair', 'exact': True}
>>> parse_quotas(["shots=1500", "qpu_seconds=2.5"])
{'shots': 1500, 'qpu_seconds': 2.5}
>>> parse_policies(['{"check": "circuit-limits", "max_qubits": 7}'])
[{'check': 'circuit-limits', 'max_qubits': 7}]
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from limit_graph.cli.client import CliError

__all__ = [
    "key_text",
    "parse_params",
    "parse_policies",
    "parse_quotas",
    "read_workflow_file",
    "require_uuid",
]


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
    return _json_pairs(pairs, "--param", "KEY=VALUE")


def parse_quotas(pairs: Iterable[str] | None) -> dict[str, int | float]:
    """``--quota RESOURCE=LIMIT`` options; the server checks the resource names."""
    quotas = _json_pairs(pairs, "--quota", "RESOURCE=LIMIT (e.g. shots=10000)")
    for resource, limit in quotas.items():
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise CliError(f"--quota {resource}: {limit!r} is not a number")
    return quotas


def _json_pairs(pairs: Iterable[str] | None, option: str, shape: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CliError(f"{option} {pair!r} is not {shape}")
        if key in found:
            raise CliError(f"{option} {key} is given twice")
        try:
            found[key] = json.loads(text, parse_constant=_not_json)
        except ValueError:
            found[key] = text
    return found


def parse_policies(given: Iterable[str] | None) -> list[dict[str, Any]]:
    """``--policy`` options: each a check declaration as a JSON object, or ``@FILE`` holding
    one or a list of them (JSON or YAML); the server checks what they declare."""
    import yaml

    policies: list[dict[str, Any]] = []
    for text in given or ():
        where = "--policy"
        if text.startswith("@"):
            path = Path(text[1:])
            where = f"--policy {text}"
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CliError(
                    f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}"
                ) from None
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise CliError(f"{where} is not JSON or YAML: {exc}") from None
        items = parsed if isinstance(parsed, list) else [parsed]
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("check"), str):
                raise CliError(f'{where}: a declaration is an object with a "check", got {item!r}')
            policies.append(item)
    return policies


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
