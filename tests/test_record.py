"""The record at scale: manifest rows compacted into a few files per stage, read without a
row lost or seen twice, during a run, after a killed run, and by plain DuckDB."""
from __future__ import annotations

import os
import threading

import duckdb
import pyarrow.parquet as pq
import pytest

from curate.manifests.manifest import (DONE, FAILED, ManifestRow, compact, manifest_dir, read_rows, read_table,
                                       stage_files, write_row)

README_QUERY = """SELECT * EXCLUDE (filename) FROM read_parquet('{out}/manifests/*/*.parquet', filename = true)
    QUALIFY row_number() OVER (PARTITION BY stage, unit
                               ORDER BY contains(filename, '/_rows-'), filename DESC) = 1"""


def _row(i: int, version: int = 1, stage: str = "extract") -> ManifestRow:
    return ManifestRow(stage=stage, unit=f"dump/u{i:05d}", fingerprint=f"fp{version}", status=DONE,
                       path=f"{stage}/dump/u{i:05d}.parquet", docs=version, docs_in=version)


def _versions(out, stage="extract") -> dict[str, int]:
    return {u: r.docs for u, r in read_rows(out, stage).items()}


def test_compaction_keeps_every_units_newest_row(tmp_path):
    out = tmp_path / "out"
    for i in range(50):
        write_row(out, _row(i))
    compact(out, "extract", units=[f"dump/u{i:05d}" for i in range(20)])      # as a stage runs
    files = stage_files(out, "extract")
    assert len(files.compacted) == 1 and len(files.parts) == 30
    write_row(out, _row(3, version=2))          # a rerun of a merged unit: its new part is newer
    assert _versions(out) == {f"dump/u{i:05d}": 2 if i == 3 else 1 for i in range(50)}
    compact(out, "extract")                     # the stage's end: one file
    files = stage_files(out, "extract")
    assert len(files.compacted) == 1 and not files.parts
    assert _versions(out)["dump/u00003"] == 2 and len(_versions(out)) == 50
    assert compact(out, "extract") == 0         # nothing to merge: the file is left as it is
    # plain DuckDB, as the README says, sees the same rows
    rows = duckdb.sql(README_QUERY.format(out=out)).fetchall()
    assert len(rows) == 50
    write_row(out, _row(7, version=3))
    got = dict(duckdb.sql(f"SELECT unit, docs FROM ({README_QUERY.format(out=out)})").fetchall())
    assert got == _versions(out) and got["dump/u00007"] == 3


def test_compaction_drops_removed_units(tmp_path):
    out = tmp_path / "out"
    for i in range(10):
        write_row(out, _row(i))
    compact(out, "extract")
    write_row(out, _row(4, version=2))                  # a loose part of a unit that goes too
    compact(out, "extract", drop={"dump/u00002", "dump/u00004"})
    assert sorted(_versions(out)) == [f"dump/u{i:05d}" for i in range(10) if i not in (2, 4)]
    assert not stage_files(out, "extract").parts


def test_leftovers_of_a_killed_compaction_are_read_once(tmp_path):
    """A compaction killed after writing its file but before deleting what it merged leaves
    the same rows twice on disk (an older compacted file, loose parts): read once each."""
    out = tmp_path / "out"
    for i in range(30):
        write_row(out, _row(i))
    folder = manifest_dir(out, "extract")
    compact(out, "extract", units=[f"dump/u{i:05d}" for i in range(10)])
    first = stage_files(out, "extract").compacted[0][1]
    saved_first = first.read_bytes()
    parts = {p.name: p.read_bytes() for p in folder.glob("dump__*.parquet")}
    compact(out, "extract")
    # put back what the killed compaction had not deleted yet
    first.write_bytes(saved_first)
    for name, data in parts.items():
        (folder / name).write_bytes(data)
    write_row(out, _row(5, version=4))
    table = read_table(out, "extract")
    assert table.num_rows == 30 and len(set(table.column("unit").to_pylist())) == 30
    assert _versions(out)["dump/u00005"] == 4
    compact(out, "extract")
    assert len(stage_files(out, "extract").compacted) == 1 and _versions(out)["dump/u00005"] == 4


def test_a_reader_during_compaction_never_misses_a_row_nor_sees_one_twice(tmp_path):
    out = tmp_path / "out"
    n = 400
    for i in range(n):
        write_row(out, _row(i))
    stop = threading.Event()
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def reader():
        try:
            while not stop.is_set():
                units = read_table(out, "extract", warn=lambda m: errors.append(AssertionError(m))).column("unit")
                seen.append((len(units), len(set(units.to_pylist()))))
        except BaseException as exc:        # noqa: BLE001 (reported below)
            errors.append(exc)
    t = threading.Thread(target=reader)
    t.start()
    for start in range(0, n, 25):           # as a long stage merges its finished units
        compact(out, "extract", units=[f"dump/u{i:05d}" for i in range(start, start + 25)])
    compact(out, "extract")
    stop.set()
    t.join()
    assert not errors, errors
    assert seen and all(rows == n and unique == n for rows, unique in seen), seen[:5]


