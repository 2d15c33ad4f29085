"""The shipped schema and default policies: each policy valid, the action names ours."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from limit_graph.governance.policy import ACTIONS, Action, CedarEngine, default_policies
from limit_graph.governance.policy.cedar import policy_errors
from limit_graph.governance.policy.defaults import default_policy_texts
from limit_graph.governance.policy.schema import PLATFORM_ACTIONS, SCHEMA_JSON, schema_text

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = {
    "admins-manage-tenant",
    "authors-create-sessions",
    "authors-manage-sessions",
    "authors-run-work",
    "ibm-targets-need-operator",
    "operators-manage-runners",
    "platform-admin-identity",
    "platform-admin-runs-work",
    "platform-admin-tenants",
    "readers-read-ledger-proofs",
    "runners-claim-pools",
    "runners-maintenance",
    "session-grants-read",
    "tenant-isolation",
    "viewers-read",
    "auditors-read-audit",
}


@pytest.mark.parametrize("record", default_policies(), ids=lambda record: record.id)
def test_every_default_policy_validates_against_the_schema(record) -> None:
    assert policy_errors(record.text, policy_id=record.id, tenant=None) == []
    assert record.tenant is None and record.version == 1 and record.description


def test_the_defaults_are_the_documented_set() -> None:
    assert {record.id for record in default_policies()} == EXPECTED
    for policy_id, text in default_policy_texts().items():
        assert set(re.findall(r'@id\("([^"]+)"\)', text)) == {policy_id}


def test_the_action_names_are_the_schemas() -> None:
    assert set(ACTIONS) == {action.value for action in Action}
    entity_types = set(json.loads(SCHEMA_JSON)[""]["entityTypes"])
    assert set(ACTIONS.values()) <= entity_types
    assert {"tenant.create", "tenant.read", "agent.read", "runner.claim"} <= PLATFORM_ACTIONS


def test_the_human_readable_schema_is_cedars_own_rendering() -> None:
    text = schema_text()
    assert "entity Principal in [Role, Group]" in text and "__cedar" not in text
    assert 'action "agent.execute" appliesTo' in text


def test_the_schema_and_policies_ship_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["limit_graph"]
    package = Path(str(resources.files("limit_graph")))
    shipped = {path.relative_to(package) for pattern in patterns for path in package.glob(pattern)}
    folder = package / "governance" / "policy"
    needed = {
        path.relative_to(package)
        for path in folder.rglob("*")
        if path.suffix in {".json", ".cedar"}
    }
    assert needed and needed <= shipped


def test_the_defaults_load_into_an_engine() -> None:
    engine = CedarEngine(default_policies())
    assert engine.generation == 1 and len(engine.records) == len(EXPECTED)
