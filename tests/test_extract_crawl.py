"""extract on the shared crawl: every HTML 200 response is a document or a reject."""
import json
from collections import Counter

from conftest import DATA, read_shards
from curate.manifests.manifest import read_rows


def test_every_html_200_response_is_a_document_or_a_reject(crawl_extract):
    out, result = crawl_extract
    truth = json.loads((DATA / "crawl" / "truth.json").read_text())["records"]
    docs = read_shards(out, "extract")
    rejects = read_shards(out, "extract", "rejects")
    by_record = Counter(d["warc_record_id"] for d in docs)
    assert max(by_record.values()) == 1, "a record became two documents"
    # a reject names its record by place: <dump>/<file>@<offset>, and its URL
    reject_by_place = {(r["source"].rsplit("@", 1)[0], (r["url"] or "").strip()): r for r in rejects}
    missing = []
    for rec in truth:
        in_docs = by_record.get(rec["record_id"], 0)
        rej = reject_by_place.get((rec["file"].split("/", 1)[1], rec["url"].strip()))
        assert in_docs + (rej is not None) == 1, rec
        if rej is not None:
            assert rej["reason"].startswith("extract:") and rej["url"].strip() == rec["url"].strip()
            missing.append(rej["reason"])
    print(f"\n{len(truth)} HTML 200 responses: {len(docs)} documents, rejects {Counter(missing)}")
    assert len(docs) + len(missing) == len(truth)
    # what is not in truth (PNG, 404) is rejected with the right reason
    other = Counter(r["reason"] for r in rejects if r["reason"] in ("extract:not_html", "extract:http_status"))
    assert other["extract:not_html"] > 0 and other["extract:http_status"] > 0
    # the extracted text is main text, not markup
    assert all("<p>" not in d["text"] and d["n_chars"] == len(d["text"]) > 0 for d in docs)


def test_manifest_rows_describe_the_shards(crawl_extract):
    import pyarrow.parquet as pq
    from curate.manifests.atomic import sha256_file
    out, result = crawl_extract
    rows = read_rows(out, "extract")
    assert len(rows) == 6 and {r.status for r in rows.values()} == {"done"}
    for row in rows.values():
        table = pq.read_table(out / row.path)
        assert table.num_rows == row.docs
        assert pq.read_table(out / row.rejects_path).num_rows == row.rejected
        assert row.docs_in == row.docs + row.rejected
        assert row.sha256 == sha256_file(out / row.path)
        assert row.bytes == (out / row.path).stat().st_size
        assert row.chars == sum(table.column("n_chars").to_pylist())
        assert row.dump and row.unit.startswith(row.dump + "/")
        assert row.started_at <= row.finished_at and row.fingerprint
        assert row.stats_dict["records"]["response"] == row.docs_in


def test_document_ids_are_stable_and_dates_parsed(crawl_extract):
    out, _ = crawl_extract
    docs = read_shards(out, "extract")
    from curate.stages.extract import doc_id
    for d in docs:
        assert d["id"] == doc_id(d["warc_record_id"], f"{d['warc_file']}@{d['warc_offset']}")
        assert d["date"] is not None and d["date"].year == 2024
        assert d["dump"] in d["warc_file"]
