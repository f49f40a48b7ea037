"""A strict, damage-aware WARC reader.

warcio is lenient in ways that lose data silently: it parses a plain-text file as ARC
"response" records, stops quietly at a corrupt gzip member, and returns records whose
body is shorter than their Content-Length. A pipeline that must account for every
document needs the opposite: every record is complete or reported, with the byte offset.

The reader yields complete `WarcRecord`s and, where the file is damaged, `WarcDamage`
events (offset + message). After damage in a gzipped file it resynchronises at the next
gzip member that starts a WARC record, so one bad member costs only the records in it.
"""
from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

GZIP_MAGIC = b"\x1f\x8b\x08"
CHUNK = 1 << 20
# A WARC header block larger than this is not a header block: the stream is lost.
MAX_HEADER_BYTES = 1 << 16


@dataclass
class WarcRecord:
    offset: int                 # byte offset in the file (of its gzip member, when gzipped)
    headers: dict[str, str]     # WARC headers, names lower-cased
    block: bytes                # exactly Content-Length bytes (empty when skipped)
    skipped: int = 0            # > 0: the block's length, read past unheld: it was over the cap

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "")


@dataclass
class WarcDamage:
    offset: int
    message: str
    skipped_to: int | None = None   # where reading resumed, None if it could not
    headers: dict[str, str] | None = None   # WARC headers of the damaged record, if read

    def describe(self, path: str) -> str:
        where = f"{path} at byte {self.offset}"
        tail = (f"; resumed at byte {self.skipped_to}" if self.skipped_to is not None
                else "; rest of file unreadable")
        return f"{where}: {self.message}{tail}"


Event = Union[WarcRecord, WarcDamage]


class _Damage(Exception):
    def __init__(self, offset: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.offset = offset
        self.message = message
        self.headers = headers


class _ByteSource:
    """Decompressed (or plain) bytes of the file with a map back to file offsets."""

    def __init__(self, fh: BinaryIO, start: int, gzipped: bool):
        self.fh = fh
        self.gzipped = gzipped
        fh.seek(start)
        self.raw_pos = start            # file offset of the next unread raw byte
        self.buf = bytearray()
        self.buf_start = 0              # stream position of buf[0]
        self.stream_pos_total = 0       # stream bytes produced so far
        self.eof = False
        # stream position and file offset of each gzip member start, ascending
        self.member_spos: list[int] = [0]
        self.member_foff: list[int] = [start]
        self._d = zlib.decompressobj(31) if gzipped else None
        self._member_start = start
        self._pending = b""

    def file_offset(self, stream_pos: int) -> int:
        if not self.gzipped:
            return self.member_foff[0] + stream_pos
        return self.member_foff[bisect.bisect_right(self.member_spos, stream_pos) - 1]

    def _more(self) -> bool:
        """Append more decompressed bytes to buf; False at clean end of file."""
        if self.eof:
            return False
        if not self.gzipped:
            data = self.fh.read(CHUNK)
            if not data:
                self.eof = True
                return False
            self.raw_pos += len(data)
            self.buf += data
            self.stream_pos_total += len(data)
            return True
        while True:
            if not self._pending:
                self._pending = self.fh.read(CHUNK)
                if not self._pending:
                    if self._d.eof or (self._member_start == self.raw_pos):
                        self.eof = True
                        return False
                    raise _Damage(self._member_start,
                                  "gzip member truncated (file ends inside it)")
            data = self._pending
            self._pending = b""
            try:
                out = self._d.decompress(data)
            except zlib.error as exc:
                raise _Damage(self._member_start, f"corrupt gzip member ({exc})") from None
            consumed = len(data) - len(self._d.unused_data) if self._d.eof else len(data)
            self.raw_pos += consumed
            produced = bool(out)
            if out:
                self.buf += out
                self.stream_pos_total += len(out)
            if self._d.eof:
                rest = self._d.unused_data
                self._member_start = self.raw_pos
                self.member_spos.append(self.stream_pos_total)
                self.member_foff.append(self.raw_pos)
                self._d = zlib.decompressobj(31)
                self._pending = rest
                if rest and not rest.startswith(b"\x1f\x8b"):
                    raise _Damage(self.raw_pos, "bytes after a gzip member are not gzip")
            if produced:
                return True

    def ensure(self, pos: int, n: int) -> bool:
        """Make stream bytes [pos, pos+n) available; False if the stream ends first."""
        while self.buf_start + len(self.buf) < pos + n:
            if not self._more():
                return False
        return True

    def find(self, pos: int, needle: bytes, limit: int) -> int:
        """Stream position of needle at or after pos (searching at most limit bytes), or -1."""
        while True:
            i = self.buf.find(needle, pos - self.buf_start, pos - self.buf_start + limit)
            if i >= 0:
                return self.buf_start + i
            if len(self.buf) - (pos - self.buf_start) >= limit or not self._more():
                return -1

    def get(self, pos: int, n: int) -> bytes:
        i = pos - self.buf_start
        return bytes(self.buf[i:i + n])

    def discard_before(self, pos: int) -> None:
        cut = pos - self.buf_start
        if cut > CHUNK:
            del self.buf[:cut]
            self.buf_start = pos
            keep = bisect.bisect_right(self.member_spos, pos) - 1
            if keep > 0:
                del self.member_spos[:keep]
                del self.member_foff[:keep]


def _parse_headers(raw: bytes) -> tuple[str, dict[str, str]]:
    text = raw.decode("utf-8", errors="replace")
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    version = lines[0].strip()
    headers: dict[str, str] = {}
    last = None
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and last:          # folded continuation line
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"malformed WARC header line {line[:80]!r}")
        last = name.strip().lower()
        headers[last] = value.strip()
    return version, headers


