"""dedup: exact and MinHash-LSH near duplicates across every dump, in one stage.

Steps (Ray tasks; the driver holds only the plan and small summaries). Every exchange
between steps goes through sorted runs (pipeline/shuffle.py): a task opens at most
FAN_IN runs, so opens grow with shards + tasks, never shards x tasks.
1. signatures (signatures.py), one task per input shard: normalise, shingle, MinHash
   (numba, equal to datasketch), band keys sorted by key, an exact-text hash. Stored under
   _work/dedup/ with the settings that made them, so a rerun after a new dump computes
   only the new shards' signatures.
2. buckets (buckets.py), one task per range of band keys, sized by `bucket_rows`:
   documents sharing a band key (or the exact hash) become edges.
3. labels (labels.py): connected components, as rounds of tasks over ranges of document
   keys (or one union-find task when the edges fit `components_memory`).
4. survivors (survivors.py), tasks over ranges of cluster roots: survivors by policy,
   decisions sorted by unit, the dedup-rate curve by number of dumps.
5. apply, one unit per input shard (the ordinary unit path), reading only its unit's
   decisions: survivors go on with `dup_cluster` (the survivor's id) and `dup_count`
   (cluster size); the others go to rejects as `exact_duplicate` / `near_duplicate` with
   the survivor's id as detail.
"""
from __future__ import annotations

import functools
import json

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.manifests.atomic import write_bytes_atomic, write_table_atomic
from curate.pipeline.settings import at_least, between, one_of, setting
from curate.pipeline.schema import extend_schema, with_columns
from curate.pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one
from curate.pipeline.shuffle import key_ranges, range_files, sorted_runs
from curate.stages.dedup.buckets import EDGES_BY_X, EDGES_BY_Y, band_runs, bucket_edges, bucket_tasks, dump_ranks
from curate.stages.dedup.components import BYTES_PER_EDGE
from curate.stages.dedup.labels import cluster_labels
from curate.stages.dedup.signatures import compute_signatures, doc_keys
from curate.stages.dedup.survivors import (DECISION_GROUP_ROWS, DECISION_PART_ROWS, DECISIONS, ROOTED, attach_roots, by_root, member_runs, memory_bytes,
                                           unit_decisions, write_decision_index)
from curate.pipeline.storage import location, rmtree

