"""A shuffle that opens files + tasks, not files x tasks: sorted runs merged in levels.

Every shuffle in curate (dedup's band keys, edges, members and decisions; remix's routed
documents) is the same move: many files, each sorted by one numeric key, must be read by
many tasks, each wanting one range of that key. Reading the range from every file costs
files x tasks opens (450 million per Common Crawl dump for dedup's band keys). Instead,
merge tasks combine up to FAN_IN sorted files into one sorted run, a level at a time,
until at most FAN_IN runs remain; a range task then opens those runs and reads only the
row groups its range overlaps (row-group statistics). Each file is read once per level
and there are log_FAN_IN(files) levels (3 for a dump's 90,000 files at 64), so the opens
are files x (1 + 1/FAN_IN + ...) + tasks x FAN_IN.

A merge streams: it holds one row group of each input and the output's pending rows, so
its memory is FAN_IN x a row group, however large the inputs. Rows with equal keys come
out in an order fixed by the inputs' contents and row groups alone, so a merge gives the
same bytes under any cluster shape. Functions here are plain (paths in, paths and counts out); the stage runs them as
tasks through its context's map.
"""
from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.manifests.atomic import atomic_path
from curate.pipeline.storage import location, map_io, rmtree

FAN_IN = 32                    # files one merge task reads at once; runs a range task opens
ROW_GROUP_ROWS = 65_536        # most rows per row group of a run (the read granularity)
ROW_GROUP_BYTES = 32 << 20     # and most bytes (document text)


