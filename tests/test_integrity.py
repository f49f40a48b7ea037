"""Nothing lost silently (issue 9): one test per path that used to lose or corrupt data
with exit code 0. Each failed on the code before its fix."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import DATA, REPO, curate_cmd, doc_set, read_shards, run_stages, s3_server
from curate.manifests.manifest import read_rows

# -- helpers --------------------------------------------------------------------------------


def warc_record(rid: str, uri: str, body: bytes, version: str = "WARC/1.1",
                http_headers: str = "Content-Type: text/html; charset=utf-8") -> bytes:
    http = (f"HTTP/1.1 200 OK\r\n{http_headers}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    head = (f"{version}\r\nWARC-Type: response\r\nWARC-Record-ID: {rid}\r\nWARC-Target-URI: {uri}\r\n"
            f"WARC-Date: 2024-03-01T00:00:00Z\r\nContent-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(http)}\r\n\r\n").encode()
    return gzip.compress(head + http + b"\r\n\r\n")


ARTICLE = ("<html><head><title>{t}</title></head><body><article><h1>{t}</h1>"
           + "<p>{p} The committee met on Tuesday to discuss the budget for the coming year, and the "
             "members agreed that the town should invest in its schools, roads and parks.</p>" * 6
           + "</article></body></html>")


def page(title: str, para: str) -> bytes:
    return ARTICLE.format(t=title, p=para).encode()


def final_corpus(out: Path) -> list:
    """(id, copy, text digest) of every row of the final corpus (remix repeats a document)."""
    return sorted((d["id"], d["copy"], hashlib.sha256(d["text"].encode()).hexdigest())
                  for d in read_shards(out, "remix"))


def _copy_output(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".curate.lock"))
    return dst


def _cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(curate_cmd() + list(args), capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def demo_full(ray_address, demo_corpus, tmp_path_factory):
    """The whole default pipeline over the demo corpus, once for this module."""
    out = tmp_path_factory.mktemp("integrity") / "out"
    res = run_stages(ray_address, demo_corpus, out)
    assert not res.failed
    return out


# -- 1. a remix config that keeps no present language ---------------------------------------


def test_remix_without_a_present_language_rejects_every_document(ray_address, demo_corpus, demo_full, tmp_path):
    out = _copy_output(demo_full, tmp_path / "out")
    quality_docs = sum(r.docs for r in read_rows(out, "quality").values())
    logs = []
    res = run_stages(ray_address, demo_corpus, out, log=logs.append, remix={"target_shares": {"de": 1.0}})
    remix = next(s for s in res.stages if s.stage == "remix")
    assert sum(r.docs_in for r in remix.rows) == quality_docs and quality_docs > 0
    rejects = read_shards(out, "remix", "rejects")
    assert len(rejects) == quality_docs
    assert {r["reason"] for r in rejects} == {"remix:language_not_in_mix"}
    assert read_shards(out, "remix") == []
    # the old shards went because the plan changed, and the log says so (not "input gone")
    removed = [m for m in logs if m.startswith("[remix] removed outputs of")]
    assert removed and all("no longer there" not in m for m in removed), removed


def test_a_stage_that_plans_nothing_over_documents_stops_before_deleting(ray_address, demo_corpus, demo_full,
                                                                           tmp_path, monkeypatch):
    from curate.pipeline.registry import STAGES
    from curate.pipeline.stage import ConservationError
    out = _copy_output(demo_full, tmp_path / "out")
    before = sorted(p.name for p in (out / "remix").rglob("*.parquet"))
    monkeypatch.setattr(STAGES["remix"], "plan", lambda ctx: [])
    with pytest.raises(ConservationError, match="plans no units"):
        run_stages(ray_address, demo_corpus, out)
    assert sorted(p.name for p in (out / "remix").rglob("*.parquet")) == before


# -- 2. config domains ------------------------------------------------------------------------

BAD_CONFIGS = [
    ("remix:\n  target_shares: {en: .nan}\n", "remix.target_shares.en"),
    ("remix:\n  max_epochs: .nan\n", "remix.max_epochs"),
    ("extract:\n  timeout_s: .nan\n", "extract.timeout_s"),
    ("extract:\n  timeout_s: .inf\n", "extract.timeout_s"),
    ("tokenize:\n  sample_bytes: -5\n", "tokenize.sample_bytes"),
    ("ray:\n  num_cpus: -2\n", "ray.num_cpus"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("42\n", "top level must be a mapping"),
    ("tokenize:\n  special_tokens: ['', '<b>']\n", "tokenize.special_tokens[0]"),
    ("langid:\n  default_threshold: -0.5\n", "langid.default_threshold"),
    ("dedup:\n  ngram: 1000000000000000000000000000000\n", "dedup.ngram"),
    ("tokenize:\n  budget_tokens: -1.0\n", "tokenize.budget_tokens"),
    ("quality:\n  params: {gopher_quality: {min_words: .inf}}\n", "quality.params.gopher_quality.min_words"),
]


@pytest.mark.parametrize("text,names", BAD_CONFIGS, ids=[b for _, b in BAD_CONFIGS])
def test_bad_config_is_a_clear_error_before_any_work(text, names, tmp_path, capsys, demo_corpus):
    from curate.pipeline.cli import main
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    rc = main(["run", "--config", str(cfg), "--input", str(demo_corpus), "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and names in err and "Traceback" not in err, err
    assert not out.exists()


def test_binary_config_file_is_a_clear_error(tmp_path, capsys, demo_corpus):
    from curate.pipeline.cli import main
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(bytes(range(256)) * 4)
    rc = main(["run", "--config", str(cfg), "--input", str(demo_corpus), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and str(cfg) in err and "Traceback" not in err


def test_every_setting_declares_its_domain_or_is_free_text():
    """Numbers with no declared domain would let NaN-free nonsense through: list them."""
    import dataclasses
    from curate.pipeline.config import RaySettings
    from curate.pipeline.registry import STAGES
    undeclared = []
    for cls in [RaySettings] + [s.settings_cls for s in STAGES.values()]:
        for f in dataclasses.fields(cls):
            if f.type in ("int", "float", "int | None", "float | None") and f.metadata.get("domain") is None:
                undeclared.append(f"{cls.__name__}.{f.name}")
    assert not undeclared, undeclared


# -- 3. damaged outputs are detected and repaired ----------------------------------------------


def test_deleted_or_truncated_shards_are_found_and_redone(ray_address, demo_corpus, demo_full, tmp_path):
    out = _copy_output(demo_full, tmp_path / "out")
    final = final_corpus(out)
    ext = sorted(read_rows(out, "extract").values(), key=lambda r: r.unit)[0]
    qual = sorted(read_rows(out, "quality").values(), key=lambda r: r.unit)[-1]
    (out / ext.path).unlink()
    data = (out / qual.path).read_bytes()
    (out / qual.path).write_bytes(data[: len(data) // 2])

    r = _cli("verify", "--output", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert ext.path in r.stdout and qual.path in r.stdout
    status = _cli("status", "--output", str(out))
    assert "stale" in status.stdout

    res = run_stages(ray_address, demo_corpus, out)
    assert not res.failed
    assert read_rows(out, "extract")[ext.unit].finished_at > ext.finished_at
    assert read_rows(out, "quality")[qual.unit].finished_at > qual.finished_at
    assert final_corpus(out) == final
    assert _cli("verify", "--output", str(out), "--deep").returncode == 0


def test_runner_redoes_a_missing_shard_without_verify(ray_address, demo_corpus, demo_full, tmp_path):
    out = _copy_output(demo_full, tmp_path / "out")
    final = final_corpus(out)
    row = sorted(read_rows(out, "dedup").values(), key=lambda r: r.unit)[0]
    (out / row.rejects_path).unlink()
    logs = []
    run_stages(ray_address, demo_corpus, out, log=logs.append)
    assert any(row.unit in m and "missing" in m and "redoing" in m for m in logs), logs
    assert (out / row.rejects_path).exists() and final_corpus(out) == final


def test_verify_deep_finds_same_size_corruption(demo_full, tmp_path):
    out = _copy_output(demo_full, tmp_path / "out")
    row = sorted(read_rows(out, "langid").values(), key=lambda r: r.unit)[0]
    data = bytearray((out / row.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / row.path).write_bytes(bytes(data))
    assert _cli("verify", "--output", str(out)).returncode == 0          # sizes still match
    deep = _cli("verify", "--output", str(out), "--deep")
    assert deep.returncode == 1 and "sha256" in deep.stdout and row.path in deep.stdout


# -- 4. a corrupt manifest part ------------------------------------------------------------------


def test_corrupt_manifest_part_is_moved_aside_and_redone(ray_address, demo_corpus, demo_full, tmp_path):
    out = _copy_output(demo_full, tmp_path / "out")
    final = final_corpus(out)
    # a finished stage's record is one compacted file: damaged, all its units are redone
    part = sorted((out / "manifests" / "langid").glob("*.parquet"))[0]
    assert part.name.startswith("_rows-")
    units = pq.read_metadata(part).num_rows
    good = part.read_bytes()
    for args in (["status"], ["query", "SELECT stage, count(*) FROM shards GROUP BY ALL"], ["verify"]):
        part.write_bytes(os.urandom(3000))
        r = _cli(*args, "--output", str(out))
        if args == ["verify"]:
            part.write_bytes(good)          # verify found nothing else wrong
            assert r.returncode == 0, r.stdout
        else:
            assert r.returncode == 0, r.stderr
        assert part.name in r.stderr and "Traceback" not in r.stderr
    assert len(list((out / "manifests" / "langid" / ".corrupt").iterdir())) == 3
    part.write_bytes(os.urandom(3000))
    res = run_stages(ray_address, demo_corpus, out)
    langid = next(s for s in res.stages if s.stage == "langid")
    assert langid.ran == units and not res.failed
    assert final_corpus(out) == final


# -- 5. the same outputs under any hash seed ----------------------------------------------------


def test_ngram_repetition_does_not_depend_on_the_hash_seed():
    # three 2-grams tie for the top count; which one is "the top" must not follow hash()
    code = ("from filters.text import ngram_repetition;"
            "print(ngram_repetition('aaaa bbbb x c d y aaaa bbbb z c d w eeeeee ffffff g eeeeee ffffff'.split()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(outs) == 1, outs


def _table_digest(path: Path) -> dict:
    t = pq.read_table(path)
    return {c: hashlib.sha256(repr(t.column(c).to_pylist()).encode()).hexdigest() for c in t.column_names}


def test_whole_demo_is_identical_under_two_hash_seeds(demo_corpus, tmp_path):
    digests = []
    for seed in ("1", "4242"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env.pop("RAY_ADDRESS", None)
        r = _cli("run", "--input", str(demo_corpus), "--output", str(out), env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        rows = {(s, u): row for s in ("extract", "langid", "dedup", "quality", "remix", "tokenize")
                for u, row in read_rows(out, s).items()}
        digests.append({k: {"docs": _table_digest(out / row.path), "rejects": _table_digest(out / row.rejects_path)}
                        for k, row in rows.items()}
                       | {"tokenizer": hashlib.sha256((out / "tokenize" / "tokenizer.json").read_bytes()).hexdigest()})
    assert digests[0].keys() == digests[1].keys()
    differ = [k for k in digests[0] if digests[0][k] != digests[1][k]]
    assert not differ, differ


# -- 6. the extraction cap is CPU time -------------------------------------------------------------


def test_time_cap_counts_cpu_time_not_waiting():
    from curate.stages.extract import _Timeout, time_cap
    with time_cap(0.3):
        time.sleep(0.8)                     # waiting (a loaded machine) is not the page's cost
    with pytest.raises(_Timeout):
        with time_cap(0.3):
            t0 = time.process_time()
            while time.process_time() - t0 < 5:
                pass


# -- 7. hostile input ----------------------------------------------------------------------------


def _bomb_warc(path: Path, decoded_bytes: int = 1 << 30) -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    body = comp.compress(b"<html><body>") + b"".join(comp.compress(zeros) for _ in range(decoded_bytes >> 20))
    body += comp.flush()
    path.write_bytes(warc_record("<urn:uuid:bomb>", "https://example.com/bomb", body,
                                 http_headers="Content-Type: text/html\r\nContent-Encoding: gzip")
                     + warc_record("<urn:uuid:fine>", "https://example.com/fine", page("Fine", "Fine.")))


def test_gzip_bomb_is_rejected_with_bounded_memory(tmp_path):
    warc = tmp_path / "crawl" / "CC-MAIN-2024-10" / "bomb.warc.gz"
    warc.parent.mkdir(parents=True)
    _bomb_warc(warc)
    assert warc.stat().st_size < 2_000_000
    code = f"""
