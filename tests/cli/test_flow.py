"""The everyday flow through the real ``mangahub`` executable against a live server:
register → login → search → library → progress → rating → comment → notifications,
in human and ``--json`` forms, and the one-line errors for bad input."""

from __future__ import annotations

import stat
import uuid

import pytest

from mangahub.app import Runtime
from mangahub.cli.outbox import Outbox
from tests.cli.conftest import PASSWORD, MakeCli, internal_token, trigger_new_chapter
from tests.conftest import ADMIN_PASSWORD, Backend
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow


def test_reader_flow_human_and_json(
    make_cli: MakeCli, cli_server: LiveServer, backend: Backend, runtime: Runtime
) -> None:
    cli = make_cli()
    name = f"flow_{uuid.uuid4().hex[:10]}"

    # register + login, human form
    out = cli.run("auth", "register", name, "--email", f"{name}@example.com", "-p", PASSWORD).ok()
    assert f"account {name} created" in out.stdout
    again = cli.run("auth", "register", name, "--email", f"{name}@example.com", "-p", PASSWORD)
    again.one_line_error(5)
    out = cli.run("auth", "login", name, "-p", PASSWORD).ok()
    assert f"logged in to {cli.server} as {name}" in out.stdout
    # No keyring backend in this environment: the 0600 file holds the tokens.
    assert stat.S_IMODE(cli.credentials_file.stat().st_mode) == 0o600
    status = cli.invoke("auth", "status", "--json").json()
    assert status["logged_in"] is True and status["user"]["username"] == name
    assert status["stored_in"] == "file"
    assert name in cli.invoke("auth", "status").ok().stdout

    # search, both forms
    found = cli.invoke("manga", "search", "one piece", "--limit", "5", "--json").json()
    assert found["total"] >= 1 and found["page_size"] == 5
    manga = found["data"][0]
    assert "one piece" in manga["title"].lower()
    human = cli.invoke("manga", "search", "one piece", "--limit", "5").ok().stdout
    assert manga["title"] in human and "Search results" in human
    filtered = cli.invoke(
        "manga", "search", "--genre", "action", "--status", "ongoing", "--sort", "title",
        "--order", "asc", "--limit", "3", "--json",
    ).json()  # fmt: skip
    assert filtered["filters"]["sort_by"] == "title" and filtered["filters"]["order"] == "asc"
    titles = [m["title"] for m in filtered["data"]]
    assert titles == sorted(titles, key=str.lower) or titles == sorted(titles)
    assert all(m["status"] == "ongoing" for m in filtered["data"])
    details = cli.invoke("manga", "get", str(manga["id"]), "--json").json()
    assert details["id"] == manga["id"] and "description" in details
    assert manga["title"] in cli.invoke("manga", "get", str(manga["id"])).ok().stdout

    # library
    mid = str(manga["id"])
    out = cli.invoke("library", "add", mid, "--status", "reading").ok()
    assert "added" in out.stdout and "reading" in out.stdout
    cli.invoke("library", "add", mid).one_line_error(5, "already")
    entries = cli.invoke("library", "list", "--json").json()
    assert [e["manga_id"] for e in entries["data"]] == [manga["id"]]
    assert manga["title"] in cli.invoke("library", "list").ok().stdout
    updated = cli.invoke("library", "update", mid, "--status", "on_hold", "--json").json()
    assert updated["status"] == "on_hold"

    # progress (no daemon running: straight over HTTP)
    before = cli.stored()
    progress = cli.invoke("progress", "update", mid, "12.5", "--json").json()
    assert progress["chapter"] == 12.5 and progress["version"] >= 1
    assert "chapter 13" in cli.invoke("progress", "update", mid, "13").ok().stdout
    shown = cli.invoke("progress", "show", mid, "--json").json()
    assert shown["chapter"] == 13 and shown["version"] == progress["version"] + 1
    assert "13" in cli.invoke("progress", "show").ok().stdout
    # One entry: a chapter write keeps its status, and every view shows the title.
    assert shown["status"] == "on_hold"
    total = manga.get("total_chapters")
    listing = cli.invoke("library", "list").ok().stdout
    assert f"13 / {'?' if total is None else total}" in listing and "on_hold" in listing
    assert manga["title"] in cli.invoke("progress", "show").ok().stdout
    assert manga["title"] in cli.invoke("progress", "show", mid).ok().stdout
    assert cli.invoke("library", "list", "--status", "dropped", "--json").json()["total"] == 0
    held = cli.invoke("library", "list", "--status", "ON_HOLD", "--json").json()
    assert [e["manga_id"] for e in held["data"]] == [manga["id"]]
    changed = cli.invoke("library", "update", mid, "--volume", "2", "--started", "2024-01-31",
                         "--notes", "private note", "--rereads", "1", "--json").json()  # fmt: skip
    assert (changed["volume"], changed["started_on"], changed["notes"]) == (
        2,
        "2024-01-31",
        "private note",
    )
    assert (changed["rereads"], changed["chapter"], changed["status"]) == (1, 13, "on_hold")
    cli.invoke("library", "update", mid, "--started", "31/01/2024").one_line_error(2, "date")
    cli.invoke("library", "update", mid).one_line_error(2, "nothing to change")
    # A 15-minute token is far from expiry: no refresh happened.
    assert cli.stored() == before

    # rating
    rating = cli.invoke("rating", "rate", mid, "8", "--json").json()
    assert rating["score"] == 8 and rating["manga_id"] == manga["id"]
    assert "9/10" in cli.invoke("rating", "rate", mid, "9").ok().stdout
    assert cli.invoke("progress", "show", mid, "--json").json()["score"] == 9
    cleared = cli.invoke("library", "update", mid, "--clear-score", "--json").json()
    assert cleared["score"] is None
    cli.invoke("rating", "rate", mid, "11").one_line_error(2, "less than or equal to 10")

    # comments
    text = f"the art in this one {uuid.uuid4().hex[:6]}"
    comment = cli.invoke("comment", "create", mid, text, "--json").json()
    assert comment["content"] == text and comment["username"] == name
    listed = cli.invoke("comment", "list", mid, "--json").json()
    assert listed["data"][0]["id"] == comment["id"]
    assert text in cli.invoke("comment", "list", mid).ok().stdout
    cli.invoke("comment", "create", mid, "x" * 2001).one_line_error(2)

    # notifications: the manga is in the library, so a new chapter reaches this user
    assert trigger_new_chapter(cli_server, internal_token(backend, runtime), manga["id"],
                               manga["title"], 2001) >= 1  # fmt: skip
    notes = cli.invoke("notifications", "list", "--unread", "--json").json()
    mine = [n for n in notes["data"] if n["manga_id"] == manga["id"]]
    assert mine and mine[0]["kind"] == "new_chapter" and mine[0]["read"] is False
    assert "2001" in cli.invoke("notifications", "list").ok().stdout
    read = cli.invoke("notifications", "read", str(mine[0]["id"]), "--json").json()
    assert read["read"] is True
    cli.invoke("notifications", "read").one_line_error(2, "--all")
    assert "marked read" in cli.invoke("notifications", "read", "--all").ok().stdout

    # removing
    assert "removed" in cli.invoke("library", "remove", mid).ok().stdout
    cli.invoke("library", "remove", mid).one_line_error(4)


