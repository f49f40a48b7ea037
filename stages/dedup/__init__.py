"""dedup: exact and MinHash-LSH near duplicates across every dump, in one stage.

Steps (Ray tasks where they are per shard or per partition):
1. signatures, one task per input shard: normalise, shingle, MinHash (numba, equal to
   datasketch), band keys hash-partitioned into `partitions` files, plus an exact-text
   hash. Stored under dedup/_work/ with the settings that made them, so a rerun after a
   new dump computes only the new shards' signatures.
2. buckets, one task per partition: documents sharing a band key (or the exact hash)
   become edges (each to the smallest key of its bucket).
3. components, in the driver, over edges only: union-find (components.py), survivors by
   policy, the dedup-rate curve by number of dumps, a decisions file per shard.
4. apply, one unit per input shard (the ordinary unit path): survivors go on with
   `dup_cluster` (the survivor's id) and `dup_count` (cluster size); the others go to
   rejects as `exact_duplicate` / `near_duplicate` with the survivor's id as detail.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from manifests.atomic import write_table_atomic
from pipeline.config import setting
from pipeline.schema import extend_schema, with_columns
from pipeline.stage import PlanContext, Stage, Unit, UnitSink, plan_one_to_one

SCOPES = ("global", "per_dump", "incremental")
POLICIES = ("newest_dump", "oldest_dump", "longest")
DUP_FIELDS = [pa.field("dup_cluster", pa.string()), pa.field("dup_count", pa.int32())]
EXACT_BAND = 65535
WORK = "dedup/_work"
CURVE = "reports/dedup_curve.parquet"
# DeepSeek LLM (arXiv 2401.02954) Table 1: dedup rate by number of Common Crawl dumps.
DEEPSEEK_TABLE1 = {1: 0.222, 2: 0.467, 6: 0.557, 12: 0.699, 16: 0.757, 22: 0.763, 41: 0.816, 91: 0.898}


@dataclass
class DedupSettings:
    scope: str = setting("global", "global: all dumps together; per_dump: within each dump "
                                   "(FineWeb); incremental: global, with earlier dumps' documents "
                                   "always kept (oldest-first survivors) and stored signatures reused")
    ngram: int = setting(5, "shingle size: words (English and spaced languages) or characters (Chinese)")
    num_perm: int = setting(128, "MinHash permutations")
    seed: int = setting(1, "MinHash seed (datasketch's)")
    threshold: float = setting(0.7, "Jaccard threshold that picks bands x rows (datasketch's rule)")
    bands: int = setting(0, "explicit number of bands (with rows); 0 = from threshold")
    rows: int = setting(0, "explicit rows per band; 0 = from threshold")
    exact: bool = setting(True, "also join documents whose normalised text is identical")
    survivor: str = setting("newest_dump", "newest_dump, oldest_dump, longest, or column:<name> "
                                           "(highest value wins); ties go to the smallest id")
    partitions: int = setting(8, "hash partitions of band keys: one bucket task each")

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
        if self.ngram < 1 or self.num_perm < 2 or self.partitions < 1:
            raise ValueError("ngram, num_perm and partitions must be positive")

    def band_params(self) -> tuple[int, int]:
        if self.bands:
            return self.bands, self.rows
        from datasketch.lsh import _optimal_param
        return _optimal_param(self.threshold, self.num_perm, 0.5, 0.5)


def doc_key(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little", signed=True)


def _text_hash(norm: str) -> int:
    return int.from_bytes(hashlib.blake2b(norm.encode(), digest_size=8).digest(), "little", signed=True)


def signature_fingerprint(s: DedupSettings, input_fp: str) -> str:
    bands, rows = s.band_params()
    blob = json.dumps([input_fp, s.ngram, s.num_perm, s.seed, bands, rows, s.exact, s.partitions,
                       s.scope == "per_dump", s.survivor], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def compute_signatures(output: str, unit: Unit, s: DedupSettings) -> dict:
    """Step 1 for one input shard (a Ray task). Skips work already stored."""
    from stages.dedup.minhash import band_keys, signatures_from_normalised
    from stages.dedup.shingles import mode_for, normalise
    out = Path(output)
    fp = signature_fingerprint(s, unit.inputs[0].fingerprint)
    sig_path = out / WORK / "signatures" / f"{unit.key}.parquet"
    if sig_path.exists():
        meta = pq.read_metadata(sig_path).metadata or {}
        if meta.get(b"curate_fingerprint") == fp.encode():
            return {"unit": unit.key, "reused": True}
    t0 = time.perf_counter()
    score_col = s.survivor.split(":", 1)[1] if s.survivor.startswith("column:") else None
    cols = ["id", "dump", "text", "n_chars"] + (["lang"] if "lang" in pq.read_schema(out / unit.inputs[0].path).names else [])
    if score_col:
        cols.append(score_col)
    table = pq.read_table(out / unit.inputs[0].path, columns=cols)
    texts = table.column("text").to_pylist()
    langs = table.column("lang").to_pylist() if "lang" in cols else [None] * len(texts)
    modes = [mode_for(lang, t) for lang, t in zip(langs, texts)]
    norm = [normalise(t, m) for t, m in zip(texts, modes)]
    sig = signatures_from_normalised(norm, modes, s.ngram, s.num_perm, s.seed)
    keys = np.array([doc_key(i) for i in table.column("id").to_pylist()], dtype=np.int64)
    thash = np.array([_text_hash(n) for n in norm], dtype=np.int64)
    bands, rows = s.band_params()
    bkeys = band_keys(sig, bands, rows)
    if s.scope == "per_dump":           # buckets never span two dumps
        dump_salt = np.array([doc_key(d) for d in table.column("dump").to_pylist()], dtype=np.int64).view(np.uint64)
        bkeys ^= dump_salt[:, None]
        thash = thash ^ dump_salt.view(np.int64)
    band_ids = np.tile(np.arange(bands, dtype=np.uint16), len(keys))
    all_doc = np.repeat(keys, bands)
    all_band = band_ids
    all_key = bkeys.reshape(-1)
    if s.exact:
        all_doc = np.concatenate([all_doc, keys])
        all_band = np.concatenate([all_band, np.full(len(keys), EXACT_BAND, np.uint16)])
        all_key = np.concatenate([all_key, thash.view(np.uint64)])
    part = (all_key % np.uint64(s.partitions)).astype(np.int64)
    for k in range(s.partitions):
        m = part == k
        write_table_atomic(pa.table({"doc": all_doc[m], "band": all_band[m], "key": all_key[m]}),
                           out / WORK / "bands" / unit.key / f"part-{k:04d}.parquet")
    flat = pa.array(sig.reshape(-1), pa.uint32())
    meta_table = pa.table({
        "doc": keys, "id": table.column("id"), "dump": table.column("dump"),
        "n_chars": table.column("n_chars"), "text_hash": thash,
        "score": (table.column(score_col).cast(pa.float64()) if score_col else pa.nulls(len(keys), pa.float64())),
        "signature": pa.FixedSizeListArray.from_arrays(flat, s.num_perm),
    }).replace_schema_metadata({"curate_fingerprint": fp, "bands": str(bands), "rows": str(rows)})
    write_table_atomic(meta_table, sig_path)     # last: its fingerprint marks the shard done
    return {"unit": unit.key, "reused": False, "docs": len(keys), "seconds": time.perf_counter() - t0}


def bucket_edges(output: str, unit_keys: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 for one partition (a Ray task): documents sharing a bucket -> edges."""
    out = Path(output)
    parts = [out / WORK / "bands" / key / f"part-{k:04d}.parquet" for key in unit_keys]
    tables = [pq.read_table(p) for p in parts if p.exists()]
    if not tables:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    t = pa.concat_tables(tables)
    doc = t.column("doc").to_numpy()
    band = t.column("band").to_numpy()
    key = t.column("key").to_numpy()
    order = np.lexsort((doc, key, band))
    doc, band, key = doc[order], band[order], key[order]
    new_group = np.ones(len(doc), dtype=bool)
    new_group[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    group_id = np.cumsum(new_group) - 1
    first = doc[new_group][group_id]            # the smallest key of each bucket
    m = first != doc
    a, b = first[m], doc[m]
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0) if len(a) else np.empty((0, 2), np.int64)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