import json
from curate.pipeline.config import config_from_dict
from curate.pipeline.stage import execute_unit
from curate.pipeline.registry import STAGES
from curate.pipeline.runner import plan_pipeline
cfg = config_from_dict({{"input": {str(warc.parent.parent)!r}, "output": {str(tmp_path / 'out')!r}, "order": ["extract"]}})
unit = plan_pipeline(cfg)["extract"][0]
row = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, cfg.output)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent (pytest)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"rss_mb": hwm / 1024, "docs": row.docs,
                   "rejected": row.rejected, "status": row.status}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print(got)
    assert got["docs"] == 1 and got["rejected"] == 1 and got["status"] == "done"
    assert got["rss_mb"] < 400
    rej = read_shards(tmp_path / "out", "extract", "rejects")
    assert [r["reason"] for r in rej] == ["extract:too_large"]


def _flat_dump(tmp_path: Path) -> Path:
    dump = tmp_path / "crawl" / "CC-MAIN-2024-10"
    dump.mkdir(parents=True)
    (dump / "good.warc.gz").write_bytes(warc_record("<urn:uuid:g1>", "https://example.com/a", page("A", "Alpha.")))
    return dump


def test_hostile_file_names_and_empty_or_looping_inputs_are_reported(ray_address, tmp_path):
    dump = _flat_dump(tmp_path)
    bad_name = os.fsdecode(b"caf\xe9-\xff.warc.gz")
    shutil.copy(dump / "good.warc.gz", dump / bad_name)
    (dump / "empty.warc.gz").write_bytes(b"")
    os.symlink("loop.warc.gz", dump / "loop.warc.gz")
    out = tmp_path / "out"
    res = run_stages(ray_address, dump.parent, out, order=["extract"])
    rows = read_rows(out, "extract")
    by_name = {k.split("/", 1)[1]: r for k, r in rows.items()}
    assert by_name["good"].status == "done" and by_name["good"].docs == 1
    odd = next(r for k, r in by_name.items() if k.startswith("caf"))
    assert odd.status == "done" and odd.docs == 1 and "\\xe9" in odd.unit
    assert by_name["empty"].status == "partial" and "empty file" in by_name["empty"].error
    assert by_name["loop"].status == "failed" and "loop.warc.gz" in by_name["loop"].error
    assert res.failed == 1
    ids = [d["id"] for d in read_shards(out, "extract")]
    assert len(ids) == len(set(ids)) == 2           # the copy under another name is its own document


