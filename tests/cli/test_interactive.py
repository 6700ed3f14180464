"""Interactive commands in a real pseudo-terminal (pexpect): two ``chat join``
sessions talking both ways, and ``udp listen`` printing a triggered notification."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator

import pexpect
import pytest

from mangahub.app import Runtime
from tests.cli.conftest import MANGAHUB, Cli, MakeCli, internal_token, trigger_new_chapter
from tests.conftest import Backend
from tests.live_server import LiveServer

pytestmark = pytest.mark.slow


def spawn(cli: Cli, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        MANGAHUB, list(args), env=cli.env(), encoding="utf-8", timeout=20, dimensions=(40, 200)
    )


@pytest.fixture
def sessions() -> Iterator[list[pexpect.spawn]]:
    opened: list[pexpect.spawn] = []
    yield opened
    for child in opened:
        if child.isalive():
            child.terminate(force=True)


def a_manga(cli: Cli) -> dict[str, object]:
    found = cli.invoke("manga", "search", "--limit", "1", "--json").json()
    manga: dict[str, object] = found["data"][0]
    return manga


def test_chat_between_two_terminals(make_cli: MakeCli, sessions: list[pexpect.spawn]) -> None:
    alice, bob = make_cli(), make_cli()
    alice_name, bob_name = alice.register_and_login("alice"), bob.register_and_login("bob")
    room = str(a_manga(alice)["id"])

    a = spawn(alice, "chat", "join", room)
    sessions.append(a)
    a.expect(f"joined room #{room}")
    b = spawn(bob, "chat", "join", room)
    sessions.append(b)
    b.expect(f"joined room #{room}")
    a.expect(f"{bob_name} joined the chat")  # rendered while alice sits at her prompt

    a.sendline("hello from alice")
    b.expect(f"{alice_name}: hello from alice")
    a.expect(f"{alice_name}: hello from alice")  # the sender sees it stored, too
    b.sendline("hi alice, bob here")
    a.expect(f"{bob_name}: hi alice, bob here")

    a.sendline("/who")
    a.expect(rf"in room #{room}: ([^\r\n]+)")
    members = {name.strip() for name in a.match.group(1).split(",")}
    assert members == {alice_name, bob_name}

    b.sendline("/leave")
    b.expect(f"left room #{room}")
    b.expect(pexpect.EOF)
    b.close()
    assert b.exitstatus == 0
    a.expect(f"{bob_name} left the chat")
    a.sendline("/quit")
    a.expect(pexpect.EOF)
    a.close()
    assert a.exitstatus == 0


def test_chat_unknown_room_is_a_one_line_error(make_cli: MakeCli) -> None:
    cli = make_cli()
    cli.register_and_login()
    cli.run("chat", "join", "987654321").one_line_error(4, "not found")


def test_udp_listen_prints_and_unsubscribes_on_ctrl_c(
    make_cli: MakeCli,
    cli_server: LiveServer,
    backend: Backend,
    runtime: Runtime,
    sessions: list[pexpect.spawn],
) -> None:
    cli = make_cli()
    cli.register_and_login("udp")
    manga = a_manga(cli)
    cli.invoke("library", "add", str(manga["id"])).ok()
    token = internal_token(backend, runtime)

    listener = spawn(cli, "udp", "listen")
    sessions.append(listener)
    listener.expect("Ctrl\\+C to stop")
    assert trigger_new_chapter(cli_server, token, int(str(manga["id"])), "Shiny Title", 321) >= 1
    listener.expect(r"new chapter\s+Shiny Title — chapter 321")
    listener.sendintr()
    listener.expect(pexpect.EOF)
    listener.close()
    assert listener.exitstatus == 0
    # It was ACKed: not delivered again on the next subscription.
    notes = cli.invoke("notifications", "list", "--json").json()["data"]
    assert any(n["message"] and "321" in n["message"] for n in notes)

    # JSON lines for scripts: one object per notification, then exit (--count).
    proc = subprocess.Popen(
        [MANGAHUB, "udp", "listen", "--json", "--count", "1"],
        env=cli.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "listening …": subscribed
        assert "listening" in line
        trigger_new_chapter(cli_server, token, int(str(manga["id"])), "Shiny Title", 322)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    lines = [json.loads(raw) for raw in out.splitlines()]
    assert len(lines) == 1
    note = lines[0]
    assert note["type"] == "NOTIFICATION" and note["kind"] == "new_chapter"
    assert note["chapter"] == 322 and note["manga_id"] == manga["id"]
    assert re.search("322", note["message"])


def test_piped_who_lists_the_room(make_cli: MakeCli, sessions: list[pexpect.spawn]) -> None:
    alice, bob = make_cli(), make_cli()
    alice_name, bob_name = alice.register_and_login("alice"), bob.register_and_login("bob")
    room = str(a_manga(alice)["id"])
    a = spawn(alice, "chat", "join", room)
    sessions.append(a)
    a.expect(f"joined room #{room}")

    # Not a terminal: the commands arrive at once, before anything is typed.
    piped = subprocess.run(
        [MANGAHUB, "chat", "join", room],
        env=bob.env(),
        input="/who\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert piped.returncode == 0, piped.stderr
    found = re.search(rf"in room #{room}: ([^\r\n]+)", piped.stdout)
    assert found, piped.stdout
    assert {name.strip() for name in found.group(1).split(",")} == {alice_name, bob_name}
    a.sendline("/quit")
    a.expect(pexpect.EOF)


def test_chat_says_the_length_limit(make_cli: MakeCli, sessions: list[pexpect.spawn]) -> None:
    cli = make_cli()
    cli.register_and_login("long")
    room = str(a_manga(cli)["id"])
    child = spawn(cli, "chat", "join", room)
    sessions.append(child)
    child.expect(f"joined room #{room}")
    child.sendline("x" * 2001)
    child.expect(r"error: ([^\r\n]+)")
    assert "at most 2000 characters" in child.match.group(1), child.match.group(1)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
