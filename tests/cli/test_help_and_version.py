"""``--version``, and on/off options shown as flags in the help (no server needed)."""

from __future__ import annotations

import os
import subprocess

from mangahub import __version__
from tests.cli.conftest import MANGAHUB


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGAHUB_")}
    env.update(COLUMNS="200", TERM="dumb")
    return subprocess.run(
        [MANGAHUB, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_version_prints_the_version_and_exits_zero() -> None:
    done = run("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"mangahub {__version__}")


def test_flags_show_as_flags_not_as_bool_values() -> None:
    for command in (["library", "list"], ["notifications", "list"], ["udp", "listen"]):
        done = run(*command, "--help")
        assert done.returncode == 0, done.stderr
        [line] = [line for line in done.stdout.splitlines() if "--json" in line and "│" in line]
        assert "<bool>" not in line, line
