"""decontaminate (issue 14): documents holding benchmark n-grams are removed, nothing else.

The corpus enters as JSONL documents (People's Daily articles and English gold articles
from ../shared/data); the benchmark file is built from sentences of some of them."""
from __future__ import annotations

import gzip
import json

import pytest

from conftest import DATA, read_shards, run_stages
from curate.stages.dedup.shingles import CHAR, mode_for, normalise, tokens


def _corpus():
    with gzip.open(DATA / "zh-text" / "people-daily-199801.jsonl.gz", "rt", encoding="utf-8") as fh:
        zh = [json.loads(line) for _, line in zip(range(60), fh)]
    gold = json.loads((DATA / "ground-truth.json").read_text())
    en = [{"id": k, "url": v.get("url"), "text": v["articleBody"]} for k, v in sorted(gold.items())
          if len(v.get("articleBody", "").split()) > 150][:40]
    return zh, en


def _grams(text, n_words=13, n_chars=20):
    mode = mode_for(text)
    toks = [t for t in tokens(normalise(text, mode), mode) if t]
    n = n_chars if mode == CHAR else n_words
    if len(toks) < n:
        return {tuple(toks)}
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("decontam")
    zh, en = _corpus()
    (root / "in" / "mine").mkdir(parents=True)
    with open(root / "in" / "mine" / "docs.jsonl", "w", encoding="utf-8") as fh:
        for r in zh + en:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    # benchmark items: a sentence from some documents (zh: a 30-character stretch; en: 25 words),
    # one short Chinese item (12 characters, under n), and choices too short to count
    zh_items = [{"question": zh[i]["text"][40:70], "choices": ["A", "B"], "answer": "A"} for i in (3, 17, 41)]
    zh_items.append({"question": zh[25]["text"][100:112]})
    en_items = [{"question": " ".join(en[i]["text"].split()[60:85]), "answer": "yes"} for i in (2, 9)]
    (root / "ceval-mini.jsonl").write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in zh_items))
    (root / "mmlu-mini.jsonl").write_text("\n".join(json.dumps(x) for x in en_items))
    return root, zh, en, zh_items, en_items


def _expected(docs, items):
    """Documents that share an n-gram with an item (brute force, Python sets)."""
    hit = set()
    for item in items:
        for text in [item["question"]] + [c for c in item.get("choices", []) if len(c) >= 8]:
            grams = _grams(text)
            if len(next(iter(grams))) < 8:
                continue
            for d in docs:
                dg = _grams(d["text"]) if len(next(iter(grams))) in (13, 20) else None
                if dg is None:           # a short item: its whole token run anywhere in the document
                    toks = [t for t in tokens(normalise(d["text"], mode_for(d["text"])), mode_for(d["text"])) if t]
                    k = len(next(iter(grams)))
                    dg = {tuple(toks[i:i + k]) for i in range(len(toks) - k + 1)}
                if grams & dg:
                    hit.add(d["id"])
    return hit


def test_documents_with_benchmark_ngrams_are_removed_and_nothing_else(ray_address, setup):
    root, zh, en, zh_items, en_items = setup
    out = root / "out"
    res = run_stages(ray_address, root / "in", out, order=["extract", "decontaminate"],
                     decontaminate={"benchmarks": [str(root / "ceval-mini.jsonl"), str(root / "mmlu-mini.jsonl")]})
    assert not res.failed
    rejects = read_shards(out, "decontaminate", "rejects")
    kept = read_shards(out, "decontaminate")
    extracted = {d["id"]: d["warc_record_id"] for d in read_shards(out, "extract")}
    removed = {extracted[r["id"]]: r["reason"] for r in rejects}
    want_zh, want_en = _expected(zh, zh_items), _expected(en, en_items)
    print(f"removed {sorted(removed.items())}")
    assert {k for k, v in removed.items() if v == "decontaminate:ceval-mini"} == want_zh
    assert {k for k, v in removed.items() if v == "decontaminate:mmlu-mini"} == want_en
    assert len(want_zh) >= 4 and len(want_en) >= 2
    assert len(kept) + len(rejects) == len(zh) + len(en)


def test_cut_mode_drops_only_the_matching_lines(ray_address, setup):
    root, zh, en, zh_items, en_items = setup
    out = root / "out-cut"
    run_stages(ray_address, root / "in", out, order=["extract", "decontaminate"],
               decontaminate={"benchmarks": [str(root / "mmlu-mini.jsonl")], "mode": "cut"})
    kept = {d["warc_record_id"]: d for d in read_shards(out, "decontaminate")}
    for i, item in zip((2, 9), en_items):
        doc = kept[en[i]["id"]]
        assert doc["decontam_cut_lines"] >= 1
        assert not (_grams(item["question"]) & _grams(doc["text"]))
    assert sum(d["decontam_cut_lines"] > 0 for d in kept.values()) == len(_expected(en, en_items))


def test_without_benchmarks_every_document_passes(ray_address, setup):
    root, zh, en, _, _ = setup
    out = root / "out-none"
    run_stages(ray_address, root / "in", out, order=["extract", "decontaminate"])
    assert len(read_shards(out, "decontaminate")) == len(zh) + len(en)
    assert read_shards(out, "decontaminate", "rejects") == []
