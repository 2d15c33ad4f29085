"""docs/authoring.md, followed as a new user would: its files written as it shows them,
its commands run in order against a real `limit up`, each one succeeding."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.fixtures.cli import LIMIT, clean_env, launch, run_limit
from tests.fixtures.live import free_port

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "authoring.md"
BLOCK = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
NEEDS_PREFECT = ("limit workflow deploy",)


def blocks() -> list[tuple[str, str, str]]:
    """(language, file name or "", text) of each fenced block, in order."""
    found = []
    for language, info, text in BLOCK.findall(GUIDE.read_text(encoding="utf-8")):
        name = re.search(r"file=(\S+)", info)
        found.append((language, name.group(1) if name else "", text))
    return found


def commands() -> list[str]:
    return [
        line.strip()
        for language, name, text in blocks()
        if language == "sh" and not name
        for line in text.splitlines()
        if line.strip().startswith("limit ")
    ]


def test_the_guide_has_files_and_commands_to_follow() -> None:
    names = [name for _, name, _ in blocks() if name]
    assert {"team_agents/thresholds.py", "limit.toml", "team_flow.yaml"} <= set(names)
    assert any(c.startswith("limit run ") for c in commands())


def test_following_the_guide_works(tmp_path: Path) -> None:
    for _, name, text in blocks():
        if name:
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    port = free_port()
    env = clean_env(LIMIT_API_URL=f"http://127.0.0.1:{port}", LIMIT_CONFIG="limit.toml")
    server = launch(
        tmp_path, env, env["LIMIT_API_URL"], "--config", "limit.toml", "--bind", f"127.0.0.1:{port}"
    )
    try:
        ran = []
        for command in commands():
            if command.startswith(NEEDS_PREFECT):
                continue  # tests/e2e/test_workflow_deploy.py runs it, with a Prefect server
            args = shlex.split(command)
            assert args[0] == "limit" and Path(LIMIT).name == "limit"
            done = run_limit(*args[1:], cwd=tmp_path, env=env)
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            ran.append((command, done.stdout))
        outputs = dict(ran)
        assert "team.threshold" in outputs["limit agents"]
        assert "1.0.0" in outputs["limit agents"]
        run_line = next(c for c in outputs if c.startswith("limit run "))
        assert "succeeded" in outputs[run_line]
    finally:
        server.stop()