# -- 8. duplicate ids; 11. WARC/1.0 angle brackets --------------------------------------------------


def test_repeated_record_ids_give_unique_document_ids_and_urls_lose_brackets(ray_address, tmp_path):
    dump = tmp_path / "crawl" / "CC-MAIN-2024-10"
    dump.mkdir(parents=True)
    (dump / "wget.warc.gz").write_bytes(
        warc_record("<urn:uuid:same>", "<https://example.com/one>", page("One", "First text."), version="WARC/1.0")
        + warc_record("<urn:uuid:same>", "<https://example.com/two>", page("Two", "Second text, other words."),
                      version="WARC/1.0"))
    shutil.copytree(dump, tmp_path / "crawl" / "CC-MAIN-2024-18")     # the same file under a second dump
    out = tmp_path / "out"
    run_stages(ray_address, tmp_path / "crawl", out, order=["extract"])
    docs = read_shards(out, "extract")
    assert len(docs) == 4 and len({d["id"] for d in docs}) == 4
    assert {d["url"] for d in docs} == {"https://example.com/one", "https://example.com/two"}
    from curate.stages.remix import site_of
    assert {site_of(d["url"]) for d in docs} == {"example.com"}


def test_summary_reasons_from_manifest_rows_equal_the_rejects_files(demo_full):
    """The run summary counts reject reasons from the manifest rows (no rejects file read);
    rows written before rows kept their reasons are counted from their files: both agree
    with the files, reason by reason."""
    import dataclasses
    import duckdb
    from curate.manifests.manifest import read_rows
    from curate.pipeline.report import top_reasons
    checked = 0
    for stage in ("extract", "langid", "dedup", "quality", "remix"):
        rows = list(read_rows(demo_full, stage).values())
        files = [str(demo_full / r.rejects_path) for r in rows]
        truth = dict(duckdb.sql(f"SELECT reason, count(*) FROM read_parquet({files!r}) GROUP BY ALL").fetchall())
        if not truth:
            assert top_reasons(demo_full, rows) == []
            continue
        checked += 1
        expected = sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        assert top_reasons(demo_full, rows) == expected, stage
        legacy = [dataclasses.replace(r, stats="{}") if i % 2 else r for i, r in enumerate(rows)]
        assert top_reasons(demo_full, legacy) == expected, stage
    assert checked >= 3