SCOPES = ("global", "per_dump", "incremental")
POLICIES = ("newest_dump", "oldest_dump", "longest")
COMPONENT_MODES = ("auto", "memory", "disk")
DUP_FIELDS = [pa.field("dup_cluster", pa.string()), pa.field("dup_count", pa.int32())]
CURVE = "reports/dedup_curve.parquet"
STEPS = "reports/dedup_steps.json"       # per step: tasks, CPU, wall, files opened (tools/bench_scale.py)
BYTES_PER_MEMBER = 120                   # a document's survivor columns in a clustering task
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
    components: str = setting("auto", "auto (by components_memory), memory (one union-find task), "
                                      "or disk (rounds of tasks over ranges of documents)",
                              one_of(*COMPONENT_MODES))
    component_tasks: int = setting(0, "tasks per clustering step (labels, survivors, curve); 0 = enough "
                                      "that each holds at most components_memory. The results do not "
                                      "depend on it", at_least(0, 1_000_000))

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
        out = location(ctx.output).resolve()
        output = str(out)
        steps: dict[str, dict] = {}

        def timed(name):
            # started: the step's wall-clock start (a benchmark attributes storage requests by it)
            steps[name] = {"started": round(time.time(), 3), "wall_s": time.perf_counter()}
            return steps[name]

        def done(st):
            st["wall_s"] = round(time.perf_counter() - st["wall_s"], 3)
        st = timed("signatures")
        sig_results = ctx.map(compute_signatures, [(output, u, s) for u in units])
        reused = sum(r["reused"] for r in sig_results)
        _add(st, sig_results)
        st.update(opens=len(units) - reused, writes=2 * (len(units) - reused))
        done(st)
        ctx.log(f"[dedup] signatures: {len(units) - reused} shards computed, {reused} reused ({st['wall_s']:.1f} s)")
        keys = [u.key for u in units]
        ranks = dump_ranks([u.dump for u in units])
        st = timed("band_runs")
        total_rows, runs = band_runs(ctx.map, output, keys, ranks, st)
        done(st)
        st = timed("buckets")
        tasks = bucket_tasks(output, runs, total_rows, s.bucket_rows)
        results = ctx.map(bucket_edges, tasks)
        _add(st, results)
        done(st)
        n_edges = sum(r["edges"] for r in results)
        ctx.log(f"[dedup] buckets: {total_rows:,} band keys in {len(tasks)} tasks -> {n_edges:,} edges "
                f"({st['wall_s']:.1f} s)")
        st = timed("edge_runs")
        edges_x = sorted_runs(ctx.map, output, [f"{EDGES_BY_X}/part-{j:05d}.parquet" for j in range(len(tasks))],
                              "x", f"{EDGES_BY_X}_runs", stats=st)
        edges_y = sorted_runs(ctx.map, output, [f"{EDGES_BY_Y}/part-{j:05d}.parquet" for j in range(len(tasks))],
                              "y", f"{EDGES_BY_Y}_runs", stats=st)
        done(st)
        st = timed("member_runs")
        rows_in: dict[str, int] = {}
        members = member_runs(ctx.map, output, keys, ranks, st, rows_in)
        docs_per_rank = _docs_per_rank(rows_in, keys, ranks)
        done(st)
        limit = memory_bytes(s.components_memory)
        n_tasks = self._clustering_tasks(s, n_edges, sum(docs_per_rank), limit)
        in_memory = s.components == "memory" or (s.components == "auto" and n_tasks == 1)
        st = timed("labels")
        cx, cy, rounds = cluster_labels(ctx.map, output, edges_x, edges_y, n_tasks, in_memory, st, ctx.log)
        done(st)
        ranges = key_ranges(n_tasks)
        st = timed("attach_roots")
        rmtree(out / ROOTED)
        mparts = [f"{ROOTED}/members/{j:05d}.parquet" for j in range(n_tasks)]
        eparts = [f"{ROOTED}/edges/{j:05d}.parquet" for j in range(n_tasks)]
        _add(st, ctx.map(attach_roots, [(output, cx, cy, members, edges_y, lo, hi, mparts[j], eparts[j])
                                        for j, (lo, hi) in enumerate(ranges)]))
        rooted_m = sorted_runs(ctx.map, output, mparts, "root", f"{ROOTED}/members_runs", stats=st)
        rooted_e = sorted_runs(ctx.map, output, eparts, "root", f"{ROOTED}/edges_runs", stats=st)
        done(st)
        st = timed("survivors")
        rmtree(out / DECISIONS)
        dparts = [f"{DECISIONS}/parts/{j:05d}.parquet" for j in range(n_tasks)]
        n_dumps = len(docs_per_rank)
        res = ctx.map(by_root, [(output, rooted_m, rooted_e, lo, hi, s.survivor, n_dumps, dparts[j], limit)
                                for j, (lo, hi) in enumerate(ranges)])
        _add(st, res)
        in_clusters = sum(r["in_clusters"] for r in res)
        druns = sorted_runs(ctx.map, output, [d for d, r in zip(dparts, res) if r["writes"]],
                            "unit_id", f"{DECISIONS}/runs", stats=st)
        n_parts = max(1, -(-in_clusters // DECISION_PART_ROWS))
        # small row groups: an apply unit reads its few rows, not 65,536 of other units'
        write_decision_index(output, range_files(ctx.map, output, druns, "unit_id", n_parts, f"{DECISIONS}/units",
                                                 stats=st, group_rows=DECISION_GROUP_ROWS) if druns else [])
        done(st)
        clusters = sum(r["clusters"] for r in res)
        removed = np.sum([r["removed"] for r in res], axis=0) if res else np.zeros(n_dumps, np.int64)
        mode = "memory" if in_memory else "disk"
        ctx.log(f"[dedup] components ({mode}, {rounds} round(s), {n_tasks} task(s)): {in_clusters:,} documents "
                f"in {clusters:,} clusters, {in_clusters - clusters:,} to remove "
                f"({steps['labels']['wall_s'] + steps['attach_roots']['wall_s'] + st['wall_s']:.1f} s)")
        curve = _curve(sorted(set(u.dump for u in units), key=lambda d: (d is None, d or "")), docs_per_rank, removed)
        write_table_atomic(pa.Table.from_pylist(curve), out / CURVE)
        write_bytes_atomic(json.dumps({"steps": steps, "clustering_tasks": n_tasks, "rounds": rounds,
                                       "shards": len(units), "bucket_tasks": len(tasks)}).encode(), out / STEPS)
        ctx.log("[dedup] dedup rate by number of dumps (DeepSeek LLM Table 1 beside):")
        for row in curve:
            ds = DEEPSEEK_TABLE1.get(row["dumps_used"])
            ctx.log(f"[dedup]   {row['dumps_used']:3d} dumps (to {row['last_dump']}): {row['docs']:>9,} docs, "
                    f"{row['removed']:>9,} removed = {row['rate']:.1%}" + (f"   DeepSeek: {ds:.1%}" if ds else ""))

    @staticmethod
    def _clustering_tasks(s: DedupSettings, n_edges: int, n_docs: int, limit: int) -> int:
        """Tasks per clustering step: each holds about 1/n of the edges and documents."""
        if s.component_tasks:
            return s.component_tasks
        return max(1, -(-max(n_edges * BYTES_PER_EDGE, n_docs * BYTES_PER_MEMBER) // limit))

    def process(self, unit: Unit, s: DedupSettings, sink: UnitSink) -> None:
        table = pq.read_table(sink.output / unit.inputs[0].path)
        sink.set_schema(extend_schema(table.schema, DUP_FIELDS))
        sink.count_in(table.num_rows)
        found = unit_decisions(sink.output, unit.key)
        dec = found.select(["doc", "survivor", "reason", "count"]).to_pylist() if found is not None else []
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


def _add(stats: dict, results: list[dict]) -> None:
    from curate.pipeline.shuffle import add_counts
    add_counts(stats, results)


def _docs_per_rank(rows_in: dict[str, int], keys: list[str], ranks: list[int]) -> list[int]:
    from curate.stages.dedup.survivors import signature_file
    n = [0] * (max(ranks) + 1 if ranks else 0)
    for k, r in zip(keys, ranks):
        n[r] += rows_in.get(signature_file(k), 0)
    return n


def _curve(dumps: list, docs_per_rank: list[int], removed) -> list[dict]:
    """Dedup rate over the first k dumps; a dump without documents adds no row."""
    rows, docs = [], 0
    for k, d in enumerate(dumps):
        if not docs_per_rank[k]:
            continue
        docs += docs_per_rank[k]
        rows.append({"dumps_used": len(rows) + 1, "last_dump": d, "docs": int(docs), "removed": int(removed[k]),
                     "rate": float(removed[k] / docs) if docs else 0.0})
    return rows
