"""dedup on the shared crawls with duplicate truth; MinHash equal to datasketch."""
import collections
import gzip
import json
import shutil

import numpy as np
import pytest

from conftest import DATA, read_shards, run_stages
from curate.manifests.manifest import read_rows
from curate.stages.dedup.minhash import signatures_from_normalised
from curate.stages.dedup.shingles import CHAR, WORD, mode_for, normalise, shingle_bytes, shingle_hash, shingle_strings, tokens

ORDER = ["extract", "dedup"]


def _evaluate(out, truth_file):
    """Recall per record kind and precision (clusters that mix source pages)."""
    truth = {r["record_id"]: r for r in json.loads(truth_file.read_text())["records"]}
    docs = read_shards(out, "extract")
    origin = {d["id"]: truth[d["warc_record_id"]]["origin"] for d in docs}
    kind = {d["id"]: truth[d["warc_record_id"]]["kind"] for d in docs}
    kept = {d["id"]: d["dup_cluster"] for d in read_shards(out, "dedup")}
    removed = {r["id"]: r["detail"] for r in read_shards(out, "dedup", "rejects")}
    assert set(kept) | set(removed) == set(origin) and not set(kept) & set(removed)
    origins_of = collections.defaultdict(set)
    for i, c in {**kept, **removed}.items():
        origins_of[c].add(origin[i])
    mixed = [c for c, o in origins_of.items() if len(o) > 1]
    kept_per_origin = collections.Counter(origin[i] for i in kept)
    found, total = collections.Counter(), collections.Counter()
    for i, k in kind.items():
        total[k] += 1
        found[k] += i in removed or kept_per_origin[origin[i]] == 1
    return found, total, mixed, kept, removed


