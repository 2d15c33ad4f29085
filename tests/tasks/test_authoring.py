"""``@agent``: typed functions become agents, with their models, spec and Prefect task."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import Task
from pydantic import BaseModel

import limit_graph
from limit_graph.core.agents import AgentRegistry
from limit_graph.core.models import BackendKind, ExecutionState
from limit_graph.core.running import run_agent
from limit_graph.tasks import authoring
from limit_graph.tasks.authoring import Agent, agent

HERE = Path(__file__).resolve()


class Numbers(BaseModel):
    values: list[float]


class Total(BaseModel):
    total: float


def test_a_sync_function_becomes_an_agent_that_is_still_the_function() -> None:
    @agent(version="1.2.0", backends=["local", BackendKind.REMOTE], deterministic=True)
    def add(inputs: Numbers) -> Total:
        """Adds the values up.

        Longer text that the description leaves out.
        """
        return Total(total=sum(inputs.values))

    assert isinstance(add, Agent)
    assert add(Numbers(values=[1, 2.5])) == Total(total=3.5)
    spec = add.spec
    assert (spec.name, spec.version, spec.reference) == ("add", "1.2.0", "add@1.2.0")
    assert spec.description == "Adds the values up."
    assert (spec.input_model, spec.output_model) == (Numbers, Total)
    assert spec.backends == (BackendKind.LOCAL, BackendKind.REMOTE)
    assert spec.deterministic and spec.blocking and spec.inline and not spec.is_async
    assert spec.origin == f"{HERE}:{add.fn.__code__.co_firstlineno}"
    assert isinstance(add.task, Task) and add.task.fn is spec.fn is add.fn
    assert add.task is spec.task and add.task.name == "add" and add.task.version == "1.2.0"
    assert add.__name__ == "add" and add.__doc__ is not None and "Adds" in add.__doc__


async def test_sync_and_async_agents_run_as_the_platform_runs_them() -> None:
    @agent(name="sum.sync", version="1.0.0", description="Sums, in a thread.")
    def summed(inputs: Numbers) -> Total:
        return Total(total=sum(inputs.values))

    @agent(name="sum.async", version="1.0.0")
    async def asummed(inputs: Numbers) -> Total:
        return Total(total=sum(inputs.values) * 2)

    assert summed.spec.description == "Sums, in a thread."
    assert asummed.spec.is_async and asummed.spec.description == ""
    assert await asummed(Numbers(values=[1])) == Total(total=2)
    registry = AgentRegistry([summed, asummed.spec])
    for reference, expected in (("sum.sync", 6.0), ("sum.async@1.0.0", 12.0)):
        spec = registry.find(reference)
        outcome = await run_agent(spec, Numbers(values=[1, 2, 3]), timeout_s=30)
        assert (outcome.state, outcome.result) == (ExecutionState.SUCCEEDED, {"total": expected})


def _no_annotation(_inputs):  # type: ignore[no-untyped-def]
    return Total(total=0)


def _dict_input(_inputs: dict[str, Any]) -> Total:
    return Total(total=0)


def _str_output(_inputs: Numbers) -> str:
    return ""


def _no_return(_inputs: Numbers):  # type: ignore[no-untyped-def]
    return Total(total=0)


def _two_parameters(_inputs: Numbers, _more: Numbers) -> Total:
    return Total(total=0)


def _no_parameter() -> Total:
    return Total(total=0)


def _keyword_only(*, _inputs: Numbers) -> Total:
    return Total(total=0)


def _generator(_inputs: Numbers) -> Iterator[Total]:
    yield Total(total=0)


def _unknown_name(_inputs: NotDefinedAnywhere) -> Total:  # type: ignore[name-defined]  # noqa: F821
    return Total(total=0)


def _instance_not_class(_inputs: Numbers) -> Total(total=1):  # type: ignore[valid-type]
    return Total(total=0)


@pytest.mark.parametrize(
    ("fn", "problem"),
    [
        (_no_annotation, "the parameter '_inputs' needs an annotation"),
        (_dict_input, "the parameter '_inputs' must be annotated with a pydantic BaseModel"),
        (_str_output, "the return value must be annotated with a pydantic BaseModel subclass"),
        (_no_return, "the return value needs an annotation"),
        (_two_parameters, "takes exactly one parameter"),
        (_no_parameter, "takes exactly one parameter"),
        (_keyword_only, "takes exactly one parameter"),
        (_generator, "must return its output, not yield it"),
        (_unknown_name, "name 'NotDefinedAnywhere' is not defined"),
        (_instance_not_class, "must be annotated with a pydantic BaseModel subclass"),
    ],
)
def test_bad_annotations_are_a_type_error_naming_the_function_and_file(
    fn: Callable[..., Any], problem: str
) -> None:
    with pytest.raises(TypeError) as caught:
        agent(version="1.0.0")(fn)
    message = str(caught.value)
    assert problem in message
    assert f"@agent {fn.__name__} ({HERE}:{fn.__code__.co_firstlineno})" in message


def test_a_class_is_not_a_function_to_decorate() -> None:
    with pytest.raises(TypeError, match="decorates a function, not <class '.*Numbers'>"):
        agent(version="1.0.0")(Numbers)  # type: ignore[arg-type, type-var]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"version": "latest"}, "'latest' is not a version number (PEP 440"),
        ({"version": ""}, "'' is not a version number"),
        ({"version": "1.0.0", "name": "echo@2"}, "'echo@2' is not an agent name"),
        ({"version": "1.0.0", "name": ""}, "'' is not an agent name"),
        ({"version": "1.0.0", "backends": ["gpu"]}, "unknown backend 'gpu': use local, remote"),
        ({"version": "1.0.0", "backends": []}, "backends is empty"),
    ],
)
def test_a_bad_version_name_or_backend_is_refused_at_decoration(
    options: dict[str, Any], problem: str
) -> None:
    def add(_inputs: Numbers) -> Total:
        return Total(total=0)

    with pytest.raises(ValueError) as caught:
        agent(**options)(add)
    assert problem in str(caught.value)
    assert "@agent test_a_bad_version_name_or_backend_is_refused_at_decoration.<locals>.add (" in (
        str(caught.value)
    )


def test_from_limit_graph_import_agent_is_the_decorator() -> None:
    assert limit_graph.agent is authoring.agent and limit_graph.Agent is authoring.Agent
    with pytest.raises(AttributeError, match="no attribute 'agnet'"):
        limit_graph.agnet  # noqa: B018


USER_FILE = """\
from pydantic import BaseModel

