"""The table of every setting: its key in the TOML file, the environment variables that
override it, its default and what it does -- read off the models, so that
``docs/configuration.md`` (which holds :func:`render_reference`'s output, checked by a
test) cannot drift from them.

>>> row = next(r for r in settings_reference() if r.key == "server.bind_address")
>>> row.variables, row.default
(('BIND_ADDRESS',), '"127.0.0.1:8080"')
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from limit_graph.core.settings._sections import BackendsSettings
from limit_graph.core.settings._settings import Settings
from limit_graph.core.settings._variables import (
    ENVIRONMENT_VARIABLES,
    FILE_VARIABLES,
    SECRET_VARIABLES,
)

__all__ = ["ReferenceRow", "render_reference", "settings_reference"]

_INSTANCE_KEY_VARIABLE = "LIMIT_BACKEND_<NAME>_API_KEY"
_NO_VALUE = ("—", "required")
"""Defaults that are no value: unset, or a key its table must have."""


@dataclass(frozen=True)
class ReferenceRow:
    """One key: ``<name>`` stands for a name of the operator's choosing (a backend
    instance), ``<a|b>`` for one of the names listed.  ``default`` is written as in the
    file, or ``—`` (unset) or ``required`` (in its table, when the table is there)."""

    key: str
    variables: tuple[str, ...]
    default: str
    description: str
    secret: bool

    @property
    def section(self) -> str:
        """The top-level table the key is in, or ``""`` for a key outside any."""
        return self.key.split(".", 1)[0] if "." in self.key else ""


def settings_reference() -> list[ReferenceRow]:
    """Every key of :class:`Settings`, in the order of the models."""
    return list(_rows(Settings, ""))


def render_reference() -> str:
    """The reference as Markdown: a table per section (``limit config reference``)."""
    rows = settings_reference()
    sections = list(dict.fromkeys(row.section for row in rows))
    out: list[str] = []
    for section in sections:
        out.append(f"### `[{section}]`" if section else "### Top level")
        out.append("")
        out.append("| key | environment | default | description |")
        out.append("| --- | --- | --- | --- |")
        for row in rows:
            if row.section != section:
                continue
            variables = ", ".join(f"`{v}`" for v in row.variables) or "—"
            description = row.description
            if row.secret:
                description += " **Secret**: from the environment or a file only."
            default = row.default if row.default in _NO_VALUE else f"`{row.default}`"
            out.append(f"| `{row.key}` | {variables} | {default} | {_cell(description)} |")
        out.append("")
    return "\n".join(out)


def _rows(model: type[BaseModel], prefix: str) -> Iterator[ReferenceRow]:
    for name, info in model.model_fields.items():
        if model is Settings and name == "source":
            continue  # set by the loader: the file's own name
        key = f"{prefix}{name}"
        nested = _nested(info.annotation)
        if nested is not None:
            held, placeholder = nested
            if placeholder is None:
                yield from _rows(held, f"{key}.")
            elif model is BackendsSettings and name == "instances":
                yield from _rows(held, f"{prefix}{placeholder}.")  # [backends.<name>]
            else:
                yield from _rows(held, f"{key}.{placeholder}.")
            continue
        yield _row(key, info)


def _row(key: str, info: FieldInfo) -> ReferenceRow:
    secret = key in SECRET_VARIABLES or key == "backends.<name>.api_key"
    if key == "backends.<name>.api_key":
        variables: tuple[str, ...] = (_INSTANCE_KEY_VARIABLE, f"{_INSTANCE_KEY_VARIABLE}_FILE")
    else:
        found = [v for v, path in ENVIRONMENT_VARIABLES.items() if ".".join(path) == key]
        variables = tuple(
            name for v in found for name in ((v, f"{v}_FILE") if v in FILE_VARIABLES else (v,))
        )
    return ReferenceRow(key, variables, _default(info), info.description or "", secret)


def _nested(annotation: Any) -> tuple[type[BaseModel], str | None] | None:
    """The model a field holds, and the placeholder of the name a mapping of them takes
    (``None`` for a model held directly or as an optional)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [m for a in args if (m := _nested(a)) is not None]
        return models[0] if len(models) == 1 else None
    if typing.get_origin(annotation) is dict and len(args) == 2:
        held = _nested(args[1])
        if held is None or held[1] is not None:
            return None
        names = typing.get_args(args[0]) if typing.get_origin(args[0]) is typing.Literal else ()
        return held[0], f"<{'|'.join(names)}>" if names else "<name>"
    return None


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined and info.default_factory is None:
        return "required"
    value = info.get_default(call_default_factory=True, validated_data={})
    return "—" if value is None else _toml(value)


def _toml(value: Any) -> str:
    """``value`` as it would be written in the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, SecretStr):
        return '"********"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())
