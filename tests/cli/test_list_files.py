"""``mangahub library import FILE`` and ``mangahub library export`` against a live server."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from mangahub.lists import parse_list
from tests.cli.conftest import MakeCli
from tests.lists.helpers import MAL_FIXTURE, XXE


def test_import_export_and_errors(make_cli: MakeCli, tmp_path: Path) -> None:
    cli = make_cli()
    cli.register_and_login("lists")
    packed = tmp_path / "mangalist_1612345678_-_123456.xml.gz"
    packed.write_bytes(gzip.compress(MAL_FIXTURE.read_bytes()))

    dry = cli.run("library", "import", str(packed), "--dry-run").ok()
    assert "would import 216 new" in dry.stdout
    report = cli.run("library", "import", str(packed), "--json").json()
    assert (report["imported"], report["skipped"], report["dry_run"]) == (216, [], False)
    again = cli.run("library", "import", str(packed)).ok()
    assert "imported 0 new, 216 updated" in again.stdout

    out = tmp_path / "list.json"
    cli.run("library", "export", str(out), "--format", "json").ok()
    assert len(orjson.loads(out.read_bytes())["entries"]) == 216
    mal = tmp_path / "list.xml"
    cli.run("library", "export", str(mal)).ok()
    assert len(parse_list(mal.read_bytes()).entries) == 216

    hostile = tmp_path / "xxe.xml"
    hostile.write_bytes(XXE)
    cli.run("library", "import", str(hostile)).one_line_error(2, "entities")
    cli.run("library", "import", str(tmp_path / "missing.xml")).one_line_error(2, "cannot read")
    cli.run("library", "export", "--format", "csv").one_line_error(2)
