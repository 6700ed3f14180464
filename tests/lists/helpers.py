"""Small builders for list files in tests."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "lists"
MAL_FIXTURE = DATA / "mal_manga_malscraper_cultured_snowie.xml"
ANILIST_FIXTURE = DATA / "anilist_manga_collection_cultured_snowie.json"


def mal_entry(**fields: str) -> str:
    base = {
        "manga_mangadb_id": "2",
        "manga_title": "<![CDATA[Berserk]]>",
        "manga_volumes": "0",
        "manga_chapters": "0",
        "my_read_volumes": "3",
        "my_read_chapters": "30",
        "my_start_date": "2020-01-02",
        "my_finish_date": "0000-00-00",
        "my_score": "9",
        "my_status": "Reading",
        "my_comments": "<![CDATA[]]>",
        "my_times_read": "0",
        "my_rereading": "NO",
        "update_on_import": "1",
    }
    base.update(fields)
    body = "".join(f"<{k}>{v}</{k}>" for k, v in base.items())
    return f"<manga>{body}</manga>"


def mal_file(*entries: str, export_type: str = "2") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<myanimelist><myinfo>'
        f"<user_export_type>{export_type}</user_export_type></myinfo>"
        + "".join(entries)
        + "</myanimelist>"
    ).encode()


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE myanimelist [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<myanimelist><manga><manga_mangadb_id>1</manga_mangadb_id>
<manga_title>&xxe;</manga_title><my_status>Reading</my_status></manga></myanimelist>"""

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]>\n<myanimelist><manga><manga_title>&lol9;</manga_title></manga></myanimelist>"
)
