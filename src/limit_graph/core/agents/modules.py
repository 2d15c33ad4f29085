"""Agents from Python modules: the ones a module defines, and folders of agent files.

A folder named in ``[agents] paths`` is imported as a package of its own, named
``limit_agents_<folder name>_<8 hex of its absolute path>``: two folders may each
have a ``common.py`` and neither clashes with an installed module.  Every ``*.py``
file directly in the folder is one of its modules, imported in name order (the
folder is not searched recursively, and hidden files are skipped); an
``__init__.py`` runs first, as the package itself.  So the files of a folder import
each other as a package's modules do, relatively (``from .common import Shape``),
and its sub-folders are sub-packages they may import.  The same folder is imported
once per process.

The agents of a module are the ``@agent`` functions (and :class:`AgentSpec` values)
at its top level whose function the module itself defines, so an agent imported
from a sibling is not found twice.

A file that fails to import is a :class:`ConfigError` naming the file, the line
(a syntax error's own, else the deepest line of the folder's code the exception
passed through) and the error; nothing of a failed load stays in ``sys.modules``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import re
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from limit_graph.core.agents.spec import AgentFunction, AgentSpec
from limit_graph.core.errors import ConfigError

__all__ = ["FolderLoader", "agents_defined_in", "loading_folders", "package_name"]

_IMPORT_LOCK = threading.RLock()


def agents_defined_in(module: ModuleType) -> list[AgentSpec]:
    """The agents ``module`` defines at its top level, each once, in definition order."""
    found: dict[int, AgentSpec] = {}
    for value in vars(module).values():
        if isinstance(value, AgentFunction):
            spec = value.spec
        elif isinstance(value, AgentSpec):
            spec = value
        else:
            continue
        if getattr(spec.fn, "__module__", None) != module.__name__ or id(spec) in found:
            continue  # imported from elsewhere (it belongs to its own module), or an alias
        origin = spec.origin or getattr(module, "__file__", None) or module.__name__
        found[id(spec)] = replace(spec, origin=origin) if origin != spec.origin else spec
    return list(found.values())


def package_name(folder: Path) -> str:
    """The package an (absolute) agents folder is imported as.

    >>> package_name(Path("/srv/team agents"))
    'limit_agents_team_agents_0db41aef'
    """
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:8]
    slug = re.sub(r"\W+", "_", folder.name, flags=re.ASCII).strip("_") or "folder"
    return f"limit_agents_{slug}_{digest}"


class FolderLoader:
    """Imports agent folders; remembers the packages it made, to drop them on failure."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def load(self, folder: Path) -> list[AgentSpec]:
        """The agents of every file in ``folder``, file by file in name order."""
        folder = folder.expanduser().resolve()
        if not folder.is_dir():
            state = "is not a folder" if folder.exists() else "does not exist"
            raise ConfigError(
                f"agents folder {folder} {state} ([agents] paths)",
                [{"loc": "agents.paths", "msg": f"{folder} {state}", "type": "value_error"}],
            )
        files = sorted(
            p
            for p in folder.glob("*.py")
            if p.is_file() and not p.name.startswith(".") and p.name != "__init__.py"
        )
        for file in files:
            if not file.stem.isidentifier():
                raise _config_error(
                    file,
                    None,
                    f"{file.name!r} is not a Python module name; rename it to letters, "
                    "digits and '_' (e.g. bell_sweep.py)",
                )
        with _IMPORT_LOCK:
            package = self._package(folder)
            found = agents_defined_in(package)
            for file in files:
                module = _import(f"{package.__name__}.{file.stem}", file, folder)
                found.extend(agents_defined_in(module))
        return found

    def forget(self) -> None:
        """Drop the packages this loader made, and their modules, from ``sys.modules``."""
        with _IMPORT_LOCK:
            for name in self.created:
                for loaded in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
                    del sys.modules[loaded]
            self.created.clear()

    def _package(self, folder: Path) -> ModuleType:
        name = package_name(folder)
        if (existing := sys.modules.get(name)) is not None:
            return existing
        init = folder / "__init__.py"
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        if init.is_file():
            spec = (
                importlib.util.spec_from_file_location(
                    name, init, submodule_search_locations=[str(folder)]
                )
                or spec
            )
        spec.submodule_search_locations = [str(folder)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        self.created.append(name)
        if spec.loader is not None:
            try:
                spec.loader.exec_module(package)
            except (Exception, SystemExit) as exc:
                raise _import_error(init, folder, exc) from None
        return package


@contextmanager
def loading_folders() -> Iterator[FolderLoader]:
    """A :class:`FolderLoader` whose packages are forgotten if the block fails."""
    loader = FolderLoader()
    try:
        yield loader
    except BaseException:
        loader.forget()
        raise


def _import(module_name: str, file: Path, folder: Path) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:
        raise _import_error(file, folder, exc) from None


def _import_error(file: Path, folder: Path, exc: BaseException) -> ConfigError:
    """``exc`` as a start-up error: where in the folder's code it happened, and what."""
    where, line = file, None
    if isinstance(exc, SyntaxError):
        where, line = Path(exc.filename) if exc.filename else file, exc.lineno
        what = f"{type(exc).__name__}: {exc.msg}"
    else:
        frames = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if Path(frame.filename).is_relative_to(folder)
        ]
        if frames:
            where, line = Path(frames[-1].filename), frames[-1].lineno
        what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if (
            isinstance(exc, ModuleNotFoundError)
            and exc.name
            and (folder / f"{exc.name}.py").is_file()
        ):
            what += (
                " (the files of an agents folder import each other relatively: "
                f"from . import {exc.name})"
            )
    return _config_error(file, line, what, where)


def _config_error(
    file: Path, line: int | None, what: str, where: Path | None = None
) -> ConfigError:
    where = where or file
    location = f"{where}, line {line}" if line else str(where)
    if where == file:
        detail = f"agent file {location}: {what}"
    else:
        detail = f"agent file {file} did not load: {location}: {what}"
    error = {"loc": "agents.paths", "file": str(where), "line": line, "msg": what}
    return ConfigError(detail, [{**error, "type": "load_error"}])