from limit_graph import agent


class Name(BaseModel):
    name: str


class Greeting(BaseModel):
    text: str


@agent(name="greet", version="1.0.0")
def greet(inputs: Name) -> Greeting:
    return Greeting(text=inputs.name)


@agent(name="agreet", version="1.0.0")
async def agreet(inputs: Name) -> Greeting:
    return Greeting(text=inputs.name)


async def use() -> str:
    now: Greeting = greet(Name(name="a"))
    later: Greeting = await agreet(Name(name="b"))
    reveal_type(greet.task)
    return now.text + later.text


wrong: int = greet(Name(name="c"))
greet("not a model")
"""


def test_decorated_functions_keep_their_signatures_under_mypy_strict(tmp_path: Path) -> None:
    (tmp_path / "user_agents.py").write_text(USER_FILE, encoding="utf-8")
    mypy = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(
        [*mypy, "user_agents.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("user_agents.py")]
    assert lines == [
        'user_agents.py:27: note: Revealed type is "prefect.tasks.Task[[inputs: '
        'user_agents.Name], user_agents.Greeting]"',
        "user_agents.py:31: error: Incompatible types in assignment (expression has type "
        '"Greeting", variable has type "int")  [assignment]',
        'user_agents.py:32: error: Argument 1 to "__call__" of "AgentFunction" has '
        'incompatible type "str"; expected "Name"  [arg-type]',
    ], result.stdout
