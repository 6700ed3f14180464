"""Build the 10,000-series benchmark catalog from the real catalog.

The real series are exactly the bundled catalog's (``mangahub.catalog.build``, from the
datasets in ``datasets/catalog/``, see its PROVENANCE.md): ~4,300 series. The rest of
the 10,000 are *derived* entries: ``"<real title> (Omnibus Edition)"`` etc., copying the
base series' metadata, with no external ids and a description that says what they
are. They are benchmark filler, not real editions; a ``.meta.json`` file next to the
output records the counts.

The output is a JSON list in the ``SeriesRecord.to_json()`` format and is byte-for-byte
deterministic: same inputs, same file.

    .venv/bin/python bench/build_catalog.py [--out bench/data/catalog_10k.json] [--size 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from mangahub.catalog.build import Sources, build
from mangahub.catalog.records import SeriesRecord

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "catalog_10k.json"
# Suffixes for derived entries, used in this order: one pass over the real catalog each.
EDITION_SUFFIXES = ("Omnibus Edition", "Deluxe Edition", "Collector's Edition", "Box Set")


def derived_entries(real: list[SeriesRecord], count: int) -> list[SeriesRecord]:
    """``count`` filler entries: one pass per edition suffix over the real catalog,
    most popular series first, so the filler follows the real popularity curve."""
    if count > len(real) * len(EDITION_SUFFIXES):
        raise SystemExit(f"cannot derive {count} entries from {len(real)} real series")
    out: list[SeriesRecord] = []
    for i in range(count):
        base = real[i % len(real)]
        suffix = EDITION_SUFFIXES[i // len(real)]
        out.append(
            replace(
                base,
                title=f"{base.title} ({suffix})",
                alt_titles=(),
                description=(
                    f"Benchmark catalog entry derived from the real series "
                    f'"{base.title}"; not a real edition.'
                ),
                cover_url=None,
                mangadex_id=None,
                anilist_id=None,
                mal_id=None,
                # Lower than the base so derived entries do not crowd the top of lists.
                popularity=base.popularity // (4 * (i // len(real) + 1)),
            )
        )
    return out


def build_bench(size: int) -> tuple[list[SeriesRecord], dict[str, Any]]:
    real, real_meta = build(Sources.in_repo(ROOT))  # most popular first
    real = real[:size]
    derived = derived_entries(real, max(0, size - len(real)))
    records = real + derived
    meta = {
        "size": len(records),
        "real_series": len(real),
        "derived_entries": len(derived),
        "real_catalog": real_meta,
        "derived_rule": (
            "one pass per suffix over the real series by popularity: "
            + ", ".join(f'"<title> ({x})"' for x in EDITION_SUFFIXES)
            + "; metadata copied from the base series, no external ids, "
            "popularity divided by 4*pass; description states it is not a real edition"
        ),
        "genres": sorted({g for r in records for g in r.genres}),
    }
    return records, meta


def write(records: list[SeriesRecord], meta: dict[str, Any], out: Path) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps([r.to_json() for r in records], ensure_ascii=False, indent=None)
    out.write_text(body + "\n", encoding="utf-8")
    digest = hashlib.sha256(body.encode()).hexdigest()
    meta = {**meta, "sha256": digest}
    meta_path = out.with_suffix(".meta.json")
    meta_path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, default=10_000)
    args = parser.parse_args(argv)
    records, meta = build_bench(args.size)
    digest = write(records, meta, args.out)
    print(
        f"wrote {args.out}: {meta['size']} series "
        f"({meta['real_series']} real, {meta['derived_entries']} derived) sha256={digest[:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
