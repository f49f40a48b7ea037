"""The quality stage on the crawl: conservation, signals as columns, staleness."""
import subprocess


from conftest import curate_cmd, read_shards, run_stages
from curate.manifests.manifest import read_rows


def test_quality_keeps_signals_and_rejects_with_reasons(crawl_extract):
    out, _ = crawl_extract
    rows, up = read_rows(out, "quality"), read_rows(out, "dedup")   # the stage before it
    for key, row in rows.items():
        assert row.status == "done" and row.docs_in == up[key].docs == row.docs + row.rejected
    docs = read_shards(out, "quality")
    assert docs
    for d in docs:
        if d["lang"] == "en":
            assert d["gopher_word_count"] >= 50 and d["zh_han_chars"] is None
        else:
            assert d["zh_han_chars"] >= 100 and d["gopher_word_count"] is None
        assert d["n_chars"] == len(d["text"]) and d["pii_masked"] >= 0
    rejects = read_shards(out, "quality", "rejects")
    assert rejects and all(":" in r["reason"] and r["detail"] for r in rejects)
    assert sum("@" in d["text"] and ".uk" in d["text"] for d in docs) == 0   # e-mails masked


def test_changed_threshold_makes_quality_stale_and_nothing_before(ray_address, demo_corpus, tmp_path):
    out = tmp_path / "out"
    first = run_stages(ray_address, demo_corpus, out)
    assert [s.stage for s in first.stages] == ["extract", "langid", "dedup", "quality", "decontaminate",
                                               "remix", "tokenize"]
    again = run_stages(ray_address, demo_corpus, out)
    assert [s.ran for s in again.stages] == [0, 0, 0, 0, 0, 0, 0]
    cfg = tmp_path / "stricter.yaml"
    cfg.write_text(f"input: {demo_corpus}\noutput: {out}\nquality:\n  params:\n"
                   f"    gopher_quality:\n      min_words: 400\n")
    status = subprocess.run(curate_cmd() + ["status", "--config", str(cfg)], capture_output=True,
                            text=True, check=True).stdout
    lines = {ln.split()[0]: ln.split() for ln in status.splitlines()[2:] if ln.strip()}
    assert lines["extract"][2] == "6" and lines["langid"][2] == "6"      # done
    assert lines["quality"][5] == "6"                                    # stale
    before = {k: r.finished_at for k, r in read_rows(out, "langid").items()}
    stricter = run_stages(ray_address, demo_corpus, out,
                          quality={"params": {"gopher_quality": {"min_words": 400}}})
    ran = [s.ran for s in stricter.stages]
    assert ran[:4] == [0, 0, 0, 6] and all(ran[4:])       # remix and tokenize follow
    assert {k: r.finished_at for k, r in read_rows(out, "langid").items()} == before
    reasons = {r["reason"] for r in read_shards(out, "quality", "rejects")}
    assert "gopher_quality:word_count" in reasons


def test_quality_right_after_extract_uses_default_filters(ray_address, demo_corpus, tmp_path):
    """The order is one config line; quality straight after extract uses default_filters."""
    out = tmp_path / "out"
    res = run_stages(ray_address, demo_corpus, out, order=["extract", "quality"],
                     quality={"default_filters": ["gopher_quality"]})
    assert [s.stage for s in res.stages] == ["extract", "quality"]
    q = read_rows(out, "quality")
    assert sum(r.docs for r in q.values()) < sum(r.docs_in for r in q.values())
