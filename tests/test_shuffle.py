"""The shuffle under dedup and remix (sorted runs merged in levels) and the clustering
over ranges of document keys, against plain sorting and the in-memory union-find."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.pipeline import shuffle
from curate.stages.dedup.components import clusters
from curate.stages.dedup.labels import cluster_labels
from curate.stages.dedup.signatures import WORK


def serial_map(fn, args):
    return [fn(*a) for a in args]


def test_merged_runs_hold_every_row_sorted_and_ranges_read_only_their_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(shuffle, "ROW_GROUP_ROWS", 50)        # many row groups, ties across their edges
    rng = np.random.default_rng(1)
    files, everything = [], []
    for i in range(70):
        k = np.sort(rng.integers(0, 500, rng.integers(0, 300)))     # many equal keys; some files empty
        t = pa.table({"k": k, "src": np.full(len(k), i), "pos": np.arange(len(k))})
        pq.write_table(t, tmp_path / f"in-{i:03d}.parquet", row_group_size=37)
        files.append(f"in-{i:03d}.parquet")
        everything.append(t)
    stats = {}
    runs = shuffle.sorted_runs(serial_map, str(tmp_path), files, "k", "runs", fan_in=4, stats=stats)
    assert len(runs) <= 4 and stats["levels"] == 3
    # opens: every file once per level, never files x ranges
    assert stats["opens"] == 70 + 18 + 5
    whole = pa.concat_tables(everything)
    expected = sorted(zip(*(whole.column(c).to_pylist() for c in ("k", "src", "pos"))))
    got = []
    for r in runs:
        t = pq.read_table(tmp_path / r)
        assert t.column("k").to_pylist() == sorted(t.column("k").to_pylist())
        got += list(zip(*(t.column(c).to_pylist() for c in ("k", "src", "pos"))))
    assert sorted(got) == expected
    # the same inputs merge to the same bytes: equal keys come out in one order every time
    first = [pq.read_table(tmp_path / r) for r in runs]
    again = shuffle.sorted_runs(serial_map, str(tmp_path), files, "k", "runs2", fan_in=4)
    assert all(a.equals(pq.read_table(tmp_path / b)) for a, b in zip(first, again))
    for lo, hi in [(0, 0), (10, 99), (250, 260), (499, 10_000)]:
        t = shuffle.read_range(str(tmp_path), runs, "k", lo, hi)
        rows = sorted(zip(*(t.column(c).to_pylist() for c in ("k", "src", "pos")))) if t is not None else []
        assert rows == [e for e in expected if lo <= e[0] <= hi]


def test_runs_written_in_chunks_read_the_same_and_open_only_the_chunks_a_range_meets(tmp_path, monkeypatch):
    monkeypatch.setattr(shuffle, "ROW_GROUP_ROWS", 50)
    rng = np.random.default_rng(2)
    files, everything = [], []
    for i in range(40):
        k = np.sort(rng.integers(0, 1000, rng.integers(0, 200)))
        t = pa.table({"k": k, "src": np.full(len(k), i), "pos": np.arange(len(k))})
        pq.write_table(t, tmp_path / f"in-{i:03d}.parquet")
        files.append(f"in-{i:03d}.parquet")
        everything.append(t)
    whole = pa.concat_tables(everything)
    expected = sorted(zip(*(whole.column(c).to_pylist() for c in ("k", "src", "pos"))))
    plain = shuffle.sorted_runs(serial_map, str(tmp_path), files, "k", "plain", fan_in=4)
    chunked = shuffle.sorted_runs(serial_map, str(tmp_path), files, "k", "chunked", fan_in=4, chunk_bytes=2000)
    assert all(isinstance(c, list) for c in chunked) and len(chunked) > 3 * len(plain)
    for name, lo, hi in chunked:            # each chunk sorted, its range what it holds
        k = pq.read_table(tmp_path / name).column("k").to_pylist()
        assert k == sorted(k) and (k[0], k[-1]) == (lo, hi)
    for lo, hi in [(0, 0), (10, 99), (500, 510), (990, 10_000)]:
        for runs in (plain, chunked):
            t = shuffle.read_range(str(tmp_path), runs, "k", lo, hi)
            rows = sorted(zip(*(t.column(c).to_pylist() for c in ("k", "src", "pos")))) if t is not None else []
            assert rows == [e for e in expected if lo <= e[0] <= hi]
        assert len(shuffle.overlapping(chunked, lo, hi)) < len(chunked) // 2
    # inputs of one row group each: the merge yields all their rows at once, still chunked
    one = shuffle.sorted_runs(serial_map, str(tmp_path), files[:8], "k", "one", fan_in=8, presorted=False,
                              chunk_bytes=2000)
    assert len(one) > 3 and all(isinstance(c, list) for c in one)
    assert sum(pq.read_metadata(tmp_path / c[0]).num_rows for c in one) == sum(t.num_rows for t in everything[:8])
    # no row at all: one empty chunk that keeps the schema
    empty = pa.table({"k": pa.array([], pa.int64())})
    for i in range(3):
        pq.write_table(empty, tmp_path / f"e{i}.parquet")
    runs = shuffle.sorted_runs(serial_map, str(tmp_path), [f"e{i}.parquet" for i in range(3)], "k", "none",
                               fan_in=2, chunk_bytes=2000)
    assert len(runs) == 2 and all(isinstance(r, str) for r in runs)
    assert pq.read_schema(tmp_path / runs[0]).names == ["k"]


@pytest.mark.parametrize("shape", ["path", "random", "stars"])
@pytest.mark.parametrize("tasks", [1, 3, 8])
def test_clustering_over_ranges_equals_union_find(tmp_path, shape, tasks):
    rng = np.random.default_rng(7)
    n = 4000
    ids = rng.choice(np.iinfo(np.int64).max, size=n, replace=False) - np.iinfo(np.int64).max // 2
    if shape == "path":
        order = rng.permutation(n)
        a, b = ids[order[:-1]], ids[order[1:]]
    elif shape == "random":
        a, b = ids[rng.integers(0, n, n // 2)], ids[rng.integers(0, n, n // 2)]
    else:
        centre = rng.integers(0, 30, n)
        a, b = ids[centre], ids[np.arange(n)]
    m = a != b
    x, y = np.maximum(a, b)[m], np.minimum(a, b)[m]
    t = pa.table({"x": x, "y": y})
    (tmp_path / WORK).mkdir(parents=True)
    pq.write_table(t.sort_by("x"), tmp_path / "ex.parquet", row_group_size=500)
    pq.write_table(t.sort_by("y"), tmp_path / "ey.parquet", row_group_size=500)
    cx, cy, rounds = cluster_labels(serial_map, str(tmp_path), ["ex.parquet"], ["ey.parquet"], tasks,
                                    in_memory=False, stats={})
    forest = pa.concat_tables([pq.read_table(tmp_path / p) for p in cx])
    got = dict(zip(forest.column("x").to_pylist(), forest.column("y").to_pylist()))
    roots = {r for p in cy for r in pq.read_table(tmp_path / p).column("y").to_pylist()}
    got.update({r: r for r in roots})
    nodes, parent = clusters(y, x)
    assert got == dict(zip(nodes.tolist(), nodes[parent].tolist()))
    assert rounds > 1


def test_range_files_split_runs_into_one_sorted_file_per_key_range(tmp_path):
    """dedup's decisions: an apply unit opens the one file of its unit-id range, not every run."""
    rng = np.random.default_rng(3)
    runs, everything = [], []
    for i in range(5):
        k = np.sort(rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, 400))  # unit ids: hashes
        t = pa.table({"k": k, "src": np.full(len(k), i)})
        pq.write_table(t, tmp_path / f"run-{i}.parquet", row_group_size=64)
        runs.append(f"run-{i}.parquet")
        everything.append(t)
    stats = {}
    parts = shuffle.range_files(serial_map, str(tmp_path), runs, "k", 7, "parts", stats=stats)
    assert len(parts) == 7 and stats["opens"] == 7 * 5 and stats["writes"] == 7
    got = []
    for lo, hi, path in parts:
        t = pq.read_table(tmp_path / path)
        keys = t.column("k").to_pylist()
        assert keys == sorted(keys) and all(lo <= k <= hi for k in keys)
        got += list(zip(keys, t.column("src").to_pylist()))
    whole = pa.concat_tables(everything)
    assert sorted(got) == sorted(zip(whole.column("k").to_pylist(), whole.column("src").to_pylist()))
    # ranges tile the key space: every key has exactly one file
    assert all(a[1] + 1 == b[0] for a, b in zip(parts, parts[1:]))
