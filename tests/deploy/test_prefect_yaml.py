"""prefect.yaml and the deployments applied from Python describe the same deployments
(runners, maintenance, the example workflows with inactive schedules), and both work
against a real Prefect server: ``prefect deploy --all`` from the checkout,
``apply_deployments`` from the package, and a process worker runs what they deploy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import PrefectClient, get_client
from prefect.deployments import run_deployment
from prefect.flows import load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL, temporary_settings

from limit_graph.core.settings import load_settings
from limit_graph.core.workflows.loading import load_workflow
from limit_graph.deployments.apply import (
    DEPLOYMENTS,
    EXAMPLE_DEPLOYMENTS,
    WORK_POOLS,
    apply_deployments,
    ensure_work_pools,
)
from limit_graph.deployments.register import prefect_api
from limit_graph.deployments.server import PrefectServer, prefect_env
from tests.fixtures.live import live_server
from tests.fixtures.processes import stop

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "test-admin-key-0123456789abcdef"


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return loaded


def _schedule(entry: dict[str, Any]) -> tuple[str, Any]:
    return ("cron", entry["cron"]) if "cron" in entry else ("interval", entry["interval"])


def _parameters(deployment: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The parameters, a workflow file as the absolute path the pull step makes of it."""
    parameters = dict(deployment.get("parameters", {}))
    if "workflow_file" in parameters:
        parameters["workflow_file"] = str(ROOT / parameters["workflow_file"])
    return tuple(sorted(parameters.items()))


@pytest.fixture
def server(prefect_server: PrefectServer) -> PrefectServer:
    """The suite's shared server: the tests read back only the deployments and pools named
    in ``prefect.yaml``, which each test applies itself (applying is idempotent)."""
    return prefect_server


def test_every_deployment_resolves_to_its_flow_with_pool_and_parameters() -> None:
    deployments = _config()["deployments"]
    assert len(deployments) == 9
    for deployment in deployments:
        path, function = deployment["entrypoint"].split(":")
        flow = load_flow_from_entrypoint(f"{ROOT / path}:{function}")
        assert flow.name == deployment["flow_name"], deployment["name"]
        assert deployment["work_pool"]["name"] in WORK_POOLS
        accepted = set(flow.parameters.properties)
        assert set(deployment.get("parameters", {})) <= accepted, deployment["name"]
    runners = [d for d in deployments if d["flow_name"] == "limit-runner"]
    assert {(d["name"], d["work_pool"]["name"], d["parameters"]["pool"]) for d in runners} == {
        (pool, pool, pool) for pool in WORK_POOLS
    }
    maintenance = {d["name"]: d for d in deployments if d["flow_name"] == "limit-maintenance"}
    assert set(maintenance) == {"archive-idle-sessions", "verify-ledger", "expire-caches"}
    assert {d["work_pool"]["name"] for d in maintenance.values()} == {"local"}
    assert [_schedule(s) for s in maintenance["verify-ledger"]["schedules"]] == [("interval", 3600)]
    assert [_schedule(s) for s in maintenance["expire-caches"]["schedules"]] == [("interval", 900)]
    assert [_schedule(s) for s in maintenance["archive-idle-sessions"]["schedules"]] == [
        ("cron", "0 3 * * *")
    ]
    assert all(s.get("active", True) for d in maintenance.values() for s in d["schedules"])


def test_the_examples_are_deployed_with_inactive_schedules() -> None:
    """Each example workflow of examples/ once, named after its workflow, its schedule
    off; the file it names is there (relative to the checkout the pull step enters)."""
    examples = {
        d["name"]: d
        for d in _config()["deployments"]
        if d["flow_name"] == "limit-scheduled-workflow"
    }
    files = sorted(p.name for p in (ROOT / "examples").glob("*.yaml"))
    assert sorted(Path(d["parameters"]["workflow_file"]).name for d in examples.values()) == files
    for name, deployment in examples.items():
        path = ROOT / deployment["parameters"]["workflow_file"]
        assert name == f"example-{load_workflow(path.read_text())['name']}"
        assert deployment["work_pool"]["name"] == "local"
        [schedule] = deployment["schedules"]
        assert "cron" in schedule and schedule["active"] is False
    assert {spec.name for spec in EXAMPLE_DEPLOYMENTS} == set(examples)
    assert all(not spec.active and spec.cron for spec in EXAMPLE_DEPLOYMENTS)


