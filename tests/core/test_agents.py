"""The agent registry: the built-in agents as Prefect tasks, folders of agent files,
and where each agent came from."""

from __future__ import annotations

import os
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from prefect import Task

from limit_graph.core.agents import ENTRY_POINT_GROUP, AgentRegistry
from limit_graph.core.agents.modules import package_name
from limit_graph.core.agents.registry import _entry_point_agents as entry_point_agents
from limit_graph.core.errors import ConfigError, NotFound
from limit_graph.core.settings import load_settings
from tests.fixtures.agent_folders import GREET_V1, MODELS, write_folder, write_greet_folder


def test_builtin_agents_come_from_entry_points_as_prefect_tasks() -> None:
    registry = AgentRegistry.from_entry_points()
    names = [a.name for a in registry.list()]
    assert {"echo", "sleep", "fail"} <= set(names)
    for name in ("echo", "sleep", "fail"):
        spec = registry.get(name)
        assert isinstance(spec.task, Task) and spec.task.fn is spec.fn
    assert registry.get("sleep").is_async and not registry.get("echo").is_async


def test_unknown_agent_and_duplicate_registration() -> None:
    registry = AgentRegistry.from_entry_points()
    with pytest.raises(NotFound, match="teleport"):
        registry.get("teleport")
    with pytest.raises(ConfigError, match="twice"):
        registry.register(registry.get("echo"))


# Folders of agent files ([agents] paths) and where each agent came from.


def loaded_packages() -> set[str]:
    return {name for name in sys.modules if name.startswith("limit_agents_")}


def test_a_folder_of_agent_files_joins_the_entry_points_agents(tmp_path: Path) -> None:
    folder = write_greet_folder(tmp_path / "team agents")
    registry = AgentRegistry.discover([folder])
    assert [a.version for a in registry.versions("greet")] == ["1.0.0", "2.0.0"]
    assert registry.get("greet").version == "2.0.0" and registry.get("greet").is_async
    first = registry.find("greet@1.0.0")
    assert first.origin == f"{folder.resolve() / 'greet_v1.py'}:6"
    assert first.description == "Greets someone by name."
    assert first.fn.__module__ == f"{package_name(folder.resolve())}.greet_v1"
    assert {"echo", "sleep", "quantum.sample"} <= {a.name for a in registry.list()}
    assert registry.get("echo").origin == "entry point 'general' (limit_graph.tasks.general:AGENTS)"
    # greet_v2 imports greet@1.0.0 from greet_v1: it is found once, in its own file.
    assert len(registry.list()) == len(AgentRegistry.from_entry_points().list()) + 2
    # Loaded once per process: a second discovery finds the very same agents.
    assert AgentRegistry.discover([folder]).find("greet@1.0.0").fn is first.fn


def test_two_folders_each_with_a_models_file_do_not_clash(tmp_path: Path) -> None:
    one = write_greet_folder(tmp_path / "one")
    other = write_folder(
        tmp_path / "two",
        {
            "models.py": MODELS.replace("class Name", "class Person"),
            "hello.py": GREET_V1.replace('name="greet"', 'name="hello"').replace(
                "import Greeting, Name", "import Greeting, Person as Name"
            ),
        },
    )
    registry = AgentRegistry.discover([one, other])
    assert registry.get("hello").input_model.__name__ == "Person"
    assert registry.get("greet", "1.0.0").input_model.__name__ == "Name"


def test_an_init_file_runs_first_and_its_agents_count(tmp_path: Path) -> None:
    init = GREET_V1.replace(".models", ".shared").replace('name="greet"', 'name="pkg.greet"')
    folder = write_folder(
        tmp_path / "pkg", {"__init__.py": init, "shared.py": MODELS, ".#shared.py": "x = ("}
    )
    registry = AgentRegistry.discover([folder])
    assert registry.get("pkg.greet").origin == f"{folder.resolve() / '__init__.py'}:6"


