"""Manifest rows: one per output shard (a stage's unit of work), kept in a few Parquet files
per stage.

Layout, per stage, in `<output>/manifests/<stage>/`:

- `<unit>.parquet`: a loose part, one row, written by the worker that ran the unit (or by
  the driver for a unit that failed). Workers never write the same file; a rerun of a unit
  replaces its part. A shard without a manifest row does not exist: the row comes last.
- `_rows-<seq>.parquet`: compacted rows of many units, written by the driver alone (it
  holds the output lock). It merges finished units' parts into a new compacted file as a
  stage runs, and all of the stage's files into one at the stage's end, then deletes what
  it merged. A stage that finished is one file, however many units it has.

A unit's row is its newest: loose parts are newer than every compacted file (a part is
only merged after its unit finished, and a rerun writes a new part), and a compacted file
with a higher sequence number is newer than one with a lower. Readers list the folder once
and read what the listing names; if a file went away meanwhile (a compaction merged it)
they list again, so a reader never misses a row and, taking the newest per unit, never
sees one twice. Plain DuckDB gets the same with (README):

    SELECT * EXCLUDE (filename) FROM read_parquet('OUT/manifests/*/*.parquet', filename = true)
    QUALIFY row_number() OVER (PARTITION BY stage, unit
                               ORDER BY contains(filename, '/_rows-'), filename DESC) = 1
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.manifests.atomic import write_table_atomic
from curate.pipeline.storage import ObjectPath, list_dir, location, map_io

DONE, PARTIAL, FAILED = "done", "partial", "failed"
# Units in these states count as finished: a rerun with the same fingerprint skips them.
# `partial` is finished because its input is damaged: rereading it gives the same result.
FINISHED = (DONE, PARTIAL)

MANIFEST_SCHEMA = pa.schema([
    pa.field("stage", pa.string(), nullable=False),
    pa.field("unit", pa.string(), nullable=False),        # stable key, e.g. <dump>/<file stem>
    pa.field("path", pa.string()),                        # shard, relative to the output folder
    pa.field("rejects_path", pa.string()),
    pa.field("dump", pa.string()),
    pa.field("lang", pa.string()),
    pa.field("docs", pa.int64()),                         # documents in the shard
    pa.field("docs_in", pa.int64()),                      # documents the unit read
    pa.field("rejected", pa.int64()),                     # documents sent to rejects
    pa.field("bytes", pa.int64()),                        # shard file size
    pa.field("rejects_bytes", pa.int64()),                # rejects file size
    pa.field("chars", pa.int64()),                        # characters of text in the shard
    pa.field("tokens", pa.int64()),                       # filled by the tokenize stage
    pa.field("inputs", pa.list_(pa.string())),
    pa.field("fingerprint", pa.string(), nullable=False),
    pa.field("code_version", pa.string()),
    pa.field("sha256", pa.string()),
    pa.field("rejects_sha256", pa.string()),
    pa.field("status", pa.string(), nullable=False),      # done / partial / failed
    pa.field("error", pa.string()),
    pa.field("started_at", pa.timestamp("ms", tz="UTC")),
    pa.field("finished_at", pa.timestamp("ms", tz="UTC")),
    pa.field("worker", pa.string()),                      # host:pid that ran it
    pa.field("stats", pa.string()),                       # JSON: stage-specific counters
])


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class ManifestRow:
    stage: str
    unit: str
    fingerprint: str
    status: str
    path: str | None = None
    rejects_path: str | None = None
    dump: str | None = None
    lang: str | None = None
    docs: int = 0
    docs_in: int = 0
    rejected: int = 0
    bytes: int = 0
    rejects_bytes: int | None = None
    chars: int = 0
    tokens: int | None = None
    inputs: list[str] = field(default_factory=list)
    code_version: str | None = None
    sha256: str | None = None
    rejects_sha256: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    stats: str | None = None

    @property
    def stats_dict(self) -> dict:
        return json.loads(self.stats) if self.stats else {}


def printable(text: str | None) -> str | None:
    """A string that can be written as UTF-8: bytes of a file name that were not UTF-8
    (surrogate escapes) become \\xNN."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unit_file_name(unit: str) -> str:
    return unit.replace("/", "__") + ".parquet"


def manifest_dir(output, stage: str):
    return location(output) / "manifests" / stage


COMPACTED_PREFIX = "_rows-"
_COMPACTED = re.compile(r"^_rows-(\d{12})\.parquet$")


def compacted_name(seq: int) -> str:
    return f"{COMPACTED_PREFIX}{seq:012d}.parquet"