def test_prefect_yaml_and_the_python_deployments_agree() -> None:
    from_yaml = {
        (
            f"{d['flow_name']}/{d['name']}",
            d["work_pool"]["name"],
            d["entrypoint"].replace("src/", "").replace(".py:", ".").replace("/", "."),
            _parameters(d),
            tuple(
                (*_schedule(s), s.get("timezone", "UTC"), s.get("active", True))
                for s in d.get("schedules", [])
            ),
        )
        for d in _config()["deployments"]
    }
    from_python = {
        (
            f"{spec.load_flow().name}/{spec.name}",
            spec.pool,
            spec.entrypoint,
            tuple(sorted(spec.parameters.items())),
            (("cron", spec.cron, spec.timezone, spec.active),)
            if spec.cron
            else (("interval", spec.interval_s, spec.timezone, spec.active),)
            if spec.interval_s
            else (),
        )
        for spec in DEPLOYMENTS
    }
    assert from_yaml == from_python


async def _deployments(client: PrefectClient) -> dict[str, Any]:
    found = await client.read_deployments()
    flows = {f.id: f.name for f in await client.read_flows()}
    return {f"{flows[d.flow_id]}/{d.name}": d for d in found}


async def test_python_apply_uses_module_paths_and_is_idempotent(server: PrefectServer) -> None:
    async with prefect_api(server.api_url) as client:
        await ensure_work_pools(client)
        await ensure_work_pools(client)
        first = await apply_deployments()
        second = await apply_deployments()
        pools = {p.name: p.type for p in await client.read_work_pools()}
        deployments = await _deployments(client)
    assert first == second and len(first) == len(DEPLOYMENTS)
    assert {pools[name] for name in WORK_POOLS} == {"process"}
    for spec in DEPLOYMENTS:
        deployment = deployments[f"{spec.load_flow().name}/{spec.name}"]
        assert deployment.entrypoint == spec.entrypoint
        assert not deployment.pull_steps
        assert deployment.work_pool_name == spec.pool
        assert [s.active for s in deployment.schedules] == (
            [spec.active] if spec.cron or spec.interval_s else []
        )


def test_prefect_deploy_all_and_a_worker_runs_the_flow(
    server: PrefectServer, tmp_path: Path
) -> None:
    """`prefect deploy --all` from the checkout; a process worker then runs the
    verify-ledger deployment against a live platform (the pull step finds the checkout)."""
    env = prefect_env(tmp_path / "prefect-home", server.api_url)
    deployed = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with (
        temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        get_client(sync_client=True) as client,
    ):
        deployment = client.read_deployment_by_name("limit-maintenance/verify-ledger")
    assert deployment.entrypoint == "src/limit_graph/flows/maintenance.py:verify_ledger"
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    assert [s.schedule.interval.total_seconds() for s in deployment.schedules] == [3600]
    with (
        temporary_settings(updates={PREFECT_API_URL: server.api_url}),
        get_client(sync_client=True) as client,
    ):
        example = client.read_deployment_by_name("limit-scheduled-workflow/example-bell-sweep")
    assert example.parameters == {"workflow_file": "examples/bell_sweep.yaml"}
    assert [(s.schedule.cron, s.active) for s in example.schedules] == [("0 6 * * *", False)]

    settings = load_settings(
        environ={},
        home=str(tmp_path / "home"),
        admin_api_key=ADMIN_KEY,
        storage__url=f"sqlite:///{tmp_path / 'limit.db'}",
    )
    with live_server(settings) as platform:
        env.update(
            {
                "LIMIT_API_URL": platform.url,
                "LIMIT_RUNNER_API_KEY": ADMIN_KEY,
                "PREFECT_WORKER_QUERY_SECONDS": "1",
            }
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "local"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
                # Prefect polls the run's state every 5 s by default: ~2.5 s lost per run.
                run = run_deployment(
                    "limit-maintenance/verify-ledger", timeout=90, poll_interval=0.5
                )
        finally:
            stop(worker, group=True)
    assert run.state is not None and run.state.is_completed(), run.state
