'''``@agent``: a typed function becomes an agent the platform can run.

The function takes one pydantic model and returns another (sync or ``async``); the
decorator reads both from its annotations, makes the Prefect task, and returns an
:class:`Agent`: still the function (calling it calls it, with its signature kept for
type checkers), with ``.spec`` (what the platform registers) and ``.task`` (the
Prefect task, for use in a Prefect flow of your own).  Nothing is registered
globally: the platform finds agents by importing the files of the folders named in
``[agents] paths`` (``limit_graph.core.agents.modules``) or the modules and lists its
``limit_graph.agents`` entry points name, and takes every agent defined there.

>>> from pydantic import BaseModel
>>> class Name(BaseModel):
...     name: str
>>> class Greeting(BaseModel):
...     text: str
>>> @agent(name="greet", version="1.0.0", backends=["local", "remote"])
... def greet(inputs: Name) -> Greeting:
...     """Greets someone by name.
...
...     The description is this first paragraph, unless ``description=`` says otherwise.
...     """
...     return Greeting(text=f"Hello, {inputs.name}!")
>>> greet(Name(name="Ada"))
Greeting(text='Hello, Ada!')
>>> greet.spec.reference, greet.spec.description
('greet@1.0.0', 'Greets someone by name.')
>>> [b.value for b in greet.spec.backends]
['local', 'remote']

A function whose annotations are not pydantic models is refused where it is defined:

>>> @agent(name="bad", version="1.0.0")  # doctest: +ELLIPSIS
... def bad(inputs: dict) -> str:
...     return "no"
Traceback (most recent call last):
...
TypeError: @agent bad (<doctest ...>:1): the parameter 'inputs' must be annotated with a ...
'''

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from pydantic import BaseModel

from limit_graph.core.agents import (
    AgentFunction,
    AgentSpec,
    check_agent_name,
    check_agent_version,
)
from limit_graph.core.models import BackendKind

__all__ = ["Agent", "agent"]

P = ParamSpec("P")
R = TypeVar("R")


class Agent(AgentFunction[P, R]):
    """What ``@agent`` returns: the function, its :class:`AgentSpec` and its Prefect task."""

    def __init__(self, fn: Callable[P, R], spec: AgentSpec, prefect_task: Task[P, R]) -> None:
        super().__init__(fn, spec)
        self.task = prefect_task


def agent(
    *,
    version: str,
    name: str | None = None,
    backends: Iterable[BackendKind | str] = (BackendKind.LOCAL,),
    description: str | None = None,
    deterministic: bool = False,
    blocking: bool = True,
    inline: bool = True,
    aggregate: Callable[[dict[str, Any]], Any] | None = None,
) -> Callable[[Callable[P, R]], Agent[P, R]]:
    """Make the decorated function an agent.

    ``name`` defaults to the function's name and ``description`` to the first
    paragraph of its docstring; ``version`` is a PEP 440 version (several versions of
    one name coexist; a bare name means the newest).  ``backends`` are the kinds it may
    run on (``local``, ``remote``, ``quantum``).  ``deterministic`` lets the platform
    answer repeated inputs from its result cache; ``blocking=False`` lets a sync
    function run on the event loop (only for trivial work); ``inline=False`` sends
    local work to the local pool's runners; ``aggregate`` combines fan-out results
    (instance name → result).  Bad annotations are a :class:`TypeError`, a bad name,
    version or backend a :class:`ValueError`, both raised here and naming the function.
    """
    kinds = tuple(backends)

    def decorate(fn: Callable[P, R]) -> Agent[P, R]:
        where = _where(fn)
        input_model, output_model = _models(fn, where)
        try:
            spec_name = check_agent_name(fn.__name__ if name is None else name)
            check_agent_version(version)
            spec_backends = _backends(kinds)
        except ValueError as exc:
            raise ValueError(f"@agent {where}: {exc}") from None
        prefect_task = task(name=spec_name, version=version, persist_result=False)(fn)
        spec = AgentSpec(
            name=spec_name,
            version=version,
            description=_first_paragraph(fn) if description is None else description,
            input_model=input_model,
            output_model=output_model,
            fn=fn,
            backends=spec_backends,
            deterministic=deterministic,
            blocking=blocking,
            inline=inline,
            aggregate=aggregate,
            task=prefect_task,
            origin=_origin(fn),
        )
        return Agent(fn, spec, prefect_task)

    return decorate


def _origin(fn: Callable[..., Any]) -> str:
    code = getattr(inspect.unwrap(fn), "__code__", None)
    if code is None:
        return getattr(fn, "__module__", None) or "?"
    return f"{code.co_filename}:{code.co_firstlineno}"


def _where(fn: Callable[..., Any]) -> str:
    label = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{label} ({_origin(fn)})"


def _models(fn: Callable[..., Any], where: str) -> tuple[type[BaseModel], type[BaseModel]]:
    """The input and output models of ``fn``, from its annotations."""
    if not inspect.isfunction(inspect.unwrap(fn)):
        raise TypeError(f"@agent {where}: decorates a function, not {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"@agent {where}: must return its output, not yield it")
    parameters = list(inspect.signature(fn).parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(parameters) != 1 or parameters[0].kind not in positional:
        raise TypeError(
            f"@agent {where}: takes exactly one parameter, its inputs as a pydantic model "
            "(def f(inputs: MyInput) -> MyOutput)"
        )
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(f"@agent {where}: an annotation cannot be resolved: {exc}") from None
    parameter = parameters[0].name
    return (
        _model(hints.get(parameter), f"the parameter {parameter!r}", where),
        _model(hints.get("return"), "the return value", where),
    )


def _model(annotation: object, what: str, where: str) -> type[BaseModel]:
    if annotation is None:
        raise TypeError(
            f"@agent {where}: {what} needs an annotation, a pydantic BaseModel subclass"
        )
    if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
        shown = annotation.__name__ if inspect.isclass(annotation) else repr(annotation)
        raise TypeError(
            f"@agent {where}: {what} must be annotated with a pydantic BaseModel subclass, "
            f"not {shown}"
        )
    return annotation


def _backends(kinds: tuple[BackendKind | str, ...]) -> tuple[BackendKind, ...]:
    if not kinds:
        raise ValueError("backends is empty; name at least one of local, remote, quantum")
    known = ", ".join(kind.value for kind in BackendKind)
    found: list[BackendKind] = []
    for kind in kinds:
        try:
            backend = BackendKind(kind)
        except ValueError:
            raise ValueError(f"unknown backend {kind!r}: use {known}") from None
        if backend not in found:
            found.append(backend)
    return tuple(found)


def _first_paragraph(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n", 1)[0].split())
