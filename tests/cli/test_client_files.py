"""The client's own files, one function at a time: the progress queue, address
resolution, and the credential store's file fallback."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mangahub.cli import daemon_files
from mangahub.cli import outbox as outbox_module
from mangahub.cli.credentials import Credentials, CredentialStore
from mangahub.cli.outbox import Outbox
from mangahub.cli.output import CliError
from mangahub.cli.paths import config_dir, private_dir, resolve, state_dir

SERVER = "http://127.0.0.1:8084"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("MANGAHUB_SERVER", "MANGAHUB_TCP", "MANGAHUB_UDP", "MANGAHUB_GRPC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MANGAHUB_HOME", str(tmp_path / "home"))


def test_outbox_keeps_order_per_server_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    first = box.put(SERVER, 1, 10, "reading")
    box.put("http://other:8084", 1, 99, "reading")
    second = box.put(SERVER, 1, 11, "reading")
    box.close()

    box = Outbox(path)  # a new process would see the same queue
    assert box.count(SERVER) == 2
    oldest = box.oldest(SERVER)
    assert oldest is not None and oldest.message_id == first.message_id and oldest.chapter == 10
    box.remove(first.message_id)
    oldest = box.oldest(SERVER)
    assert oldest is not None and oldest.message_id == second.message_id
    box.remove(second.message_id)
    assert box.oldest(SERVER) is None and box.count("http://other:8084") == 1
    box.close()


def test_outbox_keeps_volume_and_no_status_and_reads_an_older_queue(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    # A queue written before volumes were queued: same table without the column.
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, server TEXT NOT NULL,"
        " message_id TEXT NOT NULL UNIQUE, manga_id INTEGER NOT NULL, chapter REAL NOT NULL,"
        " status TEXT NOT NULL, queued_at REAL NOT NULL)"
    )
    old.execute("INSERT INTO outbox VALUES (1, ?, 'q-old', 3, 4.5, 'reading', 0)", (SERVER,))
    old.commit()
    old.close()
    box = Outbox(path)
    oldest = box.oldest(SERVER)
    assert oldest is not None and (oldest.status, oldest.volume) == ("reading", None)
    box.remove("q-old")
    box.put(SERVER, 3, 5, None, 2)
    newer = box.oldest(SERVER)
    assert newer is not None and (newer.chapter, newer.status, newer.volume) == (5, "", 2)
    box.close()


def test_outbox_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "MAX_PENDING", 2)
    box = Outbox(tmp_path / "outbox.db")
    box.put(SERVER, 1, 1, "reading")
    box.put(SERVER, 1, 2, "reading")
    with pytest.raises(CliError, match="already queued"):
        box.put(SERVER, 1, 3, "reading")
    assert box.count(SERVER) == 2
    box.close()


def test_addresses_flags_then_env_then_client_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve().server == "http://127.0.0.1:8084"
    assert resolve().tcp == ("127.0.0.1", 8081) and resolve().grpc == ("127.0.0.1", 8083)
    config_dir().mkdir(parents=True)
    (config_dir() / "client.toml").write_text(
        'host = "0.0.0.0"\nhttp_port = 9000\ntcp_port = 9001\nudp = "udp.example:7000"\n'
    )
    ends = resolve()
    assert ends.server == "http://127.0.0.1:9000" and ends.tcp == ("127.0.0.1", 9001)
    assert ends.udp == ("udp.example", 7000)
    monkeypatch.setenv("MANGAHUB_SERVER", "http://manga.example:8084/")
    ends = resolve()
    assert ends.server == "http://manga.example:8084"
    assert ends.tcp == ("manga.example", 9001)  # the server's host, the configured port
    assert ends.ws_url == "ws://manga.example:8084/ws"
    assert resolve("https://flag.example").ws_url == "wss://flag.example/ws"
    assert resolve(tcp="10.1.2.3:5").tcp == ("10.1.2.3", 5)
    with pytest.raises(CliError, match="invalid TCP address"):
        resolve(tcp="host:port")
    with pytest.raises(CliError, match="invalid server URL"):
        resolve("ftp://x")


def test_directories_follow_mangahub_home_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert config_dir() == state_dir() == tmp_path / "home"
    monkeypatch.delenv("MANGAHUB_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert config_dir() == tmp_path / "xdg" / "mangahub"
    assert state_dir() == tmp_path / "user" / ".mangahub"


def test_file_fallback_is_private_and_per_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mangahub.cli.credentials.keyring_available", lambda: False)
    store = CredentialStore(tmp_path / "config")
    creds = Credentials("access", "refresh", "alice")
    assert store.save(SERVER, creds) == "file"
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    store.save("http://other:1", Credentials("a2", "r2", "bob"))
    assert store.load(SERVER) == creds
    assert store.delete(SERVER) is True
    assert store.load(SERVER) is None and store.load("http://other:1") is not None
    assert store.delete("http://other:1") is True
    assert not store.file.exists()  # the last entry gone: no file left behind
    assert store.delete(SERVER) is False


def test_damaged_outbox_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"not a database, whatever was written here" * 200)
    with pytest.raises(CliError, match="unreadable.*move it aside") as raised:
        Outbox(path)
    assert str(path) in raised.value.message


def test_full_disk_while_queueing_is_a_clear_error(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    box.put(SERVER, 1, 1, "reading")
    # SQLite's own "database or disk is full", as on a full disk: no page may be added.
    pages = box._db.execute("PRAGMA page_count").fetchone()[0]
    box._db.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(CliError, match="cannot queue the update"):
        for chapter in range(2, 2000):
            box.put(SERVER, 1, chapter, "reading" * 50)
    assert box.oldest(SERVER) is not None  # what was queued before stays
    box.close()


def test_a_leftover_temporary_file_never_exposes_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mangahub.cli.credentials.keyring_available", lambda: False)
    store = CredentialStore(tmp_path / "config")
    store.directory.mkdir(mode=0o700)
    leftover = store.file.with_suffix(".tmp")  # from a run killed mid-write
    leftover.write_text("")
    leftover.chmod(0o644)
    modes: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:  # the tokens are in the file by now
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store.save(SERVER, Credentials("access", "refresh", "alice"))
    assert modes == [0o600]
    assert stat.S_IMODE(store.file.stat().st_mode) == 0o600


def test_only_one_daemon_holds_the_claim(tmp_path: Path) -> None:
    env = {**os.environ, "MANGAHUB_HOME": os.environ["MANGAHUB_HOME"]}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from mangahub.cli import daemon_files as d;"
            "print(d.claim_pid(), flush=True); sys.stdin.read()",
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "True"
        assert daemon_files.running_pid() == holder.pid
        # A second daemon that looked before the first wrote its pid file.
        daemon_files.pid_file().unlink()
        assert daemon_files.claim_pid() is False
    finally:
        daemon_files.release_pid()
        holder.communicate("", timeout=10)
    assert daemon_files.running_pid() is None  # released with its process
    assert daemon_files.claim_pid() is True
    daemon_files.release_pid()
    assert not daemon_files.pid_file().exists()


def test_a_stale_pid_file_naming_a_live_process_is_no_daemon(tmp_path: Path) -> None:
    # The daemon was killed; its pid now belongs to an unrelated program.
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        private_dir(state_dir())
        daemon_files.pid_file().write_text(f"{stranger.pid}\n")
        assert daemon_files.running_pid() is None
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


SAVE_MANY = """
import sys
from mangahub.cli import credentials as c
c.keyring_available = lambda: False
store = c.CredentialStore(c.Path(sys.argv[1]))
for n in range(40):
    store.save(f"http://{sys.argv[2]}-{n}:8084", c.Credentials("a", "r", "u"))
"""


def test_two_processes_saving_keep_every_servers_entry(tmp_path: Path) -> None:
    # e.g. a login to one server while the daemon refreshes another's tokens
    directory = tmp_path / "config"
    writers = [
        subprocess.Popen([sys.executable, "-c", SAVE_MANY, str(directory), name])
        for name in ("left", "right")
    ]
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    store = CredentialStore(directory)
    missing = [
        f"{name}-{n}"
        for name in ("left", "right")
        for n in range(40)
        if store.load(f"http://{name}-{n}:8084") is None
    ]
    assert missing == []
