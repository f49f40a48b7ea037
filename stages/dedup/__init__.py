"""dedup: exact and MinHash-LSH near duplicates across every dump, in one stage.

Steps (Ray tasks; the driver holds only the plan and small summaries):
1. signatures (signatures.py), one task per input shard: normalise, shingle, MinHash
   (numba, equal to datasketch), band keys sorted by key, an exact-text hash. Stored under
   _work/dedup/ with the settings that made them, so a rerun after a new dump computes
   only the new shards' signatures.
2. buckets (buckets.py), one task per range of band keys, sized by `bucket_rows`:
   documents sharing a band key (or the exact hash) become edges, written to disk.
3. components (survivors.py), one task: connected components over the edges (union-find
   in memory below `components_memory`, DuckDB large-star/small-star rounds beyond it),
   survivors by policy, decisions, and the dedup-rate curve by number of dumps, all in
   DuckDB within `components_memory`, spilling to disk.
4. apply, one unit per input shard (the ordinary unit path): survivors go on with
   `dup_cluster` (the survivor's id) and `dup_count` (cluster size); the others go to
   rejects as `exact_duplicate` / `near_duplicate` with the survivor's id as detail.
"""
from __future__ import annotations

import functools

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.manifests.atomic import write_table_atomic
from curate.pipeline.config import at_least, between, one_of, setting
from curate.pipeline.schema import extend_schema, with_columns
from curate.pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one
from curate.stages.dedup.buckets import bucket_edges, bucket_tasks, dump_ranks
from curate.stages.dedup.signatures import compute_signatures, doc_keys
from curate.stages.dedup.survivors import DECISIONS, memory_bytes, resolve
from curate.pipeline.storage import location

SCOPES = ("global", "per_dump", "incremental")
POLICIES = ("newest_dump", "oldest_dump", "longest")
COMPONENT_MODES = ("auto", "memory", "disk")
DUP_FIELDS = [pa.field("dup_cluster", pa.string()), pa.field("dup_count", pa.int32())]
CURVE = "reports/dedup_curve.parquet"
# DeepSeek LLM (arXiv 2401.02954) Table 1: dedup rate by number of Common Crawl dumps.
DEEPSEEK_TABLE1 = {1: 0.222, 2: 0.467, 6: 0.557, 12: 0.699, 16: 0.757, 22: 0.763, 41: 0.816, 91: 0.898}


