"""Manifest rows: one per output shard (a stage's unit of work), stored as Parquet parts.

Layout: `<output>/manifests/<stage>/<unit>.parquet`, one single-row file per unit, so
that parallel workers never write the same file and a rerun of one unit replaces just
its row. DuckDB reads them all with `read_parquet('<output>/manifests/*/*.parquet')`.
A shard without a manifest row does not exist: the row is written after the shard.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.atomic import write_table_atomic

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
    pa.field("chars", pa.int64()),                        # characters of text in the shard
    pa.field("tokens", pa.int64()),                       # filled by the tokenize stage
    pa.field("inputs", pa.list_(pa.string())),
    pa.field("fingerprint", pa.string(), nullable=False),
    pa.field("code_version", pa.string()),
    pa.field("sha256", pa.string()),
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
    chars: int = 0
    tokens: int | None = None
    inputs: list[str] = field(default_factory=list)
    code_version: str | None = None
    sha256: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    stats: str | None = None

    @property
    def stats_dict(self) -> dict:
        return json.loads(self.stats) if self.stats else {}


def unit_file_name(unit: str) -> str:
    return unit.replace("/", "__") + ".parquet"


def manifest_dir(output: str | Path, stage: str) -> Path:
    return Path(output) / "manifests" / stage


def write_row(output: str | Path, row: ManifestRow) -> Path:
    path = manifest_dir(output, row.stage) / unit_file_name(row.unit)
    table = pa.Table.from_pylist([asdict(row)], schema=MANIFEST_SCHEMA)
    write_table_atomic(table, path)
    return path


def remove_row(output: str | Path, stage: str, unit: str) -> None:
    (manifest_dir(output, stage) / unit_file_name(unit)).unlink(missing_ok=True)


def read_rows(output: str | Path, stage: str) -> dict[str, ManifestRow]:
    """All manifest rows of a stage, keyed by unit."""
    folder = manifest_dir(output, stage)
    rows: dict[str, ManifestRow] = {}
    if not folder.exists():
        return rows
    names = set(MANIFEST_SCHEMA.names)
    for part in sorted(folder.glob("*.parquet")):
        for rec in pq.read_table(part).to_pylist():
            row = ManifestRow(**{k: v for k, v in rec.items() if k in names})
            rows[row.unit] = row
    return rows