def test_errors_are_one_line_with_exit_codes(make_cli: MakeCli) -> None:
    cli = make_cli()
    # not logged in
    cli.invoke("library", "list").one_line_error(3, "not logged in", "mangahub auth login")
    # unknown manga (no login needed to read the catalog)
    cli.invoke("manga", "get", "987654321").one_line_error(4, "not found")
    # wrong password
    cli.invoke("auth", "login", "nobody_here", "-p", "wrong-password").one_line_error(3)
    # validation from the server: a too-short username
    cli.invoke("auth", "register", "x", "--email", "x@example.com", "-p", PASSWORD).one_line_error(
        2
    )
    # nobody listens there
    dead = cli.run("manga", "search", "one", "--server", "http://127.0.0.1:9")
    dead.one_line_error(6, "cannot reach MangaHub at http://127.0.0.1:9")
    cli.invoke("manga", "search", "--server", "ftp://nowhere").one_line_error(2, "invalid server")
    # bad input caught before any request (Typer's usage error, exit 2)
    usage = cli.invoke("manga", "get", "not-a-number")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_federated_search_over_grpc(make_cli: MakeCli) -> None:
    cli = make_cli()
    over_http = cli.invoke("manga", "search", "one piece", "--json").json()
    body = cli.invoke(
        "manga", "search", "one piece", "--via", "grpc", "--source", "local", "--json"
    ).json()
    assert [m["id"] for m in body["data"]] == [m["id"] for m in over_http["data"]]
    assert all(m["source"] == "local" for m in body["data"])
    assert [s["name"] for s in body["sources"]] == ["local"]
    human = cli.invoke("manga", "search", "one piece", "--via", "grpc", "--source", "local")
    assert "Federated search" in human.ok().stdout and "local: ok" in human.stdout
    cli.invoke("manga", "search", "x", "--via", "grpc", "--genre", "action").one_line_error(2)
    dead = cli.invoke("manga", "search", "x", "--via", "grpc", "--grpc", "127.0.0.1:9")
    dead.one_line_error(6, "cannot reach MangaHub gRPC at 127.0.0.1:9")