BROKEN = {
    "syntax": ({"bad.py": "x = 1\ndef f(:\n    pass\n"}, "bad.py", 2, "SyntaxError: "),
    "import": (
        {"bad.py": '"""Needs a module that is not there."""\nimport no_such_module_at_all\n'},
        "bad.py",
        2,
        "ModuleNotFoundError: No module named 'no_such_module_at_all'",
    ),
    "raises": (
        {"bad.py": "def boom():\n    return {}['key']\n\n\nVALUE = boom()\n"},
        "bad.py",
        2,
        "KeyError: 'key'",
    ),
    "exits": ({"bad.py": "import sys\nsys.exit(3)\n"}, "bad.py", 2, "SystemExit: 3"),
    "bad @agent": (
        {"bad.py": GREET_V1.replace("-> Greeting", "-> dict")},
        "bad.py",
        6,
        "TypeError: @agent greet (",
    ),
    "bad version": (
        {"bad.py": GREET_V1.replace('version="1.0.0"', 'version="one"')},
        "bad.py",
        6,
        "ValueError: @agent greet (",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_agent_file_is_a_config_error_naming_file_and_line(
    tmp_path: Path, case: str
) -> None:
    files, culprit, line, problem = BROKEN[case]
    folder = write_folder(tmp_path / "agents", {"models.py": MODELS, **files}).resolve()
    before = loaded_packages()
    with pytest.raises(ConfigError) as caught:
        AgentRegistry.discover([folder])
    message = str(caught.value)
    assert message.startswith(f"agent file {folder / culprit}, line {line}: {problem}"), message
    assert "Traceback" not in message and "\n" not in message
    [error] = caught.value.errors
    assert (error["file"], error["line"]) == (str(folder / culprit), line)
    assert loaded_packages() == before  # nothing of the failed folder stays imported


def test_a_failure_in_a_sibling_names_both_files_and_the_sibling_line(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "agents",
        {
            "a_uses.py": "from .helpers import VALUE\n",
            "helpers.py": "def compute():\n    return 1 / 0\n\n\nVALUE = compute()\n",
            "z_absolute.py": "import helpers\n",
        },
    ).resolve()
    with pytest.raises(ConfigError) as caught:
        AgentRegistry.discover([folder])
    assert str(caught.value) == (
        f"agent file {folder / 'a_uses.py'} did not load: {folder / 'helpers.py'}, line 2: "
        "ZeroDivisionError: division by zero"
    )
    (folder / "helpers.py").write_text("VALUE = 1\n")
    with pytest.raises(ConfigError) as caught:
        AgentRegistry.discover([folder])
    assert str(caught.value) == (
        f"agent file {folder / 'z_absolute.py'}, line 1: ModuleNotFoundError: No module named "
        "'helpers' (the files of an agents folder import each other relatively: "
        "from . import helpers)"
    )


def test_one_name_and_version_defined_twice_names_both_origins(tmp_path: Path) -> None:
    folder = write_folder(
        tmp_path / "agents", {"models.py": MODELS, "a.py": GREET_V1, "b.py": GREET_V1}
    ).resolve()
    before = loaded_packages()
    with pytest.raises(ConfigError) as caught:
        AgentRegistry.discover([folder])
    assert str(caught.value) == (
        f"agent 'greet' version 1.0.0 is defined twice: in {folder / 'a.py'}:6 "
        f"and {folder / 'b.py'}:6"
    )
    assert loaded_packages() == before

    echo = GREET_V1.replace('name="greet"', 'name="echo"')
    clash = write_folder(tmp_path / "clash", {"models.py": MODELS, "echo.py": echo}).resolve()
    with pytest.raises(ConfigError) as caught:
        AgentRegistry.discover([clash])
    assert str(caught.value) == (
        "agent 'echo' version 1.0.0 is defined twice: in entry point 'general' "
        f"(limit_graph.tasks.general:AGENTS) and {clash / 'echo.py'}:6"
    )


def test_a_missing_folder_a_file_and_an_unimportable_file_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agents folder .*nowhere does not exist"):
        AgentRegistry.discover([tmp_path / "nowhere"])
    (tmp_path / "file.py").write_text("")
    with pytest.raises(ConfigError, match=r"agents folder .*file.py is not a folder"):
        AgentRegistry.discover([tmp_path / "file.py"])
    folder = write_folder(tmp_path / "agents", {"bell-sweep.py": ""}).resolve()
    with pytest.raises(ConfigError) as caught:
        AgentRegistry.discover([folder])
    assert str(caught.value) == (
        f"agent file {folder / 'bell-sweep.py'}: 'bell-sweep.py' is not a Python module "
        "name; rename it to letters, digits and '_' (e.g. bell_sweep.py)"
    )


def test_an_entry_point_may_name_a_module_of_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "team_pkg", {"__init__.py": "", "models.py": MODELS})
    write_folder(tmp_path / "team_pkg", {"greet_v1.py": GREET_V1})
    monkeypatch.syspath_prepend(str(tmp_path))
    module = EntryPoint(name="team", value="team_pkg.greet_v1", group=ENTRY_POINT_GROUP)
    listed = EntryPoint(name="general", value="limit_graph.tasks.general:AGENTS", group="")
    [greet] = entry_point_agents(module)
    assert greet.reference == "greet@1.0.0"
    assert greet.origin == f"{tmp_path / 'team_pkg' / 'greet_v1.py'}:6"
    assert {s.name for s in entry_point_agents(listed)} == {"echo", "sleep", "fail"}
    wrong = EntryPoint(name="wrong", value="limit_graph.tasks.general:ALL_BACKENDS", group="")
    with pytest.raises(
        ConfigError, match=r"entry point 'wrong' .* holds .*, which is not an agent"
    ):
        entry_point_agents(wrong)


def test_agent_paths_in_the_file_are_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "conf" / "limit.toml"
    config.parent.mkdir()
    config.write_text('[agents]\npaths = ["agents", "/opt/shared agents"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(config, environ={})
    assert settings.agents.paths == [tmp_path / "conf" / "agents", Path("/opt/shared agents")]
    relative = load_settings(Path("../conf/limit.toml"), environ={})
    assert relative.agents.paths[0] == elsewhere / ".." / "conf" / "agents"
    variable = load_settings(config, environ={"LIMIT_AGENT_PATHS": os.pathsep.join(["a", "/b"])})
    assert variable.agents.paths == [elsewhere / "a", Path("/b")]
    assert load_settings(environ={}, agents__paths=["c"]).agents.paths == [elsewhere / "c"]
    assert load_settings(environ={}).agents.paths == []
    config.write_text("[agents]\npaths = 3\n")
    with pytest.raises(ConfigError, match="agents.paths: Input should be a valid list"):
        load_settings(config, environ={})