def test_a_corrupt_compacted_file_is_moved_aside_and_named(tmp_path):
    out = tmp_path / "out"
    for i in range(5):
        write_row(out, _row(i))
    compact(out, "extract")
    write_row(out, _row(9, version=1))
    path = stage_files(out, "extract").compacted[0][1]
    path.write_bytes(os.urandom(2000))
    warned = []
    rows = read_rows(out, "extract", warn=warned.append)
    assert list(rows) == ["dump/u00009"]                  # the merged units count as missing: redone
    assert path.name in warned[0] and not path.exists()
    assert list((manifest_dir(out, "extract") / ".corrupt").iterdir())


def test_a_run_leaves_one_manifest_file_per_stage(ray_address, demo_corpus, tmp_path):
    from conftest import run_stages
    out = tmp_path / "out"
    run_stages(ray_address, demo_corpus, out, stages=["extract", "langid"])
    for stage in ("extract", "langid"):
        files = stage_files(out, stage)
        assert len(files.compacted) == 1 and not files.parts, (stage, files)
        units = pq.read_metadata(files.compacted[0][1]).num_rows
        assert units == len(read_rows(out, stage)) > 1
    # a unit whose shard is gone is redone; its new row replaces the old in the one file
    row = next(iter(read_rows(out, "langid").values()))
    (out / row.path).unlink()
    res = run_stages(ray_address, demo_corpus, out, stages=["extract", "langid"])
    langid = next(s for s in res.stages if s.stage == "langid")
    assert langid.ran == 1 and not res.failed
    files = stage_files(out, "langid")
    assert len(files.compacted) == 1 and not files.parts
    assert read_rows(out, "langid")[row.unit].finished_at > row.finished_at
    assert all(r.status != FAILED for r in read_rows(out, "langid").values())


@pytest.mark.parametrize("sql, expect", [
    ("SELECT count(*) FROM shards", {"shards"}),
    ("select * from DOCS_extract join rejects using (id)", {"docs_extract", "rejects"}),
    ("SELECT * FROM token_budget", {"token_budget", "docs_tokenize", "shards"}),
    ("SHOW TABLES", None),
])
def test_a_query_opens_only_the_views_it_names(sql, expect):
    from curate.manifests.views import views_named
    assert views_named(sql) == expect


def _status_fixture(out):
    """Seven extract units in every state status tells apart, recorded as a run leaves them."""
    from curate.manifests.manifest import PARTIAL
    from curate.pipeline.stage import InputRef, Unit
    units = []
    for i in range(7):
        row = _row(i)
        row.rejects_path = f"rejects/extract/dump/u{i:05d}.parquet"
        if i == 3:
            row.status, row.error = FAILED, "ValueError: bad input"
        if i == 4:
            row.status, row.error = PARTIAL, "extract:truncated_record"
        if i == 6:
            row.fingerprint, row.error = "old", "verify: extract/dump/u00006.parquet is missing"
        if i != 5:
            write_row(out, row)
        for rel in (row.path, row.rejects_path):
            if i != 1 and row.status != FAILED:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                (out / rel).write_bytes(b"x" * 10)
        units.append(Unit("extract", row.unit, "dump", [InputRef(f"in/{i}", "f")], row.path, row.rejects_path,
                          fingerprint="fp2" if i == 2 else "fp1"))
    return units


def test_status_compares_the_plan_with_the_record_as_columns(tmp_path):
    from curate.pipeline.report import status_table
    from curate.pipeline.stage import PlannedUnits
    out = tmp_path / "out"
    units = _status_fixture(out)
    table = status_table(out, {"extract": units})
    line = next(l for l in table.splitlines() if l.startswith("extract"))
    # units done partial failed stale missing: u0 done; u1 (shard gone), u2 (new fingerprint),
    # u6 (failed a check) stale; u3 failed; u4 partial; u5 never recorded
    assert line.split()[1:7] == ["7", "1", "1", "1", "3", "1"], table
    assert "extract dump/u00001 damaged: extract/dump/u00001.parquet is missing" in table
    assert "extract dump/u00003 failed: ValueError: bad input" in table
    assert "extract dump/u00004 partial: extract:truncated_record" in table
    assert "extract dump/u00006 damaged: extract/dump/u00006.parquet is missing" in table
    assert "u00002" not in table and "u00005" not in table
    # the same plan held as columns (no Unit made) gives the same table
    planned = PlannedUnits([u.key for u in units], [u.fingerprint for u in units], lambda: units)
    assert status_table(out, {"extract": planned}) == table
    assert planned._units is None