def key_ranges(n: int, dtype=np.int64) -> list[tuple[int, int]]:
    """n inclusive (lo, hi) ranges covering the key type (hash keys fill it evenly)."""
    info = np.iinfo(dtype)
    span = int(info.max) - int(info.min) + 1
    return [(int(info.min) + j * span // n, int(info.min) + (j + 1) * span // n - 1) for j in range(n)]


class _Reader:
    """One sorted input of a merge, a row group at a time."""

    def __init__(self, path, key: str, columns, constants: dict | None, presorted: bool):
        self.file = pq.ParquetFile(path)
        self.key, self.columns, self.constants = key, columns, constants or {}
        self.next_group, self.head = 0, None
        self.presorted = presorted
        self.rows = self.file.metadata.num_rows
        if not presorted:       # one unit's own file: read whole and sorted here
            self.head = self._finish(self.file.read(columns=columns, use_threads=False))
            self.head = self.head.take(pc.sort_indices(self.head, [(key, "ascending")]))
            self.next_group = self.file.num_row_groups
        self.load()

    def _finish(self, t: pa.Table) -> pa.Table:
        for name, value in self.constants.items():
            t = t.append_column(name, pa.array(np.full(t.num_rows, value[1]), value[0]))
        return t

    @property
    def more(self) -> bool:
        return self.next_group < self.file.num_row_groups

    def load(self) -> None:
        while (self.head is None or self.head.num_rows == 0) and self.more:
            self.head = self._finish(self.file.read_row_group(self.next_group, columns=self.columns,
                                                              use_threads=False))
            self.next_group += 1

    def last_key(self):
        return self.head.column(self.key)[-1].as_py()

    def take_upto(self, bound) -> pa.Table | None:
        """The head's rows with key <= bound (all when bound is None); the rest stay."""
        if self.head is None or self.head.num_rows == 0:
            return None
        if bound is None:
            cut = self.head.num_rows
        else:
            cut = int(np.searchsorted(self.head.column(self.key).to_numpy(), bound, side="right"))
        taken, self.head = self.head.slice(0, cut), self.head.slice(cut)
        self.load()
        return taken if taken.num_rows else None


def merge_sorted(output: str, inputs: list[str], dest: str, key: str, columns: list[str] | None = None,
                 constants: list[dict] | None = None, presorted: bool = True,
                 group_bytes: int = ROW_GROUP_BYTES, chunk_bytes: int | None = None) -> dict:
    """Merge files (each sorted by `key`) into one file sorted by `key`, streaming.
    `constants`: per input, columns to add ({name: (arrow type, value)}), such as the
    dump rank of a shard's band keys. `presorted=False`: inputs are read whole and sorted
    first (one unit's file each). `group_bytes`: the most bytes per row group (what a range
    reader reads past its range at each end). `chunk_bytes`: write the run as files of
    about that many bytes (dest-00000.parquet, ...), returned as "chunks" [[path, lo, hi]]
    with their key ranges, so that a range reader opens only the chunks its range overlaps
    (a footer grows with its file's row groups). Returns counts for the benchmark."""
    t0 = time.process_time()
    out = location(output)
    opened = [(p, _Reader(out / p, key, columns, (constants or [None] * len(inputs))[i], presorted))
              for i, p in enumerate(inputs) if (out / p).exists()]
    readers = [r for _, r in opened]
    rows_in = {p: r.rows for p, r in opened}
    schema = _unified_schema(readers)
    if chunk_bytes is not None:
        chunks, n = _write_chunks(out, dest, _merged_chunks(readers, key), schema, key, group_bytes, chunk_bytes)
        return {"rows": n, "opens": len(readers), "writes": len(chunks), "rows_in": rows_in, "chunks": chunks,
                "cpu_s": time.process_time() - t0}
    n = 0
    with atomic_path(out / dest) as tmp:
        # statistics on the key alone: a range reader needs its min and max per row group;
        # the text columns' min and max were whole documents, 1.2 MB of footer per run that
        # every remix unit parsed from each of 16 runs at 16,000 files
        with pq.ParquetWriter(tmp, schema, write_statistics=[key]) as writer:
            pending: list[pa.Table] = []
            for chunk in _merged_chunks(readers, key):
                pending.append(_conform(chunk, schema))
                if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS or sum(t.nbytes for t in pending) >= group_bytes:
                    n += _write_groups(writer, pending, group_bytes)
                    pending = []
            if pending:
                n += _write_groups(writer, pending, group_bytes)
    return {"rows": n, "opens": len(readers), "writes": 1, "rows_in": rows_in, "cpu_s": time.process_time() - t0}


def _write_chunks(out, dest: str, merged, schema: pa.Schema, key: str, group_bytes: int,
                  chunk_bytes: int) -> tuple[list[list], int]:
    """The merged rows as files of about chunk_bytes: [[path, first key, last key]], rows."""
    stem = dest[:-len(".parquet")] if dest.endswith(".parquet") else dest
    chunks: list[list] = []
    pending: list[pa.Table] = []
    n = 0

    def flush():
        t = pa.concat_tables(pending)
        name = f"{stem}-{len(chunks):05d}.parquet"
        with atomic_path(out / name) as tmp:
            with pq.ParquetWriter(tmp, schema, write_statistics=[key]) as writer:
                _write_groups(writer, [t], group_bytes)
        k = t.column(key)
        chunks.append([name, k[0].as_py(), k[-1].as_py()] if t.num_rows else name)
        return t.num_rows

    for part in merged:
        part = _conform(part, schema)
        # a merged part can be every input's rows at once (inputs of one row group each):
        # cut it, or the run would be one chunk as large as the run
        step = max(1, chunk_bytes // max(1, part.nbytes // max(part.num_rows, 1)))
        for i in range(0, part.num_rows, step):
            pending.append(part.slice(i, step))
            if sum(t.nbytes for t in pending) >= chunk_bytes:
                n += flush()
                pending = []
    if pending or not chunks:          # no row at all: one empty file keeps the schema
        pending = pending or [schema.empty_table()]
        n += flush()
    return chunks, n


def _merged_chunks(readers: list[_Reader], key: str):
    """Sorted chunks of the merge. Rows up to the smallest last key among the inputs that
    still have row groups to read can go: every later row of those inputs is at least it."""
    while True:
        live = [r for r in readers if r.head is not None and r.head.num_rows]
        if not live:
            return
        waiting = [r.last_key() for r in live if r.more]
        bound = min(waiting) if waiting else None
        parts = [t for t in (r.take_upto(bound) for r in live) if t is not None]
        if parts:
            t = pa.concat_tables(parts, promote_options="default")
            if len(parts) > 1:
                order = np.argsort(t.column(key).to_numpy(), kind="stable")
                t = t.take(pa.array(order))
            yield t


def _unified_schema(readers: list[_Reader]) -> pa.Schema:
    schemas = [r.head.schema if r.head is not None else r.file.schema_arrow for r in readers]
    if not schemas:
        return pa.schema([])
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return schema.with_metadata(readers[0].file.schema_arrow.metadata or {})


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    if t.schema.equals(schema, check_metadata=False):
        return t
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names else pa.nulls(t.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _write_groups(writer, pending: list[pa.Table], group_bytes: int = ROW_GROUP_BYTES) -> int:
    t = pa.concat_tables(pending)
    if t.num_rows:
        per_row = max(1, t.nbytes // t.num_rows)
        writer.write_table(t, row_group_size=max(1, min(ROW_GROUP_ROWS, group_bytes // per_row)))
    return t.num_rows


def sorted_runs(map_fn, output: str, files: list[str], key: str, folder: str, columns: list[str] | None = None,
                constants: list[dict] | None = None, presorted: bool = True, fan_in: int = FAN_IN,
                stats: dict | None = None, rows_in: dict | None = None,
                group_bytes: int = ROW_GROUP_BYTES, chunk_bytes: int | None = None) -> list:
    """At most fan_in files sorted by `key` holding every row of `files`: merge levels
    under folder/ (cleared first). The first level always runs when constants are given
    or the inputs are not sorted. `stats` collects the merge tasks' counts; `rows_in`, the
    rows of each input file. `chunk_bytes`: the last level writes each run as chunks
    (merge_sorted), and the runs come back as [path, lo, hi] entries, all chunks of all
    runs, for read_range."""
    out = location(output)
    rmtree(out / folder)
    level = 0
    first = constants is not None or not presorted
    runs: list = files
    while len(files) > fan_in or (level == 0 and first and files):
        groups = [list(range(i, min(i + fan_in, len(files)))) for i in range(0, len(files), fan_in)]
        dests = [f"{folder}/L{level}/{j:06d}.parquet" for j in range(len(groups))]
        last = len(groups) <= fan_in
        results = map_fn(merge_sorted, [
            (output, [files[i] for i in g], d, key, columns if level == 0 else None,
             [constants[i] for i in g] if (constants is not None and level == 0) else None,
             presorted or level > 0, group_bytes, chunk_bytes if last else None) for g, d in zip(groups, dests)])
        if stats is not None:
            add_counts(stats, results)
        if rows_in is not None and level == 0:
            for r in results:
                rows_in.update(r["rows_in"])
        files, level = dests, level + 1
        runs = [c for r in results for c in r["chunks"]] if (last and chunk_bytes is not None) else files
    if stats is not None:
        stats["levels"] = stats.get("levels", 0) + level
    return runs


def run_path(run) -> str:
    """A run's file: the run itself, or a chunk's [path, lo, hi]."""
    return run if isinstance(run, str) else run[0]


def overlapping(runs: list, lo, hi) -> list[str]:
    """The files of `runs` that can hold keys in [lo, hi]: every plain run, and the
    chunks whose key range meets it."""
    return [r if isinstance(r, str) else r[0] for r in runs if isinstance(r, str) or (r[2] >= lo and r[1] <= hi)]


def range_files(map_fn, output: str, runs: list[str], key: str, n: int, folder: str,
                stats: dict | None = None, group_rows: int = ROW_GROUP_ROWS) -> list[list]:
    """The rows of sorted runs as n files, one per key range (key_ranges(n)), each sorted
    by `key`: a task per range reads its rows from the runs. A reader of one key then opens
    one file instead of every run (dedup's apply units: units x runs opens otherwise).
    `group_rows`: rows per row group (a reader of one key reads one or two of them).
    Returns [lo, hi, path] per range that holds rows."""
    rmtree(location(output) / folder)
    ranges = key_ranges(n)
    dests = [f"{folder}/{j:06d}.parquet" for j in range(n)]
    results = map_fn(range_file, [(output, runs, key, lo, hi, d, group_rows) for (lo, hi), d in zip(ranges, dests)])
    if stats is not None:
        add_counts(stats, results)
    return [[lo, hi, d] for (lo, hi), d, r in zip(ranges, dests, results) if r["writes"]]


def range_file(output: str, runs: list[str], key: str, lo: int, hi: int, dest: str,
               group_rows: int = ROW_GROUP_ROWS) -> dict:
    """One range of range_files."""
    t0 = time.process_time()
    out = location(output)
    t = read_range(out, runs, key, lo, hi)
    if t is not None:
        with atomic_path(out / dest) as tmp:
            pq.write_table(t.sort_by([(key, "ascending")]), tmp, row_group_size=group_rows,
                           write_statistics=[key])
    return {"opens": len(runs), "writes": int(t is not None), "cpu_s": time.process_time() - t0}


def add_counts(stats: dict, results: list[dict]) -> None:
    for k in ("opens", "writes", "cpu_s"):
        stats[k] = stats.get(k, 0) + sum(r.get(k, 0) for r in results)
    stats["tasks"] = stats.get("tasks", 0) + len(results)
    stats["peak_mb"] = max([stats.get("peak_mb", 0)] + [r.get("peak_mb", 0) for r in results])
    nodes = set(stats.get("nodes", [])) | {r["node"] for r in results if r.get("node")}
    if nodes:
        stats["nodes"] = sorted(nodes)


def read_range(output, runs: list, key: str, lo, hi, columns: list[str] | None = None) -> pa.Table | None:
    """Rows with lo <= key <= hi from sorted runs (paths, or chunks [path, lo, hi] of
    which only those that meet the range are opened), reading only the row groups that
    can hold them (None when no run has a row there)."""
    out = location(output)
    tables = map_io(lambda p: _read_range_one(out / p, key, lo, hi, columns), overlapping(runs, lo, hi), out)
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def _read_range_one(path, key: str, lo, hi, columns) -> pa.Table | None:
    if not path.exists():
        return None
    pf = pq.ParquetFile(path)
    col = pf.schema_arrow.get_field_index(key)
    groups = []
    for g in range(pf.num_row_groups):
        st = pf.metadata.row_group(g).column(col).statistics
        if st is None or not st.has_min_max or (st.max >= lo and st.min <= hi):
            groups.append(g)
    if not groups:
        return None
    t = pf.read_row_groups(groups, columns=columns, use_threads=False)
    k = t.column(key)
    typ = k.type
    mask = pc.and_(pc.greater_equal(k, pa.scalar(lo, typ)), pc.less_equal(k, pa.scalar(hi, typ)))
    return t.filter(mask)
