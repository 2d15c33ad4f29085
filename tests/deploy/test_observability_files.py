"""What operators look at (docker/grafana/, docker/prometheus/), checked against the code.

The alert rules and the Prometheus configuration pass ``promtool check`` where promtool
is on PATH (Debian's ``prometheus`` package has it); without it that test skips, saying
so, and the rules are still checked against the rule-file structure, which always runs.
Every PromQL expression of the dashboard and of the alerts may name only metrics that a
running platform's ``GET /metrics`` exports: a live server (real HTTP, with the suite's
Prefect server behind its mirror) is put through a session, a local execution, a remote
one left queued, a quota and a denial, a runner's claim, a checkpoint and a ledger
verification, then scraped and parsed with prometheus-client's parser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from limit_graph.core.settings import load_settings
from limit_graph.deployments.server import PrefectServer
from tests.fixtures.live import LiveServer, live_server
from tests.fixtures.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "limit-graph.json"
PROVISIONING = ROOT / "docker" / "grafana" / "provisioning"
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yaml"
PROMETHEUS = ROOT / "docker" / "prometheus" / "prometheus.yaml"
PROMTOOL = shutil.which("promtool")

ADMIN_KEY = "observability-admin-key-0123456789"
RUNNER_KEY = "observability-runner-key-0123456789"

SYNTHETIC = {"up"}
"""Series Prometheus makes itself for every target, not exported by /metrics."""
UNSEEN = {"limit_http_errors_total", "limit_rate_limit_decisions_total"}
"""Exported families the exercise below leaves without a series (no 5xx happens; no
rate is configured): their names must still be exported."""

# --- PromQL: the metric names an expression reads -------------------------------------

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "inf", "nan", "start", "end",
}  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")
RANGES = re.compile(r"\[[^\[\]]*\]")
GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
VARIABLES = re.compile(r"\$\{?\w+\}?")
TOKEN = re.compile(r"(?P<number>\.?\d[\w.]*)|(?P<word>[A-Za-z_:][A-Za-z0-9_:]*)")
"""A number or duration (``0.95``, ``1e-9``, ``3600``, ``1h30m``) or a word."""
CLOSERS = {"(": ")", "[": "]", "{": "}"}


def balanced(expr: str) -> bool:
    """Whether ``expr``'s brackets of each kind pair up, strings aside."""
    stack: list[str] = []
    for char in STRING.sub('""', expr):
        if char in CLOSERS:
            stack.append(CLOSERS[char])
        elif char in CLOSERS.values() and (not stack or stack.pop() != char):
            return False
    return not stack


def metric_names(expr: str) -> set[str]:
    """The metrics ``expr`` selects: identifiers left once strings, label matchers,
    ranges, grouping clauses and dashboard variables are gone, but for functions
    (followed by a parenthesis), keywords and numbers."""
    text = STRING.sub('""', expr)
    text = VARIABLES.sub(" ", text)
    text = MATCHERS.sub(" ", text)
    text = RANGES.sub(" ", text)
    text = GROUPING.sub(" ", text)
    names = set()
    for match in TOKEN.finditer(text):
        word = match.group("word")
        rest = text[match.end() :].lstrip()
        if word is None or rest.startswith("(") or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def test_the_tokenizer_keeps_metrics_and_drops_the_rest() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (route, le) (rate(a_bucket{route=~"/x(y)"}[5m])))'
        " / on (pool) group_left max by (pool) (b_total offset 1h) > 0.5 and c"
        ' unless time() - d{instance=~"$instance"}[$__rate_interval:1m] > 3 * 3600'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d"}
    assert balanced(expr)
    assert not balanced("sum(rate(a[5m])")
    assert not balanced('sum(a{b="c"]) ')