def test_remixed_corpus_has_unique_ids_per_copy(demo_full):
    rows = read_shards(demo_full, "remix")
    keys = [(r["id"], r["copy"]) for r in rows]
    assert len(keys) == len(set(keys))


# -- 9. disk full --------------------------------------------------------------------------------


def test_disk_full_is_a_clear_error_and_a_rerun_finishes(ray_address, demo_corpus, demo_run, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()}); "
                    "test_disk_full_errors_are_recognised covers the message")
    try:
        filler = mnt / "filler"
        st = os.statvfs(mnt)
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 96 * 1024))   # 96 KiB left
        out = mnt / "out"
        run = _cli("run", "--input", str(demo_corpus), "--output", str(out), "--until", "extract",
                   "--address", ray_address)
        assert run.returncode == 1, run.stderr[-2000:]
        assert "no space left on device" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
        filler.unlink()
        again = _cli("run", "--input", str(demo_corpus), "--output", str(out), "--until", "extract",
                     "--address", ray_address)
        assert again.returncode == 0, again.stderr[-2000:]
        assert doc_set(out) == doc_set(demo_run[0])
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_errors_are_recognised():
    import errno
    from curate.pipeline.stage import disk_full
    assert disk_full(OSError(errno.ENOSPC, "No space left on device", "/x"))
    assert disk_full(OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"))
    assert not disk_full(OSError(errno.ENOENT, "No such file"))


# -- 10. a killed driver's in-flight task cannot publish under a new run ------------------------------


def test_publication_is_fenced_by_the_run_that_owns_the_output(demo_corpus, tmp_path):
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.registry import STAGES
    from curate.pipeline.runner import output_lock, plan_pipeline
    from curate.pipeline.stage import execute_unit
    out = tmp_path / "out"
    cfg = config_from_dict({"input": str(demo_corpus), "output": str(out), "order": ["extract"]})
    unit = plan_pipeline(cfg)["extract"][0]
    with output_lock(out) as old_run:
        pass                                    # the first driver dies; a second takes over
    with output_lock(out) as new_run:
        row = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, out, run_id=old_run)
        assert row.status == "failed" and "not published" in row.error
        assert read_rows(out, "extract") == {} and not (out / unit.out_path).exists()
        row = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, out, run_id=new_run)
        assert row.status == "done" and (out / unit.out_path).exists()
        assert set(read_rows(out, "extract")) == {unit.key}


