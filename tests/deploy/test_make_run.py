"""``make run`` on a fresh checkout installs what running needs, not the development
tools (a dry run: ``make -n`` prints the commands without running them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def dry_run(repo_root: Path, venv: Path, target: str) -> str:
    # Run under `make test`, the outer make's flags (-j, --output-sync) would reach this
    # one through the environment and add "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_the_runtime_lock_only(repo_root: Path, tmp_path: Path) -> None:
    commands = dry_run(repo_root, tmp_path / "venv", "run")
    assert "-r requirements.lock" in commands
    assert "requirements-dev.lock" not in commands
    assert commands.strip().endswith("mangahub serve")
    # The development targets still bring the tools.
    assert "-r requirements-dev.lock" in dry_run(repo_root, tmp_path / "venv", "lint")
