"""Inputs beside WARC (issue 10): Common Crawl WET, JSONL (plain, gzip, zstd), Parquet, a
flat folder with --dump, and files no reader knows reported, never skipped silently."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import DATA, REPO, curate_cmd, read_shards, run_stages, s3_server
from curate.manifests.manifest import read_rows

REAL = DATA / "real-warc"


def test_wet_conversion_records_are_documents_and_agree_with_the_warc(ray_address, tmp_path):
    dump = tmp_path / "in" / "CC-MAIN-2024-22"
    dump.mkdir(parents=True)
    for name in ("CC-MAIN-2024-22-whirlwind.warc.gz", "CC-MAIN-2024-22-whirlwind.warc.wet.gz",
                 "CC-MAIN-2024-22-whirlwind.warc.wat.gz"):
        shutil.copy(REAL / name, dump / name)
    out = tmp_path / "out"
    logs = []
    res = run_stages(ray_address, tmp_path / "in", out, order=["extract"], log=logs.append)
    rows = read_rows(out, "extract")
    # same stem: both keep their full names; the WAT file is reported, not read
    assert set(rows) == {"CC-MAIN-2024-22/CC-MAIN-2024-22-whirlwind.warc.gz",
                         "CC-MAIN-2024-22/CC-MAIN-2024-22-whirlwind.warc.wet.gz"}
    assert res.unread == ["CC-MAIN-2024-22/CC-MAIN-2024-22-whirlwind.warc.wat.gz"]
    assert any("no reader" in m and "wat.gz" in m for m in logs)
    docs = read_shards(out, "extract")
    by_file = {d["warc_file"].split("/")[1]: d for d in docs}
    wet = by_file["CC-MAIN-2024-22-whirlwind.warc.wet.gz"]
    warc = by_file["CC-MAIN-2024-22-whirlwind.warc.gz"]
    assert wet["url"] == warc["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert "Escopete" in wet["text"] and wet["date"].year == 2024
    assert rows["CC-MAIN-2024-22/CC-MAIN-2024-22-whirlwind.warc.wet.gz"].status == "done"
    assert wet["id"] != warc["id"]


def test_lf_only_wet_is_read_not_reported_as_damage(ray_address, tmp_path):
    dump = tmp_path / "in" / "CC-MAIN-2019-13"
    dump.mkdir(parents=True)
    shutil.copy(REAL / "ccnet-sample-nonconformant.warc.wet", dump / "sample.warc.wet")
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=["extract"])
    row = read_rows(out, "extract")["CC-MAIN-2019-13/sample"]
    assert row.status == "done", row.error
    docs = sorted(read_shards(out, "extract"), key=lambda d: d["warc_offset"])
    assert [d["url"] for d in docs] == ["http://sample_english.com", "http://sample_chinese.zh",
                                        "http://sample_russian.ru"]
    assert docs[0]["text"].startswith("Famous Mark Twain Quotes")
    assert any("\u4e00" <= c <= "\u9fff" for c in docs[1]["text"])
    assert not any("WARC/1.0" in d["text"] for d in docs)


def _people_daily(n: int) -> list[dict]:
    with gzip.open(DATA / "zh-text" / "people-daily-199801.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for _, line in zip(range(n), fh)]


def test_jsonl_and_parquet_documents_enter_at_extract(ray_address, tmp_path):
    recs = _people_daily(30)
    dump = tmp_path / "in" / "mine"
    dump.mkdir(parents=True)
    lines = [json.dumps(r, ensure_ascii=False) for r in recs[:10]]
    lines += ["{not json", json.dumps({"id": "x1", "url": "https://e.cn/1"}), json.dumps({"id": "x2", "text": 5}),
              json.dumps({"id": "x3", "text": "   "}), json.dumps(recs[0], ensure_ascii=False)]   # a repeated id
    (dump / "plain.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gzip.open(dump / "gz.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps(r, ensure_ascii=False) for r in recs[10:20]))
    with pa.output_stream(str(dump / "zst.jsonl.zst"), compression="zstd") as fh:
        fh.write("\n".join(json.dumps(r, ensure_ascii=False) for r in recs[20:25]).encode())
    pq.write_table(pa.Table.from_pylist(recs[25:30]), dump / "table.parquet")
    (dump / "notes.txt").write_text("not an input")
    out = tmp_path / "out"
    res = run_stages(ray_address, tmp_path / "in", out, order=["extract", "langid"])
    assert not res.failed and res.unread == ["mine/notes.txt"]
    rows = read_rows(out, "extract")
    assert {k: r.status for k, r in rows.items()} == {f"mine/{s}": "done" for s in ("plain", "gz", "zst", "table")}
    docs = read_shards(out, "extract")
    rejects = read_shards(out, "extract", "rejects")
    assert len(docs) == 31 and len(rejects) == 4
    assert sorted(r["reason"] for r in rejects) == ["extract:bad_json", "extract:empty", "extract:no_text",
                                                   "extract:no_text"]
    assert len({d["id"] for d in docs} | {r["id"] for r in rejects}) == 35     # unique, repeated input id too
    assert {d["warc_record_id"] for d in docs} == {r["id"] for r in recs}
    # the JSONL documents go on through the pipeline like any other
    assert {d["lang"] for d in read_shards(out, "langid")} == {"zh"}
    # stable ids: a rerun elsewhere gives the same ones
    again = tmp_path / "again"
    run_stages(ray_address, tmp_path / "in", again, order=["extract"])
    assert sorted(d["id"] for d in read_shards(again, "extract")) == sorted(d["id"] for d in docs)


def test_custom_field_names(ray_address, tmp_path):
    dump = tmp_path / "in" / "d"
    dump.mkdir(parents=True)
    recs = [{"content": r["text"], "link": r["url"], "key": r["id"], "when": "1998-01-02"} for r in _people_daily(3)]
    (dump / "c.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in recs))
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=["extract"],
               extract={"text_field": "content", "url_field": "link", "id_field": "key", "date_field": "when"})
    docs = read_shards(out, "extract")
    assert len(docs) == 3 and {d["url"] for d in docs} == {r["link"] for r in recs}
    assert all(d["date"].year == 1998 for d in docs)


def test_web_jsonl_quirks_keep_every_document(ray_address, tmp_path):
    """Real web JSONL carries lone UTF-16 surrogates (JSON allows the escape, UTF-8 cannot
    hold it), bytes that are not UTF-8, and the url/date inside `metadata` (datatrove and
    Dolma write them there; Dolma names its files .json.gz). One such line used to fail
    the whole file: every document must come out, damaged characters as U+FFFD."""
    recs = _people_daily(6)
    dump = tmp_path / "in" / "web"
    dump.mkdir(parents=True)
    lines = [json.dumps({"id": "s1", "text": "\ud800" + recs[0]["text"], "url": "https://e.cn/\udfff"}).encode(),
             json.dumps({"id": "b1", "text": "BYTE" + recs[1]["text"]}, ensure_ascii=False).encode().replace(
                 b"BYTE", b"\xff\xfe"),
             json.dumps({"id": "m1", "text": recs[2]["text"],
                         "metadata": {"url": "https://e.cn/m1", "date": "1998-01-03T00:00:00Z"}}).encode()]
    (dump / "quirks.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with gzip.open(dump / "dolma.json.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(json.dumps({"id": r["id"], "text": r["text"], "source": "pd",
                                       "metadata": {"url": r["url"]}}, ensure_ascii=False) for r in recs[3:6]))
    out = tmp_path / "out"
    res = run_stages(ray_address, tmp_path / "in", out, order=["extract"])
    assert not res.failed
    assert {k: r.status for k, r in read_rows(out, "extract").items()} == {"web/quirks": "done", "web/dolma": "done"}
    docs = {d["warc_record_id"]: d for d in read_shards(out, "extract")}
    assert set(docs) == {"s1", "b1", "m1"} | {r["id"] for r in recs[3:6]}
    assert docs["s1"]["text"].startswith("\ufffd") and docs["s1"]["replaced_chars"] >= 1
    assert docs["s1"]["url"] == "https://e.cn/%EF%BF%BD" or "\ufffd" in docs["s1"]["url"]
    assert docs["b1"]["text"].startswith("\ufffd")
    assert docs["m1"]["url"] == "https://e.cn/m1" and docs["m1"]["date"].day == 3
    assert {docs[r["id"]]["url"] for r in recs[3:6]} == {r["url"] for r in recs[3:6]}


def test_dotted_field_names_reach_into_nested_records(ray_address, tmp_path):
    recs = _people_daily(4)
    dump = tmp_path / "in" / "d"
    dump.mkdir(parents=True)
    rows = [{"doc": {"body": r["text"], "key": r["id"]}, "meta": {"link": r["url"]}} for r in recs]
    (dump / "n.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]))
    pq.write_table(pa.Table.from_pylist(rows[2:]), dump / "n2.parquet")
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=["extract"],
               extract={"text_field": "doc.body", "id_field": "doc.key", "url_field": "meta.link"})
    docs = read_shards(out, "extract")
    assert sorted(d["warc_record_id"] for d in docs) == sorted(r["id"] for r in recs)
    assert {d["url"] for d in docs} == {r["url"] for r in recs}


def test_flat_folder_needs_dump_and_works_with_it(ray_address, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(REAL / "ccnet-sample-nonconformant.warc.wet", flat / "sample.wet")
    r = subprocess.run(curate_cmd() + ["run", "--input", str(flat), "--output", str(tmp_path / "o1"),
                                       "--address", ray_address], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "--dump NAME" in r.stderr, r.stderr
    r = subprocess.run(curate_cmd() + ["run", "--input", str(flat / "sample.wet"), "--output", str(tmp_path / "o1"),
                                       "--address", ray_address], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "is a file: --input takes a folder" in r.stderr, r.stderr
    out = tmp_path / "o2"
    run_stages(ray_address, flat, out, order=["extract"], dump="CC-MAIN-2019-13")
    assert set(read_rows(out, "extract")) == {"CC-MAIN-2019-13/sample"}
    assert {d["dump"] for d in read_shards(out, "extract")} == {"CC-MAIN-2019-13"}


def test_status_lists_files_no_reader_knows(ray_address, tmp_path):
    dump = tmp_path / "in" / "CC-MAIN-2024-22"
    dump.mkdir(parents=True)
    shutil.copy(REAL / "CC-MAIN-2024-22-whirlwind.warc.wet.gz", dump)
    shutil.copy(REAL / "CC-MAIN-2024-22-whirlwind.warc.wat.gz", dump)
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=["extract"])
    r = subprocess.run(curate_cmd() + ["status", "--output", str(out)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "not read: 1" in r.stdout and "wat.gz" in r.stdout, r.stdout + r.stderr


def test_wet_file_named_warc_still_gives_its_documents(ray_address, tmp_path):
    dump = tmp_path / "in" / "CC-MAIN-2024-22"
    dump.mkdir(parents=True)
    shutil.copy(REAL / "CC-MAIN-2024-22-whirlwind.warc.wet.gz", dump / "renamed.warc.gz")
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "in", out, order=["extract"])
    docs = read_shards(out, "extract")
    assert len(docs) == 1 and "Escopete" in docs[0]["text"]


def test_inputs_from_object_storage_equal_a_local_run(ray_address, tmp_path):
    """The crawl in S3 (a local moto server on loopback): the same documents as from disk."""
    src = DATA / "crawl"
    files = sorted(src.glob("*/*.warc.gz"))[:3]
    local = tmp_path / "local"
    for f in files:
        (local / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, local / f.parent.name / f.name)
    (local / "mine").mkdir()
    (local / "mine" / "docs.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _people_daily(5)))
    with s3_server("crawl") as (env, s3):
        for f in local.rglob("*"):
            if f.is_file():
                s3.upload_file(str(f), "crawl", f"cc/{f.relative_to(local)}")
        out = tmp_path / "from-s3"
        r = subprocess.run(curate_cmd() + ["run", "--input", "s3://crawl/cc", "--output", str(out), "--until",
                                           "extract", "--no-report", "--quiet"],
                           capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert all(row.status == "done" for row in read_rows(out, "extract").values())
        bad = subprocess.run(curate_cmd() + ["run", "--input", "s3://no-such-bucket/cc", "--output",
                                             str(tmp_path / "x"), "--no-report"],
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        assert bad.returncode == 2 and "s3://no-such-bucket/cc" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr and "AWS_SECRET" not in bad.stderr
    ref = tmp_path / "from-disk"
    run_stages(ray_address, local, ref, stages=["extract"])         # the default order: pre-filter on, as above
    docs = lambda o: sorted((d["id"], d["warc_file"], d["text"]) for d in read_shards(o, "extract"))
    assert docs(out) == docs(ref) and len(docs(ref)) > 100
