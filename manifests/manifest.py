"""Manifest rows: one per output shard (a stage's unit of work), stored as Parquet parts.

Layout: `<output>/manifests/<stage>/<unit>.parquet`, one single-row file per unit, so
that parallel workers never write the same file and a rerun of one unit replaces just
its row. DuckDB reads them all with `read_parquet('<output>/manifests/*/*.parquet')`.
A shard without a manifest row does not exist: the row is written after the shard.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
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


def write_row(output: str | Path, row: ManifestRow) -> Path:
    path = manifest_dir(output, row.stage) / unit_file_name(row.unit)
    rec = asdict(row)
    rec["inputs"] = [printable(p) for p in rec["inputs"]]
    rec["error"] = printable(rec["error"])
    table = pa.Table.from_pylist([rec], schema=MANIFEST_SCHEMA)
    write_table_atomic(table, path)
    return path


def remove_row(output: str | Path, stage: str, unit: str) -> None:
    (manifest_dir(output, stage) / unit_file_name(unit)).unlink(missing_ok=True)


CORRUPT_DIR = ".corrupt"
REQUIRED = ("stage", "unit", "fingerprint", "status")


def _warn(message: str) -> None:
    print(f"curate: warning: {message}", file=sys.stderr, flush=True)


def quarantine(part, why: str, warn=_warn):
    """Move an unreadable manifest part aside (manifests/<stage>/.corrupt/), so that its
    unit counts as missing (a rerun redoes it) and every command keeps working."""
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
    warn(f"manifest part {part} is unreadable ({why}); moved to {dest}: its unit counts as "
         "missing and the next run redoes it")
    return dest


def read_part(part, warn=_warn) -> list[ManifestRow]:
    names = set(MANIFEST_SCHEMA.names)
    try:
        # the whole small file in one read, parsed from memory: a fifth of read_table's
        # cost (no dataset discovery), one GET in object storage
        table = pq.ParquetFile(pa.BufferReader(part.read_bytes())).read(use_threads=False)
        missing = [c for c in REQUIRED if c not in table.column_names]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")
        rows = [ManifestRow(**{k: v for k, v in rec.items() if k in names}) for rec in table.to_pylist()]
        if any(r.unit is None or r.fingerprint is None or r.status is None for r in rows):
            raise ValueError("a row lacks its unit, fingerprint or status")
        return rows
    except FileNotFoundError:
        return []
    except Exception as exc:            # any damage: truncated, random bytes, wrong schema
        quarantine(part, f"{type(exc).__name__}: {str(exc)[:200]}", warn)
        return []


def read_rows(output: str | Path, stage: str, warn=_warn) -> dict[str, ManifestRow]:
    """All manifest rows of a stage, keyed by unit. A damaged part is named, moved aside
    and its unit left out (missing), instead of making every command fail."""
    folder = manifest_dir(output, stage)
    rows: dict[str, ManifestRow] = {}
    if not folder.exists():
        return rows
    parts = sorted(folder.glob("*.parquet"))
    # one small object per unit: in object storage, read side by side
    for part_rows in map_io(lambda p: read_part(p, warn), parts, folder):
        for row in part_rows:
            rows[row.unit] = row
    return rows


def read_all_rows(output: str | Path, warn=_warn) -> list[ManifestRow]:
    root = location(output) / "manifests"
    if not root.exists():
        return []
    return [row for d in list_dir(str(root)) if d.is_dir
            for row in read_rows(output, d.name, warn).values()]