def rows_table(rows: list[ManifestRow]) -> pa.Table:
    recs = []
    for row in rows:
        rec = asdict(row)
        rec["inputs"] = [printable(p) for p in rec["inputs"]]
        rec["error"] = printable(rec["error"])
        recs.append(rec)
    return pa.Table.from_pylist(recs, schema=MANIFEST_SCHEMA)


def write_row(output: str | Path, row: ManifestRow) -> Path:
    """The unit's loose part (see the module's docstring)."""
    path = manifest_dir(output, row.stage) / unit_file_name(row.unit)
    write_table_atomic(rows_table([row]), path)
    return path


CORRUPT_DIR = ".corrupt"
REQUIRED = ("stage", "unit", "fingerprint", "status")


def _warn(message: str) -> None:
    print(f"curate: warning: {message}", file=sys.stderr, flush=True)


def quarantine(part, why: str, warn=_warn):
    """Move an unreadable manifest file aside (manifests/<stage>/.corrupt/), so that its
    units count as missing (a rerun redoes them) and every command keeps working."""
    dest = part.parent / CORRUPT_DIR / f"{part.name}.{utcnow().strftime('%Y%m%dT%H%M%S%f')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if isinstance(part, ObjectPath):    # no rename in object storage: copy, then delete
            dest.write_bytes(part.read_bytes())
            part.unlink()
        else:
            os.replace(part, dest)
    except FileNotFoundError:           # another reader moved it first
        return dest
    warn(f"manifest part {part} is unreadable ({why}); moved to {dest}: its units count as "
         "missing and the next run redoes them")
    return dest


class _Moved(Exception):
    """A listed manifest file is gone: a compaction merged it meanwhile; list again."""


def _conform(table: pa.Table, schema: pa.Schema = MANIFEST_SCHEMA) -> pa.Table:
    """The manifest schema (or the part of it a reader asked for), whatever an older
    writer left out."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise ValueError(f"no column {', '.join(missing)}")
    cols = []
    for f in schema:
        col = table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        cols.append(col.cast(f.type))
    for name in REQUIRED:
        if table.num_rows and table.column(name).null_count:
            raise ValueError("a row lacks its unit, fingerprint or status")
    return pa.Table.from_arrays(cols, schema=schema)


def _schema(columns) -> pa.Schema:
    """The manifest schema, or its `columns` (with the required ones, first)."""
    if columns is None:
        return MANIFEST_SCHEMA
    names = list(REQUIRED) + [c for c in columns if c not in REQUIRED]
    return pa.schema([MANIFEST_SCHEMA.field(c) for c in names])


def _read_file(path, warn, columns=None) -> pa.Table | None:
    """One manifest file as a table in the manifest schema (or those of its `columns`);
    None when it was damaged (it is moved aside). Raises _Moved when it is gone."""
    try:
        # the whole file in one read, parsed from memory: a fifth of read_table's cost
        # for a small part (no dataset discovery), one GET in object storage
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Moved(str(path)) from None
    schema = _schema(columns)
    try:
        pf = pq.ParquetFile(pa.BufferReader(data))
        # only the columns asked for are decoded: status reads 9 of 24 (the checksums and
        # stats are most of a row's decoding)
        names = None if columns is None else [c for c in schema.names if c in pf.schema_arrow.names]
        return _conform(pf.read(columns=names, use_threads=False), schema)
    except Exception as exc:            # any damage: truncated, random bytes, wrong schema
        quarantine(path, f"{type(exc).__name__}: {str(exc)[:200]}", warn)
        return None


@dataclass
class StageFiles:
    compacted: list = field(default_factory=list)     # (seq, path), oldest first
    parts: list = field(default_factory=list)         # loose parts, by name

    @property
    def next_seq(self) -> int:
        return (self.compacted[-1][0] + 1) if self.compacted else 1


def stage_files(output, stage: str) -> StageFiles:
    """One listing of the stage's manifest folder."""
    folder = manifest_dir(output, stage)
    found = StageFiles()
    try:
        entries = list_dir(str(folder))
    except FileNotFoundError:
        return found
    for e in entries:
        if e.is_dir or not e.name.endswith(".parquet"):
            continue            # .corrupt/, temporaries
        m = _COMPACTED.match(e.name)
        if m:
            found.compacted.append((int(m.group(1)), folder / e.name))
        elif not e.name.startswith("."):
            found.parts.append(folder / e.name)
    found.compacted.sort(key=lambda x: x[0])
    return found


def newest_per_unit(tables: list[pa.Table], schema: pa.Schema = MANIFEST_SCHEMA) -> pa.Table:
    """The last row of each unit across tables given oldest first, sorted by unit."""
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if len(tables) > 1 or len(pc.unique(table.column("unit"))) != table.num_rows:
        order = pa.array(range(table.num_rows), pa.int64())
        last = (pa.table({"unit": table.column("unit"), "_i": order})
                .group_by("unit", use_threads=False).aggregate([("_i", "max")]))
        table = table.take(last.column("_i_max"))
    return table.sort_by("unit")


