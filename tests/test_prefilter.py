"""The language pre-filter in extract (issue 11): it keeps at least 99.5% of the pages the
full path (extract, then langid) keeps, English and Chinese each, on every shared set,
and saves the extraction of pages in other languages."""
from __future__ import annotations

import gzip
import json
import time
from collections import Counter, defaultdict

import pytest

from conftest import DATA, read_shards, run_stages


def _html_pages():
    from curate.stages.extract.http import HttpError, decode_body, is_html, parse_response
    from curate.stages.extract.warc import WarcRecord, read_warc
    for e in json.loads((DATA / "pages.json").read_text()):
        raw = gzip.decompress((DATA / e["file"]).read_bytes())
        yield "pages", e["file"], decode_body(raw, "")[0], e.get("url")
    for name, pattern in (("crawl", "crawl/*/*.warc.gz"), ("crawl-zh", "crawl-zh/*/*.warc.gz"),
                          ("real-warc", "real-warc/*.warc.gz")):
        for f in sorted(DATA.glob(pattern)):
            with open(f, "rb") as fh:
                for ev in read_warc(fh):
                    if not isinstance(ev, WarcRecord) or ev.type != "response":
                        continue
                    try:
                        r = parse_response(ev.block, 2_000_000)
                    except HttpError:
                        continue
                    if r.status == 200 and is_html(r):
                        url = ev.headers.get("warc-target-uri")
                        yield name, url, decode_body(r.body, r.headers.get("content-type", ""))[0], url


def test_prefilter_keeps_what_the_full_path_keeps_and_saves_extraction():
    from curate.stages.extract import ExtractSettings, extract_text
    from curate.stages.extract.prefilter import judge
    from curate.stages.langid import identify
    from curate.stages.langid.model import load_fasttext, resolve_lid_model
    model = load_fasttext(resolve_lid_model(None))
    s = ExtractSettings()
    kept, lost = Counter(), Counter()
    cpu, saved, cost = defaultdict(float), defaultdict(float), defaultdict(float)
    for name, key, html, url in _html_pages():
        t0 = time.process_time()
        text = extract_text(html, url, s).strip()
        took = time.process_time() - t0
        t0 = time.process_time()
        verdict = judge(html, ["en", "zh"], s.prefilter_threshold)
        cost[name] += time.process_time() - t0
        cpu[name] += took
        if verdict is not None:
            saved[name] += took
        if text:
            (lang,), (score,) = identify(model, [text])
            if lang in ("en", "zh") and score >= {"en": 0.65, "zh": 0.5}[lang]:
                kept[(name, lang)] += 1
                lost[(name, lang)] += verdict is not None
    print()
    for k in sorted(kept):
        print(f"{k[0]:10s} {k[1]}: full path keeps {kept[k]:4d}, pre-filter keeps {kept[k] - lost[k]:4d} "
              f"= {(kept[k] - lost[k]) / kept[k]:.2%}")
        assert (kept[k] - lost[k]) / kept[k] >= 0.995
    for name in cpu:
        print(f"{name:10s} extraction CPU {cpu[name]:.2f} s, saved {saved[name]:.2f} s "
              f"({saved[name] / max(cpu[name], 1e-9):.0%}); pre-filter cost {cost[name]:.2f} s")
    assert saved["crawl"] > 0.25 * cpu["crawl"] and saved["pages"] > 0.25 * cpu["pages"]
    assert cost["crawl"] < 0.5 * saved["crawl"]


def test_prefilter_is_on_with_langid_and_off_without(tmp_path):
    from curate.pipeline.config import config_from_dict
    on = config_from_dict({"order": ["extract", "langid"]}).settings("extract")
    off = config_from_dict({"order": ["extract", "dedup"]}).settings("extract")
    assert (on.prefilter, off.prefilter) == (True, False)
    forced = config_from_dict({"order": ["extract", "langid"], "extract": {"prefilter": False}})
    assert forced.settings("extract").prefilter is False
    assert on.prefilter_languages == ["en", "zh"]
    kept = config_from_dict({"order": ["extract", "langid"], "langid": {"languages": ["en", "fr"]}})
    assert kept.settings("extract").prefilter_languages == ["en", "fr"]


def test_pipeline_rejects_before_extraction_with_the_reason(ray_address, crawl_extract):
    out, _ = crawl_extract
    rejects = read_shards(out, "extract", "rejects")
    early = Counter(r["reason"] for r in rejects if r["reason"].startswith("extract:prefilter_lang:"))
    print(early)
    assert early["extract:prefilter_lang:de"] > 50
    assert not any(r.endswith((":en", ":zh")) for r in early)