def _choose(policy: str, meta: dict, members: np.ndarray) -> int:
    """The survivor among members (indices into meta arrays); ties by smallest id."""
    ids = meta["id"]
    if policy == "longest":
        primary = [-meta["n_chars"][i] for i in members]
    elif policy == "newest_dump":
        primary = [-meta["dump_rank"][i] for i in members]
    elif policy == "oldest_dump":
        primary = [meta["dump_rank"][i] for i in members]
    else:
        primary = [-(meta["score"][i] if meta["score"][i] is not None else float("-inf")) for i in members]
    return min(zip(primary, (ids[i] for i in members), members))[2]


class DedupStage(Stage):
    name = "dedup"
    code_version = "1"
    settings_cls = DedupSettings
    requires = ("extract",)
    needs_all_inputs = True
    summary = "exact + MinHash LSH near-duplicate removal across all dumps"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        s = ctx.config.settings(self.name)
        # one document's fate depends on every shard in scope
        return plan_one_to_one(self, ctx, lambda up, ups: [u for u in ups if s.scope != "per_dump"
                                                            or u.dump == up.dump])

    def prepare(self, s: DedupSettings, ctx) -> None:
        units = ctx.units
        t0 = time.perf_counter()
        out = str(Path(ctx.output).resolve())
        sig_results = ctx.map(compute_signatures, [(out, u, s) for u in units])
        reused = sum(r["reused"] for r in sig_results)
        ctx.log(f"[dedup] signatures: {len(units) - reused} shards computed, {reused} reused "
                f"({time.perf_counter() - t0:.1f} s)")
        keys = [u.key for u in units]
        edge_parts = ctx.map(bucket_edges, [(out, keys, k) for k in range(s.partitions)])
        ea = np.concatenate([p[0] for p in edge_parts]) if edge_parts else np.empty(0, np.int64)
        eb = np.concatenate([p[1] for p in edge_parts]) if edge_parts else np.empty(0, np.int64)
        if len(ea):
            pairs = np.unique(np.stack([ea, eb], axis=1), axis=0)
            ea, eb = pairs[:, 0], pairs[:, 1]
        self._components(Path(out), units, s, ea, eb, ctx.log)
        ctx.log(f"[dedup] {len(ea):,} duplicate pairs; components done ({time.perf_counter() - t0:.1f} s)")

    def _components(self, out: Path, units: list[Unit], s: DedupSettings, ea, eb, log) -> None:
        from stages.dedup.components import clusters
        nodes, root = clusters(ea, eb) if len(ea) else (np.empty(0, np.int64), np.empty(0, np.int64))
        meta = {"doc": [], "id": [], "dump": [], "n_chars": [], "text_hash": [], "score": [], "unit": []}
        dump_docs: dict[str, int] = {}
        for u in units:
            t = pq.read_table(out / WORK / "signatures" / f"{u.key}.parquet",
                              columns=["doc", "id", "dump", "n_chars", "text_hash", "score"])
            for d, n in zip(*np.unique(np.array(t.column("dump").to_pylist(), dtype=object), return_counts=True)):
                dump_docs[d] = dump_docs.get(d, 0) + int(n)
            docs = t.column("doc").to_numpy()
            # membership by binary search in the sorted node keys: O(shard x log nodes)
            pos = np.minimum(np.searchsorted(nodes, docs), max(len(nodes) - 1, 0))
            mask = (nodes[pos] == docs) if len(nodes) else np.zeros(len(docs), dtype=bool)
            if mask.any():
                sub = t.filter(pa.array(mask))
                for col in ("doc", "id", "dump", "n_chars", "text_hash", "score"):
                    meta[col] += sub.column(col).to_pylist()
                meta["unit"] += [u.key] * sub.num_rows
        index = {d: i for i, d in enumerate(meta["doc"])}
        dump_rank = {d: r for r, d in enumerate(sorted(set(meta["dump"])))}     # names sort by time
        meta["dump_rank"] = [dump_rank[d] for d in meta["dump"]]
        node_meta = np.array([index[n] for n in nodes.tolist()], dtype=np.int64)   # node -> meta row
        policy = "oldest_dump" if s.scope == "incremental" else s.survivor
        decisions: dict[str, list] = {u.key: [] for u in units}
        order = np.argsort(root, kind="stable")
        bounds = np.flatnonzero(np.diff(root[order])) + 1
        for members_nodes in np.split(order, bounds) if len(order) else []:
            members = node_meta[members_nodes]
            surv = _choose(policy, meta, members)
            sid = meta["id"][surv]
            for i in members:
                reason = None if i == surv else (
                    "exact_duplicate" if meta["text_hash"][i] == meta["text_hash"][surv] else "near_duplicate")
                decisions[meta["unit"][i]].append((meta["doc"][i], sid, reason, len(members)))
        for key, rows in decisions.items():
            write_table_atomic(pa.table({
                "doc": pa.array([r[0] for r in rows], pa.int64()),
                "survivor": pa.array([r[1] for r in rows], pa.string()),
                "reason": pa.array([r[2] for r in rows], pa.string()),
                "count": pa.array([r[3] for r in rows], pa.int32())}),
                out / WORK / "decisions" / f"{key}.parquet")
        self._curve(out, dump_docs, meta, index, ea, eb, log)

    def _curve(self, out: Path, dump_docs: dict, meta: dict, index: dict, ea, eb, log) -> None:
        """Dedup rate over the first k dumps in time order, k = 1..n: one union-find pass."""
        from stages.dedup.components import unions_by_step
        dumps = sorted(dump_docs)
        rank = {d: i for i, d in enumerate(dumps)}
        if len(ea):
            nodes, inv = np.unique(np.concatenate([ea, eb]), return_inverse=True)
            node_rank = np.array([rank[meta["dump"][index[n]]] for n in nodes.tolist()])
            m = len(ea)
            step = np.maximum(node_rank[inv[:m]], node_rank[inv[m:]])
            o = np.argsort(step, kind="stable")
            removed = unions_by_step(len(nodes), inv[:m][o], inv[m:][o], step[o], len(dumps))
        else:
            removed = np.zeros(len(dumps), dtype=np.int64)
        docs = np.cumsum([dump_docs[d] for d in dumps])
        rows = [{"dumps_used": k + 1, "last_dump": dumps[k], "docs": int(docs[k]), "removed": int(removed[k]),
                 "rate": float(removed[k] / docs[k]) if docs[k] else 0.0} for k in range(len(dumps))]
        write_table_atomic(pa.Table.from_pylist(rows), out / CURVE)
        log("[dedup] dedup rate by number of dumps (DeepSeek LLM Table 1 beside):")
        for r in rows:
            ds = DEEPSEEK_TABLE1.get(r["dumps_used"])
            log(f"[dedup]   {r['dumps_used']:3d} dumps (to {r['last_dump']}): {r['docs']:>9,} docs, "
                f"{r['removed']:>9,} removed = {r['rate']:.1%}" + (f"   DeepSeek: {ds:.1%}" if ds else ""))

    def process(self, unit: Unit, s: DedupSettings, sink: UnitSink) -> None:
        table = pq.read_table(sink.output / unit.inputs[0].path)
        sink.set_schema(extend_schema(table.schema, DUP_FIELDS))
        sink.count_in(table.num_rows)
        dec = pq.read_table(sink.output / WORK / "decisions" / f"{unit.key}.parquet").to_pylist()
        by_doc = {r["doc"]: r for r in dec}
        ids = table.column("id").to_pylist()
        keep, clusters, counts = [], [], []
        dumps, urls = table.column("dump").to_pylist(), table.column("url").to_pylist()
        for i, did in enumerate(ids):
            d = by_doc.get(doc_key(did))
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