def _read_files(files: StageFiles, folder, warn, columns=None) -> pa.Table:
    compacted = [_read_file(p, warn, columns) for _, p in files.compacted]
    parts = map_io(lambda p: _read_file(p, warn, columns), files.parts, folder)
    return newest_per_unit(compacted + parts, _schema(columns))


def read_table(output, stage: str, warn=_warn, columns=None) -> pa.Table:
    """Every unit's newest row of a stage, as a table sorted by unit (with only `columns`,
    and unit, fingerprint and status, when given). A damaged file is named, moved aside
    and its units left out (missing), instead of making every command fail."""
    folder = manifest_dir(output, stage)
    for _ in range(20):
        files = stage_files(output, stage)
        try:
            return _read_files(files, folder, warn, columns)
        except _Moved:
            continue            # a compaction merged what was listed: list again
    raise RuntimeError(f"{folder}: its files kept changing while read (20 listings)")


def to_rows(table: pa.Table) -> dict[str, ManifestRow]:
    return {rec["unit"]: ManifestRow(**rec) for rec in table.to_pylist()}


def read_rows(output: str | Path, stage: str, warn=_warn) -> dict[str, ManifestRow]:
    """All manifest rows of a stage as objects, keyed by unit."""
    return to_rows(read_table(output, stage, warn))


def stages_recorded(output) -> list[str]:
    root = location(output) / "manifests"
    if not root.exists():
        return []
    return [d.name for d in list_dir(str(root)) if d.is_dir]


def read_all_table(output, warn=_warn) -> pa.Table:
    """Every stage's rows in one table."""
    tables = [read_table(output, stage, warn) for stage in stages_recorded(output)]
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else MANIFEST_SCHEMA.empty_table()


def read_all_rows(output: str | Path, warn=_warn) -> list[ManifestRow]:
    return [ManifestRow(**rec) for rec in read_all_table(output, warn).to_pylist()]


def compact(output, stage: str, units=None, drop=(), warn=_warn) -> int:
    """Merge manifest files of a stage; only the driver that holds the output lock calls
    this, and only for units none of its tasks is running. `units` given: merge_parts;
    else compact_all. Returns the number of files merged away."""
    if units is not None:
        return merge_parts(output, stage, units, warn)
    return compact_all(output, stage, drop, warn)


def merge_parts(output, stage: str, units, warn=_warn) -> int:
    """These finished units' loose parts into one new compacted file (as a stage runs)."""
    folder = manifest_dir(output, stage)
    wanted = {unit_file_name(u) for u in units}
    for _ in range(20):
        files = stage_files(output, stage)
        parts = [p for p in files.parts if p.name in wanted]
        if not parts:
            return 0
        try:
            merged = newest_per_unit(map_io(lambda p: _read_file(p, warn), parts, folder))
        except _Moved:
            continue
        _publish(merged, folder, files.next_seq, [], parts)
        return len(parts)
    raise RuntimeError(f"{folder}: its files kept changing while compacted")


def compact_all(output, stage: str, drop=(), warn=_warn) -> int:
    """Every compacted file and loose part into one file, less the units in `drop`
    (outputs the runner removed). A stage already in one file, with nothing to drop, is
    left as it is."""
    folder = manifest_dir(output, stage)
    drop = set(drop)
    for _ in range(20):
        files = stage_files(output, stage)
        if not files.parts and len(files.compacted) <= 1 and not drop:
            return 0
        try:
            merged = _read_files(files, folder, warn)
        except _Moved:
            continue
        before = merged.num_rows
        if drop:
            merged = merged.filter(pc.invert(pc.is_in(merged.column("unit"), pa.array(sorted(drop), pa.string()))))
        if not files.parts and len(files.compacted) == 1 and merged.num_rows == before:
            return 0            # nothing dropped after all
        _publish(merged, folder, files.next_seq, [p for _, p in files.compacted], files.parts)
        return len(files.parts) + len(files.compacted)
    raise RuntimeError(f"{folder}: its files kept changing while compacted")


def _publish(merged: pa.Table, folder, seq: int, older: list, parts: list) -> None:
    """Write the merged rows as compacted file `seq`, then delete what they came from:
    older compacted files, parts last (a reader that lists meanwhile sees the new file and
    takes the newest row per unit)."""
    if merged.num_rows:
        write_table_atomic(merged, folder / compacted_name(seq), compression="zstd")
    for path in older:
        path.unlink(missing_ok=True)
    map_io(lambda p: p.unlink(missing_ok=True), parts, folder)
