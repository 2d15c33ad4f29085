"""A workflow spec as YAML text that reads back as the same JSON values.

The platform reads YAML by the 1.2 core schema (``core/workflows/yaml_text.py``),
PyYAML writes by YAML 1.1: a string such as ``1e3`` or ``0o17`` is plain text to
PyYAML's writer but a number to the platform's reader.  This dumper quotes every
string the 1.2 core schema would read as something else, and writes multi-line
strings (circuits, scripts) as literal blocks.

>>> print(spec_yaml({"name": "x", "steps": [{"id": "a", "agent": "echo",
...                  "inputs": {"n": "1e3", "ok": "yes", "src": "line 1\\nline 2\\n"}}]}))
name: x
steps:
- id: a
  agent: echo
  inputs:
    n: "1e3"
    ok: 'yes'
    src: |
      line 1
      line 2
<BLANKLINE>
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["spec_yaml"]

# The YAML 1.2 core schema's plain scalars that are not strings (null, booleans,
# integers, floats) and the merge key; the same patterns the platform's reader uses.
_NOT_TEXT = re.compile(
    r"~|null|Null|NULL|"
    r"true|True|TRUE|false|False|FALSE|"
    r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+|"
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|"
    r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|"
    r"<<"
)


# Line breaks besides "\n" (YAML folds them in plain and block scalars): quoted, escaped.
_OTHER_BREAKS = re.compile("[\r\x85\u2028\u2029]")


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """PyYAML's safe dumper with strings written so that YAML 1.2 reads them back."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if _OTHER_BREAKS.search(value) or _NOT_TEXT.fullmatch(value):
        style = '"'
    elif "\n" in value:
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def spec_yaml(spec: Mapping[str, Any]) -> str:
    """``spec`` (JSON values) as block-style YAML, keys in the order given."""
    text: str = yaml.dump(
        dict(spec),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return text