def test_admin_creates_manga_and_users_cannot(make_cli: MakeCli) -> None:
    admin = make_cli()
    admin.run("auth", "login", "admin", "-p", ADMIN_PASSWORD).ok()
    title = f"CLI Series {uuid.uuid4().hex[:8]}"
    created = admin.run(
        "manga", "create", title, "--author", "A. Writer", "--chapters", "12", "--year", "2024",
        "--json",
    ).json()  # fmt: skip
    assert created["title"] == title and created["authors"] == ["A. Writer"]
    assert created["total_chapters"] == 12
    reader = make_cli()
    reader.register_and_login()
    reader.run("manga", "create", "Nope").one_line_error(3)


def test_logout_without_login_and_help(make_cli: MakeCli) -> None:
    cli = make_cli()
    assert "not logged in" in cli.invoke("auth", "logout").ok().stdout
    assert cli.invoke("auth", "status").returncode == 3
    for group in ("auth", "manga", "library", "progress", "rating", "comment", "notifications",
                  "udp", "sync", "chat"):  # fmt: skip
        out = cli.invoke(group, "--help").ok().stdout
        assert "Usage: mangahub" in out
    assert "Example" in cli.invoke("progress", "update", "--help").ok().stdout


def test_an_update_waits_behind_older_queued_ones(make_cli: MakeCli) -> None:
    cli = make_cli()
    cli.register_and_login("behind")
    manga_id = cli.invoke("manga", "search", "--limit", "1", "--json").json()["data"][0]["id"]
    # Queued while the server was down, not sent yet (no daemon ran since).
    outbox = Outbox(cli.mangahub_home / "outbox.db")
    try:
        older = outbox.put(cli.server, manga_id, 10, "reading")
    finally:
        outbox.close()
    # Back online: sent straight away, chapter 12 would later be overwritten by 10.
    newer = cli.invoke("progress", "update", str(manga_id), "12", "--json").json()
    assert newer["queued"] is True and newer["pending"] == 2
    cli.invoke("progress", "show", str(manga_id)).one_line_error(4)
    outbox = Outbox(cli.mangahub_home / "outbox.db")
    try:
        first = outbox.oldest(cli.server)
        assert first is not None and first.message_id == older.message_id
    finally:
        outbox.close()