@dataclass
class DedupSettings:
    scope: str = setting("global", "global: all dumps together; per_dump: within each dump "
                                   "(FineWeb); incremental: global over every dump so far with "
                                   "oldest-first survivors, reusing stored signatures (only new "
                                   "shards are computed)", one_of(*SCOPES))
    ngram: int = setting(5, "shingle size: words (English and spaced languages) or characters (Chinese)",
                         at_least(1, 100))
    num_perm: int = setting(128, "MinHash permutations", at_least(2, 4096))
    seed: int = setting(1, "MinHash seed (datasketch's)", at_least(0, 2**32 - 1))
    threshold: float = setting(0.7, "Jaccard threshold that picks bands x rows (datasketch's rule)",
                               between(0, 1, lo_open=True, hi_open=True))
    bands: int = setting(0, "explicit number of bands (with rows); 0 = from threshold", at_least(0, 4096))
    rows: int = setting(0, "explicit rows per band; 0 = from threshold", at_least(0, 4096))
    exact: bool = setting(True, "also join documents whose normalised text is identical")
    survivor: str = setting("newest_dump", "newest_dump, oldest_dump, longest, or column:<name> "
                                           "(highest value wins); ties go to the smallest id")
    bucket_rows: int = setting(10_000_000, "most band-key rows one bucket task holds (about 100 bytes "
                                           "each at its peak); more rows, more tasks", at_least(1))
    components_memory: str = setting("2GB", "memory for the components step: union-find in memory "
                                            "while the edges fit, else DuckDB spilling to disk "
                                            "within this limit")
    components: str = setting("auto", "auto (by components_memory), memory, or disk (out of core)",
                              one_of(*COMPONENT_MODES))

    def validate(self):
        if self.scope not in SCOPES:
            raise ValueError(f"scope: one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.survivor not in POLICIES and not self.survivor.startswith("column:"):
            raise ValueError(f"survivor: one of {', '.join(POLICIES)} or column:<name>, got {self.survivor!r}")
        if self.scope == "incremental" and self.survivor != "oldest_dump":
            raise ValueError("survivor: incremental scope keeps what earlier runs kept, so it needs oldest_dump")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold: within (0, 1), got {self.threshold}")
        if (self.bands > 0) != (self.rows > 0) or self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands/rows: give both, with bands x rows <= num_perm ({self.num_perm})")
        if self.ngram < 1 or self.num_perm < 2 or self.bucket_rows < 1:
            raise ValueError("ngram, num_perm and bucket_rows must be positive")
        if self.components not in COMPONENT_MODES:
            raise ValueError(f"components: one of {', '.join(COMPONENT_MODES)}, got {self.components!r}")
        try:
            memory_bytes(self.components_memory)
        except ValueError as e:
            raise ValueError(f"components_memory: {e}") from None

    def band_params(self) -> tuple[int, int]:
        if self.bands:
            return self.bands, self.rows
        return optimal_bands(self.threshold, self.num_perm)


@functools.lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """datasketch's (bands, rows) for a threshold: it integrates the false positive and
    negative rates for every split (about 16 ms), so each process does it once."""
    from datasketch.lsh import _optimal_param
    return _optimal_param(threshold, num_perm, 0.5, 0.5)


class DedupStage(Stage):
    name = "dedup"
    code_version = "4"      # 3: ranks in buckets (curve), shingling by script; 4: new shingle hash
    settings_cls = DedupSettings
    requires = ("extract",)
    needs_all_inputs = True
    summary = "exact + MinHash LSH near-duplicate removal across all dumps"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        s = ctx.config.settings(self.name)
        # one document's fate depends on every shard in scope
        return plan_one_to_one(self, ctx, lambda up: up.dump if s.scope == "per_dump" else "all")

    def prepare(self, s: DedupSettings, ctx) -> None:
        units = ctx.units
        t0 = time.perf_counter()
        out = location(ctx.output).resolve()
        sig_results = ctx.map(compute_signatures, [(str(out), u, s) for u in units])
        reused = sum(r["reused"] for r in sig_results)
        ctx.log(f"[dedup] signatures: {len(units) - reused} shards computed, {reused} reused "
                f"({time.perf_counter() - t0:.1f} s)")
        keys = [u.key for u in units]
        total_rows, tasks = bucket_tasks(out, keys, s.bucket_rows, dump_ranks([u.dump for u in units]))
        t1 = time.perf_counter()
        n_edges = sum(ctx.map(bucket_edges, tasks))
        ctx.log(f"[dedup] buckets: {total_rows:,} band keys in {len(tasks)} tasks -> {n_edges:,} edges "
                f"({time.perf_counter() - t1:.1f} s)")
        r = ctx.map(resolve, [(str(out), keys, s, n_edges)])[0]
        ctx.log(f"[dedup] components ({r['mode']}, {r['rounds']} round(s), {r['phases'][0][1]} s): "
                f"{r['in_clusters']:,} documents in {r['clusters']:,} clusters, {r['removed']:,} to remove "
                f"({r['seconds']:.1f} s; " + ", ".join(f"{p} at {t} s, peak {m} MB" for p, t, m in r["phases"]) + ")")
        write_table_atomic(pa.Table.from_pylist(r["curve"]), out / CURVE)
        ctx.log("[dedup] dedup rate by number of dumps (DeepSeek LLM Table 1 beside):")
        for row in r["curve"]:
            ds = DEEPSEEK_TABLE1.get(row["dumps_used"])
            ctx.log(f"[dedup]   {row['dumps_used']:3d} dumps (to {row['last_dump']}): {row['docs']:>9,} docs, "
                    f"{row['removed']:>9,} removed = {row['rate']:.1%}" + (f"   DeepSeek: {ds:.1%}" if ds else ""))

    def process(self, unit: Unit, s: DedupSettings, sink: UnitSink) -> None:
        table = pq.read_table(sink.output / unit.inputs[0].path)
        sink.set_schema(extend_schema(table.schema, DUP_FIELDS))
        sink.count_in(table.num_rows)
        dec = pq.read_table(sink.output / DECISIONS, columns=["doc", "survivor", "reason", "count"],
                            filters=[("unit", "=", unit.key)]).to_pylist()
        by_doc = {r["doc"]: r for r in dec}
        keys = doc_keys(unit.key, table.num_rows)       # as compute_signatures made them
        ids = table.column("id").to_pylist()
        keep, clusters, counts = [], [], []
        dumps, urls = table.column("dump").to_pylist(), table.column("url").to_pylist()
        for i, did in enumerate(ids):
            d = by_doc.get(int(keys[i]))
            if d is None:
                keep.append(i)
                clusters.append(did)
                counts.append(1)
            elif d["reason"] is None:
                keep.append(i)
                clusters.append(d["survivor"])
                counts.append(d["count"])
            else:
                sink.reject(d["reason"], d["survivor"], did, dumps[i], urls[i])
        sink.add_docs(with_columns(table.take(pa.array(keep, pa.int64())), DUP_FIELDS, [clusters, counts]))
        bands, rows = s.band_params()
        sink.stats.update({"bands": bands, "rows": rows, "num_perm": s.num_perm, "ngram": s.ngram,
                           "scope": s.scope})