def _resync_gzip(fh: BinaryIO, after: int) -> int | None:
    """File offset of the next gzip member after `after` that decompresses to a WARC record."""
    pos = after + 1
    fh.seek(pos)
    window = b""
    base = pos
    while True:
        data = fh.read(CHUNK)
        if not data:
            return None
        window = window[-2:] + data
        start = base - (len(window) - len(data))
        i = window.find(GZIP_MAGIC)
        while i >= 0:
            cand = start + i
            here = fh.tell()
            fh.seek(cand)
            try:
                head = zlib.decompressobj(31).decompress(fh.read(4096), 16)
            except zlib.error:
                head = b""
            fh.seek(here)
            if head.startswith(b"WARC/"):
                return cand
            i = window.find(GZIP_MAGIC, i + 1)
        base += len(data)


def _resync_plain(fh: BinaryIO, after: int) -> int | None:
    """File offset of the next line starting with 'WARC/1.' after `after`."""
    pos = after + 1
    fh.seek(pos)
    carry = b""
    base = pos
    while True:
        data = fh.read(CHUNK)
        if not data:
            return None
        window = carry + data
        start = base - len(carry)
        i = window.find(b"\nWARC/1.")
        if i >= 0:
            return start + i + 1
        carry = window[-8:]
        base += len(data)


def _skip(src: "_ByteSource", start: int, length: int) -> bool:
    """Read past [start, start + length) holding at most a few chunks; False if it ends first."""
    pos, end = start, start + length
    while pos < end:
        step = min(CHUNK, end - pos)
        if not src.ensure(pos, step):
            return False
        pos += step
        src.discard_before(pos)
    return True


def read_warc(fh: BinaryIO, max_block: int | None = None) -> Iterator[Event]:
    """Yield every record of a WARC file in order, and a WarcDamage for each damaged region.
    A record whose block is longer than `max_block` is read past a chunk at a time, never
    held whole, and yielded with `skipped` set (its block empty)."""
    head = fh.read(4)
    fh.seek(0)
    if not head:
        # an empty file is reported (a truncated download looks like this), not passed as done
        yield WarcDamage(0, "empty file (0 bytes): no WARC records")
        return
    gzipped = head.startswith(b"\x1f\x8b")
    if not gzipped and not head.startswith(b"WARC"):
        if head.startswith(b"file") or head.startswith(b"filedesc"):
            yield WarcDamage(0, "ARC file (the pre-WARC format) is not supported; convert it with warcio's arc2warc")
        else:
            yield WarcDamage(0, f"not a WARC file (starts with {head!r}, expected 'WARC/' or gzip)")
        return
    start = 0
    while start is not None:
        src = _ByteSource(fh, start, gzipped)
        damage_at = None
        try:
            pos = 0
            while True:
                # skip the blank lines between records
                while True:
                    if not src.ensure(pos, 1):
                        return
                    c = src.get(pos, 1)
                    if c in (b"\r", b"\n"):
                        pos += 1
                        continue
                    break
                rec_offset = src.file_offset(pos)
                end = src.find(pos, b"\r\n\r\n", MAX_HEADER_BYTES)
                if end < 0:
                    if src.ensure(pos, MAX_HEADER_BYTES):
                        raise _Damage(rec_offset, "no end of WARC headers within 64 KiB")
                    raise _Damage(rec_offset, "file ends inside WARC headers")
                raw_headers = src.get(pos, end - pos)
                if raw_headers.startswith(b"filedesc://"):
                    raise _Damage(rec_offset, "ARC file (the pre-WARC format) is not supported; "
                                              "convert it with warcio's arc2warc")
                if not raw_headers.startswith(b"WARC/"):
                    raise _Damage(rec_offset, f"expected a WARC record, found {raw_headers[:40]!r}")
                try:
                    _, headers = _parse_headers(raw_headers)
                    length = int(headers["content-length"])
                    if length < 0:
                        raise ValueError("negative Content-Length")
                except (KeyError, ValueError) as exc:
                    raise _Damage(rec_offset, f"bad WARC headers ({exc})") from None
                body_at = end + 4
                if max_block is not None and length > max_block:
                    if not _skip(src, body_at, length):
                        raise _Damage(rec_offset, f"record {headers.get('warc-record-id', '?')} is cut short: "
                                                  f"Content-Length {length}", headers)
                    yield WarcRecord(rec_offset, headers, b"", skipped=length)
                    pos = body_at + length
                    continue
                try:
                    complete = src.ensure(body_at, length)
                except _Damage as dmg:      # the gzip member dies inside this record
                    dmg.headers = headers
                    raise
                if not complete:
                    have = src.buf_start + len(src.buf) - body_at
                    raise _Damage(rec_offset,
                                  f"record {headers.get('warc-record-id', '?')} is cut short: "
                                  f"Content-Length {length}, only {max(have, 0)} bytes present",
                                  headers)
                yield WarcRecord(rec_offset, headers, src.get(body_at, length))
                pos = body_at + length
                src.discard_before(pos)
        except _Damage as dmg:
            damage_at = dmg
        nxt = (_resync_gzip if gzipped else _resync_plain)(fh, damage_at.offset)
        yield WarcDamage(damage_at.offset, damage_at.message, nxt, damage_at.headers)
        start = nxt
