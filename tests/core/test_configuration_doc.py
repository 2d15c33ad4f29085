"""``docs/configuration.md`` lists every key of the settings -- its variables, its default,
its meaning -- and nothing else: the test walks the models (``settings_reference``) and
compares, key by key, then the whole table with ``limit config reference``'s output."""

from __future__ import annotations

import re
from pathlib import Path

from limit_graph.core.settings import (
    ENVIRONMENT_VARIABLES,
    SECRET_VARIABLES,
    render_reference,
    settings_reference,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
START = "<!-- reference: start (limit config reference) -->\n"
END = "<!-- reference: end -->"
ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<env>[^|]+) \| (?P<default>.+?) \| (?P<text>.*) \|$")


def documented() -> dict[str, tuple[tuple[str, ...], str]]:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(START) + len(START) : text.index(END)]
    rows: dict[str, tuple[tuple[str, ...], str]] = {}
    for line in block.splitlines():
        if (match := ROW.match(line)) is None:
            continue
        env = tuple(re.findall(r"`([^`]+)`", match["env"]))
        assert match["key"] not in rows, f"{match['key']} is documented twice"
        rows[match["key"]] = (env, match["default"].strip("`"))
    return rows


def test_every_key_is_documented_and_no_other() -> None:
    doc = documented()
    model = {row.key: row for row in settings_reference()}
    assert sorted(set(model) - set(doc)) == [], "keys missing from docs/configuration.md"
    assert sorted(set(doc) - set(model)) == [], "docs/configuration.md names unknown keys"


def test_each_documented_default_and_variable_is_the_models() -> None:
    doc = documented()
    for row in settings_reference():
        variables, default = doc[row.key]
        assert default == row.default, f"{row.key}: documented default {default}, is {row.default}"
        assert variables == row.variables, f"{row.key}: documented variables {variables}"


def test_every_key_says_what_it_does() -> None:
    assert [row.key for row in settings_reference() if not row.description.strip()] == []


def test_every_variable_and_secret_is_in_the_reference() -> None:
    named = {v for row in settings_reference() for v in row.variables}
    assert set(ENVIRONMENT_VARIABLES) <= named
    secrets = {row.key for row in settings_reference() if row.secret}
    assert secrets == {*SECRET_VARIABLES, "backends.<name>.api_key"}


def test_the_table_is_limit_config_references_output() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index(START) + len(START) : text.index(END)]
    assert block == render_reference(), (
        "docs/configuration.md is out of date: replace the table with the output of "
        "`limit config reference`"
    )