@pytest.fixture(scope="module")
def crawl_dedup(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("dedup") / "out"
    res = run_stages(ray_address, DATA / "crawl", out, order=ORDER)
    return out, res


def _jaccard(a: str, b: str, mode: int, n: int = 5) -> float:
    sa = set(shingle_strings(tokens(normalise(a, mode), mode), n))
    sb = set(shingle_strings(tokens(normalise(b, mode), mode), n))
    return len(sa & sb) / len(sa | sb)


def test_crawl_duplicates_found_with_full_precision(crawl_dedup):
    out, _ = crawl_dedup
    found, total, mixed, kept, removed = _evaluate(out, DATA / "crawl" / "truth.json")
    recall = {k: found[k] / total[k] for k in total}
    print(f"\nrecall by kind {recall}; clusters mixing two source pages: {len(mixed)}")
    assert recall["exact"] == 1.0 and recall["near"] >= 0.95
    assert not mixed
    # brute-force Jaccard on the same shingles for every removed document and its survivor
    text = {d["id"]: d["text"] for d in read_shards(out, "extract")}
    sims = [_jaccard(text[i], text[s], WORD) for i, s in removed.items()]
    print(f"Jaccard of removed pairs: min {min(sims):.3f}, median {np.median(sims):.3f}")
    assert np.mean(np.array(sims) >= 0.5) >= 0.95


def test_reasons_and_cluster_columns(crawl_dedup):
    out, _ = crawl_dedup
    rejects = read_shards(out, "dedup", "rejects")
    assert {r["reason"] for r in rejects} == {"exact_duplicate", "near_duplicate"}
    kept = {d["id"]: d for d in read_shards(out, "dedup")}
    sizes = collections.Counter(r["detail"] for r in rejects)
    for survivor, n in sizes.items():
        assert kept[survivor]["dup_cluster"] == survivor and kept[survivor]["dup_count"] == n + 1
    rows, up = read_rows(out, "dedup"), read_rows(out, "extract")
    for key, row in rows.items():
        assert row.docs_in == up[key].docs == row.docs + row.rejected
        assert row.stats_dict["bands"] * row.stats_dict["rows"] <= 128


def test_newest_dump_policy_keeps_the_latest_capture(crawl_dedup):
    out, _ = crawl_dedup
    docs = {d["id"]: d for d in read_shards(out, "extract")}
    for r in read_shards(out, "dedup", "rejects"):
        assert docs[r["detail"]]["dump"] >= docs[r["id"]]["dump"]


def test_curve_is_non_decreasing_and_ends_at_the_overall_rate(crawl_dedup):
    out, _ = crawl_dedup
    from curate.manifests.views import connect
    con = connect(out)
    curve = con.execute("SELECT dumps_used, docs, removed, rate FROM dedup_curve ORDER BY dumps_used").fetchall()
    assert [c[0] for c in curve] == [1, 2, 3]
    rates = [c[3] for c in curve]
    assert rates == sorted(rates)
    rows = read_rows(out, "dedup").values()
    overall = sum(r.rejected for r in rows) / sum(r.docs_in for r in rows)
    assert curve[-1][3] == pytest.approx(overall) and curve[-1][1] == sum(r.docs_in for r in rows)


def test_rerun_is_a_noop(ray_address, crawl_dedup):
    out, _ = crawl_dedup
    again = run_stages(ray_address, DATA / "crawl", out, order=ORDER)
    assert [s.ran for s in again.stages] == [0, 0]


def test_signatures_equal_datasketch_on_real_documents():
    from datasketch import MinHash
    en = [d["text"] for d in _gold_articles()[:20]]
    with gzip.open(DATA / "zh-text" / "people-daily-199801.jsonl.gz", "rt") as fh:
        zh = [json.loads(line)["text"] for _, line in zip(range(20), fh)]
    for texts, mode in ((en, WORD), (zh, CHAR)):
        norm = [normalise(t, mode) for t in texts]
        for n, perms, seed in ((5, 128, 1), (3, 64, 42)):
            ours = signatures_from_normalised(norm, [mode] * len(norm), n, perms, seed)
            for row, t in zip(ours, norm):
                m = MinHash(num_perm=perms, seed=seed, hashfunc=shingle_hash)
                m.update_batch(shingle_bytes(tokens(t, mode), n))
                assert np.array_equal(m.hashvalues, row)


def _gold_articles():
    truth = json.loads((DATA / "ground-truth.json").read_text())
    return [{"text": v["articleBody"]} for v in truth.values()]


def test_traditional_and_simplified_versions_are_near_duplicates():
    import opencc
    from datasketch import MinHash
    with gzip.open(DATA / "zh-text" / "people-daily-199801.jsonl.gz", "rt") as fh:
        texts = [json.loads(line)["text"] for _, line in zip(range(10), fh)]
    s2t = opencc.OpenCC("s2t")
    for t in texts:
        trad = s2t.convert(t)
        assert trad != t
        assert mode_for(trad) == CHAR
        assert normalise(trad, CHAR) == normalise(t, CHAR) or _jaccard(t, trad, CHAR) >= 0.9
        sig = signatures_from_normalised([normalise(t, CHAR), normalise(trad, CHAR)], [CHAR, CHAR], 5, 128, 1)
        a, b = (MinHash(num_perm=128, seed=1, hashvalues=s, scheme="affine32") for s in sig)
        assert a.jaccard(b) >= 0.9


def test_chinese_crawl_with_traditional_recrawls(ray_address, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, DATA / "crawl-zh", out, order=ORDER)
    found, total, mixed, _, _ = _evaluate(out, DATA / "crawl-zh" / "truth.json")
    recall = {k: found[k] / total[k] for k in total}
    print(f"\nChinese crawl recall by kind {recall}; mixed clusters {len(mixed)}")
    assert recall["exact"] == 1.0 and recall["near"] >= 0.95 and recall["hant"] >= 0.95
    assert not mixed


def test_incremental_dump_by_dump_equals_global_oldest_first(ray_address, tmp_path):
    dumps = sorted(p.name for p in (DATA / "crawl").iterdir() if p.is_dir())
    inp = tmp_path / "in"
    inp.mkdir()
    out = tmp_path / "incr"
    logs = []
    for d in dumps:
        shutil.copytree(DATA / "crawl" / d, inp / d)
        from curate.pipeline.config import config_from_dict
        from curate.pipeline.runner import Runner
        cfg = config_from_dict({"input": str(inp), "output": str(out), "order": ORDER,
                                "dedup": {"scope": "incremental", "survivor": "oldest_dump"}})
        Runner(cfg, address=ray_address, log=logs.append).run()
    assert any("signatures: 2 shards computed, 2 reused" in m for m in logs)
    glob_out = tmp_path / "global"
    run_stages(ray_address, DATA / "crawl", glob_out, order=ORDER, dedup={"survivor": "oldest_dump"})
    incr = {d["id"] for d in read_shards(out, "dedup")}
    glob = {d["id"] for d in read_shards(glob_out, "dedup")}
    assert incr == glob


def test_per_dump_scope_never_crosses_dumps(ray_address, crawl_dedup, tmp_path):
    out = tmp_path / "out"
    run_stages(ray_address, DATA / "crawl", out, order=ORDER, dedup={"scope": "per_dump"})
    docs = {d["id"]: d for d in read_shards(out, "extract")}
    rejects = read_shards(out, "dedup", "rejects")
    assert all(docs[r["detail"]]["dump"] == docs[r["id"]]["dump"] for r in rejects)
    assert len(rejects) < len(read_shards(crawl_dedup[0], "dedup", "rejects"))


def _decisions(out):
    import json

    import pyarrow.parquet as pq
    parts = json.loads((out / "_work" / "dedup" / "decisions.json").read_text())["parts"]
    rows = [r for _, _, p in parts for r in pq.read_table(out / p).to_pylist()]
    return sorted(rows, key=lambda r: (r["unit"], r["doc"]))


def test_out_of_core_components_and_many_bucket_tasks_decide_the_same(ray_address, crawl_dedup, tmp_path):
    out = tmp_path / "out"
    logs = []
    run_stages(ray_address, DATA / "crawl", out, order=ORDER, log=logs.append,
               dedup={"components": "disk", "components_memory": "64MB", "bucket_rows": 500,
                      "component_tasks": 3})
    assert any("components (disk" in m and "3 task(s)" in m for m in logs), logs
    n_tasks = [m for m in logs if "[dedup] buckets:" in m][0]
    assert int(n_tasks.split(" in ")[1].split(" tasks")[0]) >= 10, n_tasks
    assert _decisions(out) == _decisions(crawl_dedup[0])
    assert read_shards(out, "dedup", "rejects") == read_shards(crawl_dedup[0], "dedup", "rejects")


@pytest.mark.parametrize("shape", ["path", "random", "stars"])
def test_out_of_core_components_equal_union_find(tmp_path, shape):
    """Large-star/small-star in DuckDB (spilling) against the in-memory union-find,
    including a long path, the slowest shape for label propagation."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.stages.dedup.components import labels_in_memory, labels_out_of_core
    rng = np.random.default_rng(7)
    n = 30_000
    ids = rng.choice(np.iinfo(np.int64).max, size=n, replace=False) - np.iinfo(np.int64).max // 2
    if shape == "path":
        order = rng.permutation(n)
        a, b = ids[order[:-1]], ids[order[1:]]
    elif shape == "random":
        a, b = ids[rng.integers(0, n, n // 2)], ids[rng.integers(0, n, n // 2)]
    else:
        centre = rng.integers(0, 300, n)
        a, b = ids[centre], ids[np.arange(n)]
    m = a != b
    pq.write_table(pa.table({"a": np.minimum(a, b)[m], "b": np.maximum(a, b)[m]}), tmp_path / "e.parquet")
    edges = f"read_parquet('{tmp_path / 'e.parquet'}')"
    labels = {}
    for name, fn in (("memory", labels_in_memory), ("disk", labels_out_of_core)):
        con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
        con.execute("SET memory_limit = '64MB'")
        con.execute(f"SET temp_directory = '{tmp_path / 'spill'}'")
        fn(con, edges)
        labels[name] = dict(con.execute("SELECT node, root FROM labels").fetchall())
        con.close()
    assert labels["memory"] == labels["disk"]
    nodes = set(np.concatenate([a[m], b[m]]).tolist())
    assert set(labels["disk"]) == nodes
    assert all(r <= n_ for n_, r in labels["disk"].items())      # root = smallest key of its cluster


def test_dedup_curve_counts_with_giant_clusters_done_out_of_core(tmp_path):
    """The curve's per-cluster union-find, streamed in batches and, for clusters bigger
    than a batch, dump by dump inside DuckDB, against plain union-find per prefix of dumps."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.stages.dedup.components import labels_in_memory
    from curate.stages.dedup.survivors import removed_by_dump
    rng = np.random.default_rng(3)
    n, n_dumps = 3000, 4
    rank = rng.integers(0, n_dumps, n)
    a, b = rng.integers(0, n, 2600), rng.integers(0, n, 2600)        # one giant cluster and small ones
    m = a != b
    a, b = np.minimum(a, b)[m], np.maximum(a, b)[m]
    pq.write_table(pa.table({"a": a, "b": b}), tmp_path / "e.parquet")
    edges = f"read_parquet('{tmp_path / 'e.parquet'}')"

    def brute(k):
        parent = list(range(n))

        def find(x):
            while parent[x] != x:
                x = parent[x]
            return x
        joined = 0
        for x, y in zip(a, b):
            if max(rank[x], rank[y]) <= k and find(x) != find(y):
                parent[max(find(x), find(y))] = min(find(x), find(y))
                joined += 1
        return joined
    expected = [brute(k) for k in range(n_dumps)]
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    labels_in_memory(con, edges)
    con.register("ranks", pa.table({"doc": np.arange(n), "rank": rank}))
    con.execute("CREATE TABLE members AS SELECT l.root, r.doc, r.rank FROM labels l JOIN ranks r ON r.doc = l.node")
    sizes = sorted(c for (c,) in con.execute("SELECT count(*) FROM members GROUP BY root").fetchall())
    assert sizes[-1] > 1000 and len(sizes) > 10
    for batch in (1_000_000, 50):
        con.execute(f"""CREATE OR REPLACE TABLE curve_edges AS
            SELECT ma.root, e.a, e.b, greatest(ma.rank, mb.rank) AS step
            FROM {edges} e JOIN members ma ON ma.doc = e.a JOIN members mb ON mb.doc = e.b""")
        assert removed_by_dump(con, n_dumps, batch=batch).tolist() == expected


def test_texts_with_nothing_to_shingle_join_no_bucket(tmp_path):
    """Symbol-only pages normalise to nothing; they must not all become one cluster."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.pipeline.stage import InputRef, Unit
    from curate.stages.dedup import DedupSettings
    from curate.stages.dedup.signatures import band_path, compute_signatures, doc_keys
    texts = ["★★★ ☆☆ ---", "→ → → ✓", "the cat sat on the mat today", "the cat sat on the mat today"]
    ids = [f"d{i}" for i in range(len(texts))]
    pq.write_table(pa.table({"id": ids, "dump": ["D"] * 4, "text": texts, "n_chars": [len(t) for t in texts],
                             "lang": ["en"] * 4}), tmp_path / "in.parquet")
    unit = Unit("dedup", "s0", "D", [InputRef("in.parquet", "fp")], out_path="dedup/s0.parquet",
                rejects_path="rejects/dedup/s0.parquet")
    compute_signatures(str(tmp_path), unit, DedupSettings())
    docs = set(pq.read_table(band_path(tmp_path, "s0")).column("doc").to_pylist())
    assert docs == set(doc_keys("s0", 4)[2:].tolist())


def test_one_warc_file_given_twice_keeps_one_copy_of_each_record(ray_address, tmp_path):
    src = sorted((DATA / "crawl" / "CC-MAIN-2024-10").glob("*.warc.gz"))[0]
    for dump in ("CC-MAIN-2024-10", "CC-MAIN-2024-18"):
        (tmp_path / "in" / dump).mkdir(parents=True)
        shutil.copy(src, tmp_path / "in" / dump / src.name)
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=ORDER)
    extracted = read_shards(out, "extract")
    kept = read_shards(out, "dedup")
    ids = [d["id"] for d in kept]
    records = [d["warc_record_id"] for d in kept]
    assert len(ids) == len(set(ids))                 # each copy has its own id (issue 9)
    assert len(records) == len(set(records)) == len({d["warc_record_id"] for d in extracted})
    assert {d["dump"] for d in kept} == {"CC-MAIN-2024-18"}           # newest_dump keeps the later copy
    assert len(read_shards(out, "dedup", "rejects")) == len(extracted) - len(kept)


def test_traditional_simplified_pairs_shingle_alike():
    """Issue 14: shingling by script (not by predicted language), tw2s plus variants."""
    import opencc
    import re
    import unicodedata
    pairs = [json.loads(line) for line in (DATA / "zh-hant-hans" / "ud-gsd-dev.jsonl").open(encoding="utf-8")]
    assert all(mode_for(p["hant"]) == mode_for(p["hans"]) for p in pairs)

    def jaccard(a, b, n=5):
        sa, sb = set(shingle_strings(tokens(a, CHAR), n)), set(shingle_strings(tokens(b, CHAR), n))
        return len(sa & sb) / max(1, len(sa | sb))
    t2s = opencc.OpenCC("t2s")
    plain = lambda t: re.sub(r"[\W_]+", "", t2s.convert(unicodedata.normalize("NFKC", t)))
    before = sum(jaccard(plain(p["hant"]), plain(p["hans"])) == 1 for p in pairs)
    after = sum(jaccard(normalise(p["hant"], CHAR), normalise(p["hans"], CHAR)) == 1 for p in pairs)
    print(f"identical after normalisation: t2s {before}, now {after} of {len(pairs)}")
    assert after >= 0.99 * len(pairs) and after > before
    # the conversion gaps the issue names
    assert normalise("他看著我，牠跑了", CHAR) == normalise("他看着我，它跑了", CHAR)
