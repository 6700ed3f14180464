"""The compiled modules (``make native``): imported while their sources are the ones
they were built from, and never once a source has changed (the source runs instead)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mangahub
from mangahub import _native

SOURCES = Path(mangahub.__file__).resolve().parent.parent
BUILT = _native.usable_build(_native.DIRECTORY, SOURCES)
needs_build = pytest.mark.skipif(not BUILT, reason="no native build: run `make native`")
# What scripts/build_native.py compiles.
NATIVE = {"mangahub.tcp.protocol", "mangahub.ratelimit", "mangahub.services.entry_writes"}

PROBE = (
    "import mangahub._native as n, mangahub.tcp.protocol as p, mangahub.ratelimit as r; "
    "print(sorted(n.COMPILED)); print(p.__file__); print(r.__file__)"
)


def probe(sources: Path) -> tuple[str, str, str]:
    """What ``import mangahub`` from ``sources`` compiles, and where the two compiled
    modules come from."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=sources,
        env={"PYTHONPATH": str(sources), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    compiled, protocol, ratelimit = done.stdout.splitlines()
    return compiled, protocol, ratelimit


@needs_build
def test_this_process_runs_the_compiled_modules() -> None:
    assert _native.COMPILED == NATIVE
    for name in NATIVE:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert module.__file__.endswith(importlib.machinery.EXTENSION_SUFFIXES[0])


@needs_build
def test_a_changed_source_runs_as_source_and_nothing_stays_compiled(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(
        SOURCES / "mangahub", copy / "mangahub", ignore=shutil.ignore_patterns("__pycache__")
    )
    compiled, protocol, _ = probe(copy)
    assert compiled == str(sorted(NATIVE))
    assert protocol.endswith(".so")

    # One source edited: all or none (compiled modules call each other's machine code).
    with (copy / "mangahub" / "ratelimit.py").open("a") as source:
        source.write("# edited\n")
    compiled, protocol, ratelimit = probe(copy)
    assert compiled == "[]"
    assert protocol == str(copy / "mangahub" / "tcp" / "protocol.py")
    assert ratelimit == str(copy / "mangahub" / "ratelimit.py")


def test_only_an_intact_build_of_these_sources_for_this_interpreter_is_used(tmp_path: Path) -> None:
    (tmp_path / "mangahub").mkdir()
    (tmp_path / "mangahub" / "ratelimit.py").write_text("RATE = 1\n")
    build = tmp_path / "build"
    build.mkdir()

    def built(suffix: str, source: bytes) -> dict[str, Path]:
        manifest = {
            "suffix": suffix,
            "extensions": {"mangahub.ratelimit": "ratelimit.so"},
            "sources": {"mangahub.ratelimit": hashlib.sha256(source).hexdigest()},
        }
        (build / "manifest.json").write_text(json.dumps(manifest))
        return _native.usable_build(build, tmp_path)

    this = importlib.machinery.EXTENSION_SUFFIXES[0]
    assert built(this, b"RATE = 1\n") == {"mangahub.ratelimit": build / "ratelimit.so"}
    assert built(this, b"RATE = 2\n") == {}  # built from another source
    assert built(".cpython-399-x86_64-linux-gnu.so", b"RATE = 1\n") == {}
    assert _native.usable_build(tmp_path / "nothing", tmp_path) == {}
    (build / "manifest.json").write_text("{not json")
    assert _native.usable_build(build, tmp_path) == {}
    (build / "manifest.json").write_text(json.dumps({"suffix": this}))  # no sources
    assert _native.usable_build(build, tmp_path) == {}
