"""What a careless or hostile user breaks (issue 22): hidden files, queries that write,
an output reused for another input, damage that must degrade, huge documents."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import curate_cmd, read_shards, run_stages


def _jsonl(path, docs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))


def _texts(prefix: str, n: int):
    return [{"id": f"{prefix}{i}", "text": f"Document {prefix} number {i} " + "with some words " * 20}
            for i in range(n)]


def test_hidden_files_are_read_and_hidden_folders_listed(ray_address, tmp_path):
    # ..hidden.jsonl was read by no unit and listed nowhere: 25 of 150 documents gone
    crawl = tmp_path / "crawl"
    _jsonl(crawl / "d1" / "a.jsonl", _texts("a", 125))
    _jsonl(crawl / "d1" / "..hidden.jsonl", _texts("h", 25))
    _jsonl(crawl / ".cache" / "x.jsonl", _texts("c", 3))
    res = run_stages(ray_address, crawl, tmp_path / "out", order=["extract"])
    docs = read_shards(tmp_path / "out", "extract")
    assert len(docs) == 150 and sum(d["warc_record_id"].startswith("h") for d in docs) == 25
    assert res.unread == [".cache/"]
    status = subprocess.run(curate_cmd() + ["status", "--output", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert "not read: 1 (1 folder" in status.stdout and ".cache/" in status.stdout, status.stdout


def test_queries_read_only_and_only_the_output(demo_run, tmp_path):
    import shutil
    import curate
    from curate.manifests.views import QueryRefused
    out = tmp_path / "out"
    shutil.copytree(demo_run[0], out)
    shard = sorted((out / "extract").glob("*/*.parquet"))[0]
    before = shard.read_bytes()

    def query(sql, *extra):
        return subprocess.run(curate_cmd() + ["query", sql, "--output", str(out), *extra],
                              capture_output=True, text=True)
    for sql in (f"COPY (SELECT 1) TO '{shard}' (FORMAT parquet)", "COPY (SELECT 1) TO 's3://bucket/x.parquet'",
                f"ATTACH '{out}/x.duckdb'", "INSTALL httpfs", "LOAD httpfs", "CREATE TABLE t AS SELECT 1",
                "SET enable_external_access = true", "SELECT 1; COPY (SELECT 1) TO 'x.csv'",
                f"EXPORT DATABASE '{out}/exported'"):
        res = query(sql)
        assert res.returncode == 2 and "refused" in res.stderr and "--allow-write" in res.stderr, (sql, res.stderr)
    res = query("SELECT * FROM read_text('/etc/hostname')")
    assert res.returncode == 2 and "Permission" in res.stderr, res.stderr
    assert shard.read_bytes() == before and not (out / "x.duckdb").exists() and not (out / "exported").exists()
    ok = query(f"SELECT count(*) FROM docs_extract UNION ALL SELECT count(*) FROM read_parquet('{shard}')",
               "--format", "csv")
    assert ok.returncode == 0, ok.stderr
    # lifted on request
    written = tmp_path / "copy.csv"
    assert query(f"COPY (SELECT 1 AS one) TO '{written}'", "--allow-write").returncode == 0 and written.exists()
    # the API, the same way
    with pytest.raises(QueryRefused):
        curate.open(out).query(f"COPY (SELECT 1) TO '{shard}'")
    assert curate.open(out).query("SELECT count(*) FROM shards").fetchall()[0][0] > 0
    curate.open(out, allow_write=True).query(f"COPY (SELECT 2 AS two) TO '{written}'")
    assert shard.read_bytes() == before


def _tree(folder):
    import hashlib
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".curate.lock"}


def test_an_output_belongs_to_its_input(ray_address, tmp_path):
    # curate run --input crawl --output O; curate run --input crawl-zh --output O erased the
    # first corpus (exit 0), saying its inputs were "no longer there"
    from curate.pipeline.runner import RunError
    first, second = tmp_path / "crawl", tmp_path / "crawl-zh"
    _jsonl(first / "d1" / "a.jsonl", _texts("a", 20))
    _jsonl(first / "d1" / "b.jsonl", _texts("b", 20))
    _jsonl(second / "d1" / "a.jsonl", _texts("z", 7))
    out = tmp_path / "out"
    run_stages(ray_address, first, out, order=["extract"])
    before = _tree(out)
    with pytest.raises(RunError) as refused:
        run_stages(ray_address, second, out, order=["extract"])
    message = str(refused.value)
    assert str(first) in message and str(second) in message and "--output" in message and "--replace" in message
    assert _tree(out) == before                      # nothing deleted, nothing overwritten
    # the same input named another way is the same input
    run_stages(ray_address, tmp_path / "." / "crawl", out, order=["extract"])
    assert len(read_shards(out, "extract")) == 40
    # an input file really gone: its unit is dropped, with a true message
    (first / "d1" / "b.jsonl").unlink()
    logs = []
    run_stages(ray_address, first, out, order=["extract"], log=logs.append)
    assert any("removed outputs of d1/b: its input" in m and "is no longer there" in m for m in logs), logs
    # --replace starts the folder over
    res = subprocess.run(curate_cmd() + ["run", "--input", str(second), "--output", str(out), "--replace",
                                         "--address", ray_address, "--no-report"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(d["warc_record_id"] for d in read_shards(out, "extract")) == sorted(f"z{i}" for i in range(7))
    refused = subprocess.run(curate_cmd() + ["run", "--input", str(first), "--output", str(out), "--address",
                                             ray_address, "--no-report"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--replace" in refused.stderr, refused.stderr


def _query(out, sql, env=None):
    return subprocess.run(curate_cmd() + ["query", sql, "--output", str(out), "--format", "csv"],
                          capture_output=True, text=True, env=env)


def test_damage_degrades_queries_and_report(demo_run, tmp_path):
    import shutil
    from curate.pipeline.html_report import write_report
    out = tmp_path / "out"
    shutil.copytree(demo_run[0], out)
    shards = sorted((out / "extract").glob("*/*.parquet"))
    total = int(_query(out, "SELECT count(*) FROM docs_extract").stdout.split()[1])
    lost = len(__import__("pyarrow.parquet", fromlist=["x"]).read_table(shards[0]))
    shards[0].unlink()                                         # a deleted shard
    corrupt = bytearray(shards[1].read_bytes())
    corrupt[len(corrupt) // 2:] = bytes(len(corrupt) - len(corrupt) // 2)    # same size, broken
    shards[1].write_bytes(bytes(corrupt))
    assert subprocess.run(curate_cmd() + ["verify", "--output", str(out), "--deep"]).returncode == 1
    res = _query(out, "SELECT count(*) FROM shards")
    assert res.returncode == 0, res.stderr
    res = _query(out, "SELECT count(*) FROM docs_extract")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.count("curate: warning:") == 1 and "2 finished units are not served" in res.stderr
    second = len(__import__("pyarrow.parquet", fromlist=["x"]).read_table(demo_run[0] / shards[1].relative_to(out)))
    assert int(res.stdout.split()[1]) == total - lost - second
    html = write_report(out).read_text()
    assert "Every unit is done" not in html and "2 damaged units" in html and "is missing" in html


def test_damage_degrades_in_object_storage(demo_run, tmp_path):
    from conftest import s3_server
    out = demo_run[0]
    with s3_server("hostile-damage") as (env, client):
        for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".curate.lock"):
            client.upload_file(str(path), "hostile-damage", f"run/{path.relative_to(out)}")
        key = f"run/{sorted((out / 'extract').glob('*/*.parquet'))[0].relative_to(out)}"
        client.delete_object(Bucket="hostile-damage", Key=key)
        res = _query("s3://hostile-damage/run", "SELECT count(*) FROM shards", env=env)
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        res = _query("s3://hostile-damage/run", "SELECT count(*) FROM docs_extract", env=env)
        assert res.returncode == 0 and "1 finished units are not served" in res.stderr, res.stderr


# -- bounded documents ---------------------------------------------------------------------------

def test_every_reader_rejects_documents_over_max_doc_chars(ray_address, tmp_path):
    import gzip
    import pyarrow as pa
    import pyarrow.parquet as pq
    crawl = tmp_path / "crawl" / "d"
    long_text = "word " * 4_000                                   # 20,000 characters
    _jsonl(crawl / "a.jsonl", [{"id": "ok", "text": "short text " * 10}, {"id": "long", "text": long_text},
                               {"id": "ok2", "text": "another short one " * 5}])
    # a line far over what any text of the cap can take: read past, never parsed
    with open(crawl / "b.jsonl", "w") as fh:
        fh.write(json.dumps({"id": "huge", "text": "x" * 1_200_000}) + "\n" + json.dumps({"id": "after", "text": "fine"}) + "\n")
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["small parquet text", long_text]}), crawl / "c.parquet")
    wet = (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://a.example/\r\nWARC-Record-ID: <urn:1>\r\n"
           f"Content-Length: {len(long_text)}\r\n\r\n{long_text}\r\n\r\n"
           f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: http://b.example/\r\nWARC-Record-ID: <urn:2>\r\n"
           f"Content-Length: 9\r\n\r\nshort wet\r\n\r\n")
    with gzip.open(crawl / "d.warc.wet.gz", "wb") as fh:
        fh.write(wet.encode())
    out = tmp_path / "out"
    res = run_stages(ray_address, tmp_path / "crawl", out, order=["extract"], extract={"max_doc_chars": 10_000})
    assert not res.failed
    kept = sorted(d["warc_record_id"] or d["url"] for d in read_shards(out, "extract"))
    assert kept == sorted(["ok", "ok2", "after", "p1", "<urn:2>"]) or kept == sorted(
        ["ok", "ok2", "after", "p1", "urn:2"]), kept
    rejects = read_shards(out, "extract", "rejects")
    assert sorted(r["reason"] for r in rejects) == ["extract:too_long"] * 4, rejects
    assert any("bytes" in r["detail"] and "line 1" in r["detail"] for r in rejects)


@pytest.mark.slow
def test_a_300_mb_line_is_bounded_and_accounted_for(tmp_path):
    """The issue's case: one 300 MB `text` line took 2 GB in extract and 11 GB in quality."""
    crawl = tmp_path / "crawl" / "d"
    crawl.mkdir(parents=True)
    with open(crawl / "big.jsonl", "wb") as fh:
        fh.write(json.dumps({"id": "small", "text": "A short normal document. " * 20}).encode() + b"\n")
        fh.write(b'{"id": "huge", "text": "')
        chunk = b"lorem ipsum dolor sit amet " * 40_000
        for _ in range(300_000_000 // len(chunk)):
            fh.write(chunk)
        fh.write(b'"}\n')
        fh.write(json.dumps({"id": "tail", "text": "The document after it. " * 20}).encode() + b"\n")
    out = tmp_path / "out"
    res = subprocess.run(curate_cmd() + ["run", "--input", str(tmp_path / "crawl"), "--output", str(out),
                                         "--no-report", "--until", "quality"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    from curate.manifests.manifest import read_rows
    row = read_rows(out, "extract")["d/big"]
    assert row.docs_in == 3 and row.docs + row.rejected == 3 and row.stats_dict["reasons"] == {"extract:too_long": 1}
    peaks = [r.stats_dict["peak_rss_mb"] for st in ("extract", "quality") for r in read_rows(out, st).values()]
    print(f"\npeak RSS of the units' workers: {peaks} MB")
    assert max(peaks) < 1500
