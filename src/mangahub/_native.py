"""The compiled builds of MangaHub's hottest pure modules, when there are any.

``make native`` (scripts/build_native.py) compiles a few modules with mypyc into
``mangahub/_native/``, next to a manifest of the source each was built from. They are
loaded in place of their source only while every one of those sources is unchanged
and the build is for this interpreter: all or none, since compiled modules call each
other's machine code directly. Anything else imports the source, as without a build.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

DIRECTORY = Path(__file__).with_name("_native")


def source_of(module: str, sources: Path) -> Path:
    """The source file of ``module`` under ``sources`` (the directory holding the
    ``mangahub`` package)."""
    return sources.joinpath(*module.split(".")).with_suffix(".py")


def usable_build(directory: Path, sources: Path) -> dict[str, Path]:
    """The extension file of every module the build in ``directory`` holds, by module
    name; empty when there is no build, it is for another interpreter, or a module's
    source under ``sources`` (the directory holding the ``mangahub`` package) changed."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest["suffix"] not in importlib.machinery.EXTENSION_SUFFIXES:
            return {}
        for module, digest in manifest["sources"].items():
            if hashlib.sha256(source_of(module, sources).read_bytes()).hexdigest() != digest:
                return {}
        return {module: directory / name for module, name in manifest["extensions"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # no build, or a broken one: the sources run


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the compiled modules (and the library they share) in the build."""

    def __init__(self, extensions: Mapping[str, Path]) -> None:
        self._extensions = dict(extensions)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        file = self._extensions.get(fullname)
        if file is None:
            return None
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(file))
        return importlib.util.spec_from_file_location(fullname, file, loader=loader)


COMPILED: frozenset[str] = frozenset()
"""The modules this process imports compiled (the shared library left out)."""


def install() -> None:
    """Put the build's modules ahead of their sources (called by ``import mangahub``)."""
    global COMPILED
    extensions = usable_build(DIRECTORY, Path(__file__).parent.parent)
    if extensions:
        sys.meta_path.insert(0, _Finder(extensions))
        COMPILED = frozenset(name for name in extensions if not name.endswith("__mypyc"))
