"""Bytes in, a bounded stream out: size caps and transparent gzip."""

from __future__ import annotations

import gzip
import io
import zlib
from typing import BinaryIO

from mangahub.lists.errors import ListFileError, ListTooLarge

MAX_BODY = 50 * 1024 * 1024
# A gzip bomb expands ~1000x; a real 100,000-entry MAL list is ~60 MB of XML.
MAX_DECOMPRESSED = 200 * 1024 * 1024
MAX_ENTRIES = 100_000

_GZIP_MAGIC = b"\x1f\x8b"


class _CappedReader(io.RawIOBase):
    """Reads a decompressing stream and fails once it has produced `cap` bytes,
    and names a truncated or corrupt gzip as such."""

    def __init__(self, inner: BinaryIO, cap: int) -> None:
        self._inner = inner
        self._cap = cap
        self._seen = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        want = 64 * 1024 if size is None or size < 0 else size
        try:
            chunk = self._inner.read(want)
        except EOFError:
            raise ListFileError("the gzip file is truncated") from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise ListFileError(f"the gzip file is corrupt: {exc}") from None
        self._seen += len(chunk)
        if self._seen > self._cap:
            raise ListTooLarge(
                f"the decompressed list is over {self._cap // (1024 * 1024)} MiB",
            )
        return chunk


def is_gzip(data: bytes) -> bool:
    return data[:2] == _GZIP_MAGIC


def check_size(data: bytes) -> None:
    if len(data) > MAX_BODY:
        raise ListTooLarge(f"the list file is over {MAX_BODY // (1024 * 1024)} MiB")


def open_stream(data: bytes) -> BinaryIO:
    """A readable stream of the file's content, gunzipped when it is gzip."""
    check_size(data)
    if is_gzip(data):
        inner = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
        return io.BufferedReader(_CappedReader(inner, MAX_DECOMPRESSED), 64 * 1024)  # type: ignore[arg-type]
    return io.BytesIO(data)


def head(stream: BinaryIO, size: int = 512) -> bytes:
    """The first bytes of the stream without consuming them."""
    if isinstance(stream, io.BufferedReader):
        return stream.peek(size)[:size]
    position = stream.tell()
    chunk = stream.read(size)
    stream.seek(position)
    return chunk


def read_all(stream: BinaryIO) -> bytes:
    """The whole (capped) content, for formats that are parsed in one piece."""
    parts: list[bytes] = []
    while chunk := stream.read(1024 * 1024):
        parts.append(chunk)
    return b"".join(parts)
