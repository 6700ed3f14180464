"""Compile MangaHub's hottest pure modules with mypyc (``make native``).

The compiled modules go to ``src/mangahub/_native/`` with a manifest of the source
each was built from (its SHA-256); :mod:`mangahub._native` loads one only while its
source is unchanged, so an edit never runs stale machine code: the module is then
imported from its source until the next build. The source tree itself gets no
extension files, which Python would otherwise prefer to the edited ``.py``.

Only modules without coroutines are compiled: mypyc still mishandles exception state
in coroutines that await inside ``except`` or ``finally`` (mypyc/mypyc#1114, #1177).

    python scripts/build_native.py            # build; on failure, say why and exit 0
    python scripts/build_native.py --require  # build; on failure, exit 1 (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.machinery
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from mangahub._native import source_of, usable_build

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
OUTPUT = SOURCE / "mangahub" / "_native"

# The TCP door's per-line work (cutting and parsing lines, the message rate limit) and
# the reading list's per-write work (the rules, the transaction, the entries' JSON).
MODULES = ("mangahub.tcp.protocol", "mangahub.ratelimit", "mangahub.services.entry_writes")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_modules(work: Path) -> dict[str, Path]:
    """Every extension the build made, by module name (the compiled modules and the
    library they share)."""
    from mypyc.build import mypycify
    from setuptools import Distribution
    from setuptools.command.build_ext import build_ext

    os.chdir(SOURCE)  # mypyc names modules by their path from here
    extensions = mypycify(
        # The project's own mypy settings (strict): what mypyc trusts, mypy proves.
        ["--config-file", str(ROOT / "pyproject.toml")]
        + [str(source_of(m, SOURCE).relative_to(SOURCE)) for m in MODULES],
        opt_level="3",
        target_dir=str(work / "c"),
    )
    command = build_ext(Distribution({"name": "mangahub-native", "ext_modules": extensions}))
    command.build_lib = str(work / "lib")
    command.build_temp = str(work / "tmp")
    command.ensure_finalized()
    command.run()
    built: dict[str, Path] = {}
    for extension in extensions:
        built[extension.name] = Path(command.get_ext_fullpath(extension.name))
    return built


def up_to_date() -> bool:
    """The build there is of these modules, from their current source."""
    return usable_build(OUTPUT, SOURCE).keys() >= set(MODULES)


def build() -> None:
    if up_to_date():
        print(f"{OUTPUT.relative_to(ROOT)} is up to date")
        return
    with tempfile.TemporaryDirectory(prefix="mangahub-native-") as tmp:
        built = compile_modules(Path(tmp))
        shutil.rmtree(OUTPUT, ignore_errors=True)
        OUTPUT.mkdir()
        files: dict[str, str] = {}
        for name, path in built.items():
            shutil.copy2(path, OUTPUT / path.name)
            files[name] = path.name
    manifest = {
        "suffix": importlib.machinery.EXTENSION_SUFFIXES[0],
        "extensions": files,
        "sources": {m: digest(source_of(m, SOURCE)) for m in MODULES},
    }
    (OUTPUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"compiled {', '.join(MODULES)} into {OUTPUT.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--require", action="store_true", help="fail when the build fails")
    args = parser.parse_args()
    try:
        build()
    except (Exception, SystemExit) as exc:  # setuptools exits on a compiler error
        shutil.rmtree(OUTPUT, ignore_errors=True)
        print(f"native build failed ({exc}); MangaHub runs on its pure modules", file=sys.stderr)
        if args.require:
            sys.exit(1)


if __name__ == "__main__":
    main()
