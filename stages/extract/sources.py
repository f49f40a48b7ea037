"""Input files that are not WARC: Common Crawl WET text, and a user's own documents as
JSONL or Parquet. Each reader yields events the extract stage records one by one:

- `Doc`: a document (text, and the url, date and source id the file gives);
- `Skip`: a document-shaped record that is rejected, with a reason;
- `Damage`: a damaged region of the file (the unit is marked partial).

Which reader a file gets is decided by its name (`input_kind`); a file no reader knows
(WAT metadata, anything else) is reported by the stage, never silently skipped.
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, Iterator, Union

import pyarrow as pa

WARC, WET, JSONL, PARQUET, WAT = "warc", "wet", "jsonl", "parquet", "wat"
# most specific first: x.warc.wet.gz is WET, not WARC
SUFFIXES = [
    (".warc.wet.gz", WET), (".wet.gz", WET), (".warc.wet", WET), (".wet", WET),
    (".warc.wat.gz", WAT), (".wat.gz", WAT), (".warc.wat", WAT), (".wat", WAT),
    (".warc.gz", WARC), (".warc", WARC), (".arc.gz", WARC), (".arc", WARC),
    (".jsonl.gz", JSONL), (".jsonl.zst", JSONL), (".jsonl", JSONL),
    # JSON lines under other names: Dolma writes .json.gz; plain .json is left unread
    # (it is as often one JSON document, e.g. a dataset's metadata, as JSON lines)
    (".json.gz", JSONL), (".json.zst", JSONL),
    (".ndjson.gz", JSONL), (".ndjson.zst", JSONL), (".ndjson", JSONL),
    (".parquet", PARQUET),
]
READABLE = (WARC, WET, JSONL, PARQUET)
CHUNK = 1 << 20


# one search for the longest known suffix (the one that starts first): a dump's 90,000
# names are classified several times per plan
_SUFFIX = re.compile("(" + "|".join(re.escape(s) for s, _ in SUFFIXES) + ")$")
_KIND = dict(SUFFIXES)


def input_kind(name: str) -> tuple[str | None, str]:
    """(kind, stem) of an input file name; kind None for a file no reader knows."""
    m = _SUFFIX.search(name.lower())
    if m is None:
        return None, name
    return _KIND[m.group(1)], name[: len(name) - len(m.group(1))]


@dataclass
class Doc:
    text: str
    offset: int                     # byte offset (WET) or line / row number (JSONL, Parquet)
    url: str | None = None
    date: datetime | None = None
    source_id: str | None = None    # WARC-Record-ID, or the input's own id


@dataclass
class Skip:
    reason: str
    detail: str | None
    offset: int
    url: str | None = None
    source_id: str | None = None


@dataclass
class Damage:
    offset: int
    message: str


Event = Union[Doc, Skip, Damage]


def parse_date(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        d = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


# -- WET -----------------------------------------------------------------------------------

def read_wet(fh: BinaryIO, gzipped: bool, max_chars: int | None = None) -> Iterator[Event]:
    """`conversion` records of a WET file become documents (Common Crawl's own text).
    Conformant files (CRLF headers, byte Content-Length) go through the strict WARC
    reader; LF-only files such as cc_net's test sample are read record by record at
    their `WARC/1.x` header lines, since their Content-Length may count characters."""
    from curate.stages.extract.warc import WarcDamage, read_warc
    head = fh.read(65536)
    fh.seek(0)
    if gzipped:
        import zlib
        try:
            head = zlib.decompressobj(31).decompress(head, 65536)
        except zlib.error:
            pass
    first_block = head.split(b"\n\n", 1)[0]
    if head.startswith(b"WARC/") and b"\r\n" not in first_block:
        yield from _read_wet_lf(gzip.GzipFile(fileobj=fh) if gzipped else fh, max_chars)
        return
    for ev in read_warc(fh, max_block=None if max_chars is None else 4 * max_chars):
        if isinstance(ev, WarcDamage):
            yield Damage(ev.offset, ev.message + (f"; resumed at byte {ev.skipped_to}" if ev.skipped_to is not None
                                                  else "; rest of file unreadable"))
            if ev.headers and ev.headers.get("warc-type") == "conversion":
                yield Skip("extract:truncated_record", ev.message, ev.offset,
                           ev.headers.get("warc-target-uri"), ev.headers.get("warc-record-id"))
            continue
        if ev.type != "conversion":
            continue
        yield conversion_event(ev.headers, ev.block, ev.offset, max_chars, ev.skipped)


def conversion_event(headers: dict[str, str], block: bytes, offset: int, max_chars: int | None = None,
                     skipped: int = 0) -> Event:
    url = headers.get("warc-target-uri")
    rid = headers.get("warc-record-id")
    if skipped:         # read past: more bytes than max_chars characters can take
        return Skip("extract:too_long", f"{skipped:,} bytes, more than 4 x extract.max_doc_chars {max_chars:,}",
                    offset, url, rid)
    text = block.decode("utf-8", errors="replace").strip()
    long = too_long(len(text), max_chars)
    if long:
        return Skip("extract:too_long", long, offset, url, rid)
    if not text:
        return Skip("extract:empty", None, offset, url, rid)
    return Doc(text, offset, url, parse_date(headers.get("warc-date")), rid)


_WARC_LINE = re.compile(rb"^WARC/1\.[01]\r?\n$")


def _read_wet_lf(stream, max_chars: int | None = None) -> Iterator[Event]:
    """Line-based reading of a WET file with LF line ends."""
    offset = 0
    headers: dict[str, str] | None = None
    record_at = 0
    body: list[bytes] = []
    held = dropped = 0          # body bytes kept; bytes read past once over the cap
    cap = None if max_chars is None else 4 * max_chars
    in_headers = False
    prev_blank = True

    def finish():
        if headers is not None and headers.get("warc-type") == "conversion":
            return conversion_event(headers, b"".join(body), record_at, max_chars, held + dropped if dropped else 0)
        return None

    for line in stream:
        if _WARC_LINE.match(line) and prev_blank and not in_headers:
            ev = finish()
            if ev is not None:
                yield ev
            headers, body, in_headers, record_at, held, dropped = {}, [], True, offset, 0, 0
        elif in_headers:
            if line.strip() == b"":
                in_headers = False
            else:
                name, sep, value = line.decode("utf-8", "replace").partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
        elif headers is not None:
            if dropped or (cap is not None and held + len(line) > cap):
                dropped += len(line)
                body = []
            else:
                body.append(line)
                held += len(line)
        elif line.strip():
            yield Damage(offset, "text before the first WARC record")
            return
        prev_blank = line.strip() == b""
        offset += len(line)
    ev = finish()
    if ev is not None:
        yield ev


# -- JSONL and Parquet ---------------------------------------------------------------------

@dataclass
class Fields:
    text: str = "text"
    id: str = "id"
    url: str = "url"
    date: str = "date"
    max_chars: int | None = None        # longer texts are rejected (extract:too_long)

    @property
    def max_line_bytes(self) -> int | None:
        """A JSON line longer than this cannot hold a text of max_chars (8 bytes per
        character covers the JSON escapes of astral characters, 1 MiB the other fields):
        it is read past, never held whole."""
        return None if self.max_chars is None else 8 * self.max_chars + (1 << 20)


def too_long(n_chars: int, max_chars: int | None) -> str | None:
    return f"{n_chars:,} characters > extract.max_doc_chars {max_chars:,}" if (
        max_chars is not None and n_chars > max_chars) else None


@dataclass
class Overlong:
    """A line read past without holding it: its length in bytes."""
    nbytes: int


def _lines(path: str, compression: str | None, max_bytes: int | None = None) -> Iterator[bytes | Overlong]:
    """The file's lines; a line longer than max_bytes is read past a chunk at a time and
    comes out as Overlong (a 300 MB line costs a chunk of memory, not 300 MB)."""
    from curate.pipeline import storage
    with storage.open_stream(path, compression=compression) as stream:
        rest = b""
        skipping = 0            # > 0: inside an over-long line, this many bytes so far
        while True:
            block = stream.read(CHUNK)
            if not block:
                break
            if skipping:
                cut = block.find(b"\n")
                if cut < 0:
                    skipping += len(block)
                    continue
                yield Overlong(skipping + cut)
                skipping, block = 0, block[cut + 1:]
            parts = (rest + block).split(b"\n")
            rest = parts.pop()
            for line in parts:
                yield line if max_bytes is None or len(line) <= max_bytes else Overlong(len(line))
            if max_bytes is not None and len(rest) > max_bytes:
                skipping, rest = len(rest), b""
        if skipping:
            yield Overlong(skipping)
        elif rest:
            yield rest if max_bytes is None or len(rest) <= max_bytes else Overlong(len(rest))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _clean(value: str) -> str:
    """JSON may escape lone UTF-16 surrogates (`\\ud800`), which no UTF-8 string can hold
    (Arrow refuses them): they become U+FFFD, as undecodable bytes do."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def _field(rec: dict, name: str, in_metadata: bool = True) -> Any:
    """A record's field: `name` itself, a dotted path into nested objects (`meta.url`), or,
    for a plain name the record lacks, the same name under `metadata` (where datatrove
    and Dolma put url and date)."""
    if name in rec:
        return rec[name]
    if "." in name:
        node: Any = rec
        for part in name.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node
    meta = rec.get("metadata")
    return meta.get(name) if in_metadata and isinstance(meta, dict) else None


def _record(rec: Any, where: int, f: Fields) -> Event:
    if not isinstance(rec, dict):
        return Skip("extract:bad_record", f"not a JSON object: {type(rec).__name__}", where)
    url = _field(rec, f.url)
    url = _clean(url) if isinstance(url, str) else None
    sid = _field(rec, f.id)
    sid = None if sid is None or isinstance(sid, (dict, list)) else _clean(str(sid))
    text = _field(rec, f.text, in_metadata=False)
    if text is None:
        return Skip("extract:no_text", f"no '{f.text}' field", where, url, sid)
    if not isinstance(text, str):
        return Skip("extract:no_text", f"'{f.text}' is a {type(text).__name__}, not a string", where, url, sid)
    long = too_long(len(text), f.max_chars)
    if long:
        return Skip("extract:too_long", long, where, url, sid)
    text = _clean(text).strip()
    if not text:
        return Skip("extract:empty", None, where, url, sid)
    return Doc(text, where, url, parse_date(_field(rec, f.date)), sid)


def _json(line: bytes) -> Any:
    try:
        return json.loads(line)
    except UnicodeDecodeError:      # bytes that are not UTF-8: keep the record, mark them U+FFFD
        return json.loads(line.decode("utf-8", errors="replace"))


def read_jsonl(path: str, f: Fields) -> Iterator[Event]:
    """One document per line; `offset` is the line number (1-based). A line that is not
    JSON is rejected (extract:bad_json) and the file reads on."""
    low = path.lower()
    compression = "gzip" if low.endswith(".gz") else "zstd" if low.endswith(".zst") else None
    n = 0
    try:
        for n, line in enumerate(_lines(path, compression, f.max_line_bytes), 1):
            if isinstance(line, Overlong):
                yield Skip("extract:too_long", f"line {n}: {line.nbytes:,} bytes, more than a text of "
                                               f"extract.max_doc_chars {f.max_chars:,} can take", n)
                continue
            if not line.strip():
                continue
            try:
                rec = _json(line)
            except ValueError as exc:
                yield Skip("extract:bad_json", f"line {n}: {str(exc)[:200]}", n)
                continue
            yield _record(rec, n, f)
    except OSError as exc:          # a truncated or corrupt compressed stream
        yield Damage(n, f"{compression or 'file'} stream unreadable after line {n}: {exc}")


def read_parquet(path: str, f: Fields) -> Iterator[Event]:
    """One document per row; `offset` is the row number (0-based)."""
    import pyarrow.parquet as pq
    from curate.pipeline import storage
    try:
        pf = pq.ParquetFile(storage.open_input(path))
    except Exception as exc:
        yield Damage(0, f"not a readable Parquet file: {str(exc)[:200]}")
        return
    names = pf.schema_arrow.names
    top = {name: name.split(".", 1)[0] if name not in names else name
           for name in (f.text, f.id, f.url, f.date)}
    if top[f.text] not in names:
        yield Damage(0, f"no '{f.text}' column (columns: {', '.join(names)}); set extract.text_field")
        return
    cols = [c for c in dict.fromkeys(list(top.values()) + ["metadata"]) if c in names]
    row = 0
    # rows of at most a few MB of text each, so that one huge text costs little beyond itself
    for batch in pf.iter_batches(columns=cols, batch_size=64):
        over = _overlong_rows(batch, f) if f.text in batch.schema.names else set()
        for i, rec in enumerate(batch.to_pylist() if not over else _without(batch, f.text, over)):
            if i in over:
                yield Skip("extract:too_long", too_long(over[i], f.max_chars), row,
                           rec.get(f.url) if isinstance(rec.get(f.url), str) else None)
            else:
                yield _record(rec, row, f)
            row += 1


def _overlong_rows(batch, f: Fields) -> dict[int, int]:
    """{row: characters} of the rows whose text is over max_chars, found in Arrow (no
    Python string is made of them)."""
    import pyarrow.compute as pc
    if f.max_chars is None:
        return {}
    col = batch.column(batch.schema.get_field_index(f.text))
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return {}
    lengths = pc.utf8_length(col).to_pylist()
    return {i: n for i, n in enumerate(lengths) if n is not None and n > f.max_chars}


def _without(batch, name: str, rows: dict[int, int]) -> list[dict]:
    import pyarrow.compute as pc
    i = batch.schema.get_field_index(name)
    mask = pa.array([j in rows for j in range(batch.num_rows)])
    blank = pc.if_else(mask, pa.scalar(None, batch.column(i).type), batch.column(i))
    return batch.set_column(i, name, blank).to_pylist()
