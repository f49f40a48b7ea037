"""Damaged and odd inputs: a clear recorded outcome for every file, no crash, no silent loss."""
import gzip
import shutil

import pytest

from conftest import DATA, read_shards, run_stages
from curate.manifests.manifest import read_rows
from curate.stages.extract.warc import WarcDamage, WarcRecord, read_warc


@pytest.fixture(scope="module")
def broken_run(ray_address, tmp_path_factory):
    base = tmp_path_factory.mktemp("broken")
    inp = base / "in"
    (inp / "broken").mkdir(parents=True)
    for f in (DATA / "broken").glob("*.warc.gz"):
        shutil.copy(f, inp / "broken" / f.name)
    (inp / "warcio").mkdir()
    for f in (DATA / "warcio-tests").iterdir():
        name = f.name.replace(".warc.gz.bad", "-bad.warc.gz")
        shutil.copy(f, inp / "warcio" / name)
    # the intact original of the broken copies, for comparison
    (inp / "original").mkdir()
    shutil.copy(DATA / "crawl/CC-MAIN-2024-10/CC-MAIN-2024-10-00000.warc.gz", inp / "original")
    out = base / "out"
    result = run_stages(ray_address, inp, out, stages=["extract"])
    return out, result, inp


def test_every_file_has_a_recorded_outcome(broken_run):
    out, result, inp = broken_run
    rows = read_rows(out, "extract")
    files = sorted(p for p in inp.rglob("*") if p.is_file())
    assert len(rows) == len(files), "a file was skipped without a record"
    for row in rows.values():
        assert row.status in ("done", "partial"), (row.unit, row.error)
        assert row.docs_in == row.docs + row.rejected
        if row.status == "partial":
            assert row.error and "at byte" in row.error and row.unit.split("/")[1] in row.error
    summary = {k: (r.status, r.docs, r.error) for k, r in sorted(rows.items())}
    for k, v in summary.items():
        print(k, v)


def test_damaged_files_keep_what_was_read_and_say_where(broken_run):
    out, _, _ = broken_run
    rows = read_rows(out, "extract")
    original = rows["original/CC-MAIN-2024-10-00000"]
    assert original.status == "done"
    trunc = rows["broken/truncated-60pct"]
    garbage = rows["broken/garbage-middle"]
    assert trunc.status == "partial" and "truncated" in trunc.error
    assert garbage.status == "partial" and "corrupt gzip member" in garbage.error
    assert "resumed at byte" in garbage.error          # read on past the garbage
    assert rows["broken/not-gzip"].status == "partial" and "not a WARC file" in rows["broken/not-gzip"].error
    empty = rows["broken/empty"]
    assert empty.status == "partial" and empty.docs_in == 0 and "empty file" in empty.error
    assert 0 < trunc.docs < original.docs
    assert garbage.docs >= original.docs - 2            # only the damaged member is lost
    # nothing clipped: every document from a damaged copy equals the intact original's
    docs = read_shards(out, "extract")
    orig = {d["warc_record_id"]: d["text"] for d in docs if d["warc_file"].startswith("original/")}
    for d in docs:
        if d["warc_file"].startswith("broken/"):
            assert orig[d["warc_record_id"]] == d["text"]
    # the record cut by the truncation is rejected by name, not lost
    rejects = read_shards(out, "extract", "rejects")
    cut = [r for r in rejects if r["reason"] == "extract:truncated_record"]
    assert cut and all(r["url"] for r in cut)


def test_arc_files_are_refused_with_a_clear_reason(broken_run):
    out, _, _ = broken_run
    rows = read_rows(out, "extract")
    arcs = [r for k, r in rows.items() if ".arc" in r.inputs[0]]
    assert arcs and all(r.status == "partial" and "ARC file" in r.error for r in arcs)


def test_warcio_edge_cases_are_read(broken_run):
    out, _, _ = broken_run
    rows = read_rows(out, "extract")
    # chunked transfer encoding and single-stream gzip files are valid input
    assert rows["warcio/example-iana.org-chunked"].status == "done"
    assert rows["warcio/example-bad-non-chunked"].status == "done"
    docs = read_shards(out, "extract")
    iana = [d for d in docs if d["warc_file"] == "warcio/example-iana.org-chunked.warc"]
    assert len(iana) == 1 and "DNS Root Zone" in iana[0]["text"]   # de-chunked body


def _records(data: bytes):
    import io
    return list(read_warc(io.BytesIO(data)))


def _warc(body: bytes, declared: int | None = None) -> bytes:
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:1>\r\n"
            f"Content-Length: {declared if declared is not None else len(body)}\r\n\r\n").encode()
    return head + body + b"\r\n\r\n"


def test_record_shorter_than_content_length_is_damage_not_a_record():
    body = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html><p>hello</p></html>"
    events = _records(_warc(body, declared=len(body) + 500)[:-4])
    assert len(events) == 1 and isinstance(events[0], WarcDamage)
    assert "cut short" in events[0].message and events[0].headers["warc-record-id"] == "<urn:uuid:1>"
    # the same in a gzip member, cut mid-stream
    gz = gzip.compress(_warc(body * 50))
    events = _records(gz[: len(gz) // 2])
    assert isinstance(events[-1], WarcDamage) and events[-1].offset == 0


def test_complete_records_in_plain_and_gzip_files_match():
    body = b"HTTP/1.1 200 OK\r\n\r\nabc"
    plain = _warc(body) * 3
    members = gzip.compress(_warc(body)) * 3
    for data in (plain, members, gzip.compress(plain)):
        events = _records(data)
        assert [type(e) for e in events] == [WarcRecord] * 3
        assert all(e.block == body for e in events)
