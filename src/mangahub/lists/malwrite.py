"""MAL XML as MyAnimeList's own export writes it, so MAL's importer takes it back."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from mangahub.domain.enums import ReadingStatus
from mangahub.lists.records import ImportedEntry

_STATUS_NAMES = {
    ReadingStatus.READING: "Reading",
    ReadingStatus.COMPLETED: "Completed",
    ReadingStatus.ON_HOLD: "On-Hold",
    ReadingStatus.DROPPED: "Dropped",
    ReadingStatus.PLAN_TO_READ: "Plan to Read",
}
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _cdata(text: str | None) -> str:
    # "]]>" would end the section early: split it across two sections.
    safe = _NOT_XML.sub("", text or "").replace("]]>", "]]]]><![CDATA[>")
    return f"<![CDATA[{safe}]]>"


def _plain(text: str) -> str:
    return _NOT_XML.sub("", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _date(value: date | None) -> str:
    return "0000-00-00" if value is None else f"{value:%Y-%m-%d}"


def write_mal_xml(
    entries: Iterable[ImportedEntry], *, user_name: str, update_on_import: bool = True
) -> bytes:
    """A MAL manga list export. Entries without a MAL id are left out: MAL's
    importer identifies series by that id only."""
    kept = [e for e in entries if e.series.mal_id]
    totals = dict.fromkeys(ReadingStatus, 0)
    for e in kept:
        totals[e.status] += 1
    update = "1" if update_on_import else "0"
    out = [
        '<?xml version="1.0" encoding="UTF-8" ?>\n',
        "<myanimelist>\n",
        "\t<myinfo>\n",
        "\t\t<user_id></user_id>\n",
        f"\t\t<user_name>{_plain(user_name)}</user_name>\n",
        "\t\t<user_export_type>2</user_export_type>\n",
        f"\t\t<user_total_manga>{len(kept)}</user_total_manga>\n",
        f"\t\t<user_total_reading>{totals[ReadingStatus.READING]}</user_total_reading>\n",
        f"\t\t<user_total_completed>{totals[ReadingStatus.COMPLETED]}</user_total_completed>\n",
        f"\t\t<user_total_onhold>{totals[ReadingStatus.ON_HOLD]}</user_total_onhold>\n",
        f"\t\t<user_total_dropped>{totals[ReadingStatus.DROPPED]}</user_total_dropped>\n",
        f"\t\t<user_total_plantoread>{totals[ReadingStatus.PLAN_TO_READ]}</user_total_plantoread>\n",
        "\t</myinfo>\n",
    ]
    for e in kept:
        s = e.series
        out.append(
            "\t<manga>\n"
            f"\t\t<manga_mangadb_id>{s.mal_id}</manga_mangadb_id>\n"
            f"\t\t<manga_title>{_cdata(s.title)}</manga_title>\n"
            f"\t\t<manga_volumes>{s.volumes or 0}</manga_volumes>\n"
            f"\t\t<manga_chapters>{s.total_chapters or 0}</manga_chapters>\n"
            "\t\t<my_id>0</my_id>\n"
            f"\t\t<my_read_volumes>{e.volume or 0}</my_read_volumes>\n"
            f"\t\t<my_read_chapters>{int(e.chapter)}</my_read_chapters>\n"
            f"\t\t<my_start_date>{_date(e.started_on)}</my_start_date>\n"
            f"\t\t<my_finish_date>{_date(e.finished_on)}</my_finish_date>\n"
            "\t\t<my_scanalation_group><![CDATA[]]></my_scanalation_group>\n"
            f"\t\t<my_score>{e.score or 0}</my_score>\n"
            "\t\t<my_storage></my_storage>\n"
            "\t\t<my_retail_volumes>0</my_retail_volumes>\n"
            f"\t\t<my_status>{_STATUS_NAMES[e.status]}</my_status>\n"
            f"\t\t<my_comments>{_cdata(e.notes)}</my_comments>\n"
            f"\t\t<my_times_read>{e.rereads}</my_times_read>\n"
            "\t\t<my_tags><![CDATA[]]></my_tags>\n"
            "\t\t<my_priority>Low</my_priority>\n"
            "\t\t<my_reread_value></my_reread_value>\n"
            f"\t\t<my_rereading>{'YES' if e.rereading else 'NO'}</my_rereading>\n"
            "\t\t<my_discuss>YES</my_discuss>\n"
            "\t\t<my_sns>default</my_sns>\n"
            f"\t\t<update_on_import>{update}</update_on_import>\n"
            "\t</manga>\n"
        )
    out.append("</myanimelist>\n")
    return "".join(out).encode()