def exported_names(text: str) -> tuple[set[str], set[str]]:
    """What the exposition ``text`` exports: every name an expression may select (a
    counter's ``_total``, a histogram's ``_bucket``/``_sum``/``_count``...), and the
    names that hold at least one series."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    names: set[str] = set()
    seen: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        seen.update(sample.name for sample in family.samples)
    return names | seen, seen


# --- the files ----------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield from panel.get("panels", [])
        if panel["type"] != "row":
            yield panel


def load_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text("utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


LABEL_VALUES = re.compile(r"label_values\((\w+),\s*\w+\)")


def dashboard_exprs() -> list[str]:
    """The panels' queries, and the metric each ``label_values`` variable reads."""
    dashboard = load_dashboard()
    variables = [
        found.group(1)
        for v in dashboard["templating"]["list"]
        if (found := LABEL_VALUES.fullmatch(v.get("definition", "")))
    ]
    return variables + [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    return [rule["expr"] for rule in load_rules()]


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH (Debian: apt-get install prometheus); "
    "test_alert_rules_have_the_rule_file_structure checks the rules instead",
)
def test_alert_rules_and_scrape_config_pass_promtool() -> None:
    assert PROMTOOL is not None
    for args in (["check", "rules", ALERTS.name], ["check", "config", PROMETHEUS.name]):
        done = subprocess.run(
            [PROMTOOL, *args], cwd=ALERTS.parent, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr


DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")
SEVERITIES = {"critical", "warning", "info"}


def test_alert_rules_have_the_rule_file_structure() -> None:
    loaded = yaml.safe_load(ALERTS.read_text("utf-8"))
    assert set(loaded) == {"groups"} and isinstance(loaded["groups"], list)
    group_names = [group["name"] for group in loaded["groups"]]
    assert len(group_names) == len(set(group_names)), group_names
    alerts: list[str] = []
    for group in loaded["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}, group.keys()
        assert isinstance(group["name"], str) and isinstance(group["rules"], list)
        for rule in group["rules"]:
            name = rule.get("alert")
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert isinstance(name, str) and re.fullmatch(r"Limit[A-Za-z]+", name), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), name
            assert balanced(rule["expr"]), name
            assert isinstance(rule.get("for"), str) and DURATION.match(rule["for"]), name
            labels, annotations = rule["labels"], rule["annotations"]
            assert all(isinstance(v, str) for v in (*labels.values(), *annotations.values()))
            assert labels["severity"] in SEVERITIES, name
            assert annotations["summary"] and annotations["description"], name
            alerts.append(name)
    assert len(alerts) == len(set(alerts)), alerts
    assert {
        "LimitApiErrorRate",
        "LimitQueueNotDraining",
        "LimitNoRunnerForPool",
        "LimitMirrorLagHigh",
        "LimitCheckpointNotAdvancing",
        "LimitLedgerVerificationFailed",
    } <= set(alerts)


def _anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings (lower case, spaces as '-',
    punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_in_the_operators_handbook() -> None:
    handbook = _anchors((ROOT / "docs" / "operations.md").read_text(encoding="utf-8"))
    for rule in load_rules():
        anchor = "alert-" + rule["alert"].lower()
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{anchor}", rule
        assert anchor in handbook, f"docs/operations.md has no section for {rule['alert']}"


def test_the_dashboard_has_a_query_and_a_unit_on_every_panel() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    found = list(panels(dashboard))
    assert len(found) >= 12
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in found:
        targets = panel.get("targets", [])
        assert any(t.get("expr", "").strip() for t in targets), panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in targets:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert balanced(target["expr"]), (panel["title"], target["expr"])


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "limit-graph.yaml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    (source,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    scraped = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in scraped["scrape_configs"]}
    assert jobs["limit-graph-api"]["metrics_path"] == "/metrics"
    assert scraped["rule_files"] == [ALERTS.name]
    for rule in load_rules():
        assert 'job="' not in rule["expr"] or 'job="limit-graph-api"' in rule["expr"]


# --- the queries against a running platform --------------------------------------------


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer
) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("observed")
    settings = load_settings(
        environ={},
        home=str(home / "home"),
        admin_api_key=ADMIN_KEY,
        dispatch__runner_api_key=RUNNER_KEY,
        storage__url=f"sqlite:///{home / 'platform.db'}",
        prefect__api_url=prefect_server.api_url,
    )
    with live_server(settings) as running:
        yield running


@pytest.fixture(scope="module")
def scraped(platform: LiveServer) -> str:
    """``/metrics`` of the platform once it has done one of everything the panels show."""
    admin = {"X-API-Key": ADMIN_KEY}
    with httpx.Client(base_url=platform.url, headers=admin, timeout=60) as client:
        quota = client.put("/quotas/tenant:default", json={"executions": 4, "period": "day"})
        assert quota.status_code == 200, quota.text
        sid = client.post("/sessions", json={"name": "observed"}).json()["id"]
        execute = f"/sessions/{sid}/execute"
        local = client.post(execute, json={"agent": "echo", "inputs": {"n": 1}})
        assert local.json()["state"] == "succeeded", local.text
        queued = client.post(execute, json={"agent": "echo", "backend": "remote", "wait_s": 0})
        assert queued.status_code == 202, queued.text
        for n in range(2):
            client.post(execute, json={"agent": "echo", "inputs": {"n": n + 2}})
        refused = client.post(execute, json={"agent": "echo", "inputs": {"n": 9}})
        assert refused.status_code == 429, refused.text
        claim = client.post(
            "/runners/claim",
            json={"runner_id": "observer", "pool": "quantum", "wait_s": 0},
            headers={"X-API-Key": RUNNER_KEY},
        )
        assert claim.status_code == 200, claim.text
        assert client.get("/audit/checkpoint").status_code == 200
        verified = client.post("/maintenance/verify-ledger")
        assert verified.status_code == 200 and verified.json()["ok"], verified.text

        def mirrored() -> str | None:
            text = client.get("/metrics").text
            _, seen = exported_names(text)
            return text if "limit_mirror_task_runs_total" in seen else None

        text: str = wait_until(mirrored, what="the mirror to show the executions in Prefect")
        return text


def test_the_platform_exports_the_series_the_panels_show(scraped: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scraped)}

    def value(name: str, **labels: str) -> float:
        family = families[name]
        (sample,) = [
            s
            for s in family.samples
            if s.name in (name, name + "_total") and labels.items() <= s.labels.items()
        ]
        return float(sample.value)

    assert value("limit_queue_depth", pool="remote", backend_instance="remote") == 1
    assert value("limit_runners", pool="quantum") == 1
    assert value("limit_runners", pool="remote") == 0
    quota = {"tenant": "default", "resource": "executions", "period": "day"}
    assert value("limit_quota_limit", **quota) == 4
    assert value("limit_quota_used", **quota) + value("limit_quota_reserved", **quota) == 4
    assert value("limit_ledger_verification_ok") == 1
    assert 0 < value("limit_ledger_verified_entries") <= value("limit_ledger_entries")
    assert 0 < value("limit_ledger_checkpoint_tree_size") <= value("limit_ledger_entries")
    assert value("limit_ledger_checkpoint_age_seconds") >= 0
    assert value("limit_store_up") == 1
    assert value("limit_mirror_lag_seconds") >= 0
    assert value("limit_policy_denials", policy_id="quota:tenant:default:executions") == 1
    assert value("limit_executions", agent="echo", backend="local", state="succeeded") == 3


@pytest.mark.parametrize(
    ("source", "exprs"), [("dashboard", dashboard_exprs), ("alerts", alert_exprs)]
)
def test_every_query_names_only_metrics_the_platform_exports(
    scraped: str, source: str, exprs: Any
) -> None:
    exported, seen = exported_names(scraped)
    named = {name for expr in exprs() for name in metric_names(expr)} - SYNTHETIC
    assert named, source
    missing = named - exported
    assert not missing, f"the {source} names metrics /metrics does not export: {missing}"
    empty = named - seen - UNSEEN
    assert not empty, f"the {source} names metrics with no series after the exercise: {empty}"