# -- the dedup-rate curve equals dedup on each prefix of dumps ------------------------------------


@pytest.mark.parametrize("crawl", ["crawl", "crawl-zh"])
def test_dedup_curve_equals_dedup_on_each_prefix_of_dumps(ray_address, crawl, tmp_path):
    dumps = sorted(p.name for p in (DATA / crawl).iterdir() if p.is_dir())
    order = {"order": ["extract", "dedup"]}
    full = tmp_path / "full"
    run_stages(ray_address, DATA / crawl, full, **order)
    curve = pq.read_table(full / "reports" / "dedup_curve.parquet").to_pylist()
    assert [c["dumps_used"] for c in curve] == list(range(1, len(dumps) + 1))
    for k in range(1, len(dumps) + 1):
        prefix = tmp_path / f"prefix{k}" / "crawl"
        prefix.mkdir(parents=True)
        for d in dumps[:k]:
            os.symlink(DATA / crawl / d, prefix / d)
        out = _copy_output(full, tmp_path / f"prefix{k}" / "out")    # extract is reused, not redone
        # the copy is re-pointed at the prefix on purpose (an output belongs to its input:
        # run over another input, it would refuse); the later dumps' units drop as orphans
        saved = json.loads((out / "run-config.json").read_text())
        (out / "run-config.json").write_text(json.dumps({**saved, "input": str(prefix)}))
        run_stages(ray_address, prefix, out, **order)
        alone = len(read_shards(out, "dedup", "rejects"))
        docs = sum(r.docs for r in read_rows(out, "extract").values())
        print(f"{crawl}: first {k} dumps: curve {curve[k - 1]['removed']} of {curve[k - 1]['docs']}, "
              f"dedup alone {alone} of {docs}")
        assert (curve[k - 1]["removed"], curve[k - 1]["docs"]) == (alone, docs)


def test_bad_output_uris_are_clear_errors_before_any_work(tmp_path, capsys, monkeypatch, demo_corpus):
    """A URI with no bucket, a scheme nothing reads, a bucket that does not exist: exit 2
    naming the location, before any work, and never a local ./s3: folder."""
    from curate.pipeline.cli import main
    with s3_server():
        monkeypatch.chdir(tmp_path)
        for uri, says in (("s3:///out", "names no bucket"), ("nosuchfs://host/out", "not a storage location"),
                          ("s3://no-such-bucket/out", "does not exist")):
            rc = main(["run", "--input", str(demo_corpus), "--output", uri, "--no-report"])
            err = capsys.readouterr().err
            assert rc == 2 and uri in err and says in err and "Traceback" not in err, err
        assert not (tmp_path / "s3:").exists() and not list(tmp_path.iterdir())
