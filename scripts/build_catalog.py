#!/usr/bin/env python3
"""Build the bundled catalog (``src/mangahub/catalog/data/catalog.json.gz``) from the
public datasets in ``datasets/catalog/`` (see its PROVENANCE.md) and the MangaDex API
responses recorded in ``tests/data/sources/mangadex/``.

Deterministic: the same inputs give a byte-identical file (gzip without a timestamp).
The join and the main title rule are described in ``mangahub.catalog.build``.

    .venv/bin/python scripts/build_catalog.py [--out PATH] [--check]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from mangahub.catalog.build import Sources, build
from mangahub.catalog.loader import FORMAT_VERSION
from mangahub.catalog.records import SeriesRecord

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "src" / "mangahub" / "catalog" / "data" / "catalog.json.gz"


def encode(records: list[SeriesRecord], meta: dict[str, Any]) -> bytes:
    document = {
        "format": FORMAT_VERSION,
        "meta": meta,
        "series": [r.to_compact_json() for r in records],
    }
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return gzip.compress(body.encode("utf-8"), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--check", action="store_true", help="fail if the file on disk differs from a fresh build"
    )
    args = parser.parse_args(argv)
    records, meta = build(Sources.in_repo(ROOT))
    data = encode(records, meta)
    digest = hashlib.sha256(data).hexdigest()[:16]
    if args.check:
        same = args.out.exists() and args.out.read_bytes() == data
        print(f"{args.out}: {'up to date' if same else 'OUT OF DATE'} ({digest})")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(records)} series, {len(data):,} bytes, sha256 {digest}")
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
