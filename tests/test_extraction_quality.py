"""Main-text quality on the shared gold pages: not worse than plain trafilatura defaults."""
import gzip
import json
import re
from collections import Counter

import trafilatura

from conftest import DATA
from curate.stages.extract import ExtractSettings, extract_text
from curate.stages.extract.http import decode_html


def _words(s):
    return re.findall(r"\w+", s.lower())


def _f1(pred, ref):
    p, r = Counter(_words(pred)), Counter(_words(ref))
    common = sum((p & r).values())
    if not common:
        return 0.0
    prec, rec = common / sum(p.values()), common / sum(r.values())
    return 2 * prec * rec / (prec + rec)


def _scores(extract):
    gold = json.loads((DATA / "gold.json").read_text())
    truth = json.loads((DATA / "ground-truth.json").read_text())
    hit = total = 0
    for name, spec in gold.items():
        text = extract(gzip.open(DATA / "pages" / f"{name}.gz").read())
        for s in spec["with"]:
            total, hit = total + 1, hit + (s in text)
        for s in spec["without"]:
            total, hit = total + 1, hit + (s not in text)
    f1s = [_f1(extract(gzip.open(DATA / "pages" / f"{name}.gz").read()), spec["articleBody"])
           for name, spec in truth.items()]
    return hit / total, sum(f1s) / len(f1s)


def test_extraction_not_worse_than_trafilatura_defaults():
    settings = ExtractSettings()

    def ours(raw: bytes) -> str:
        html, _ = decode_html(raw, "")
        return extract_text(html, None, settings)

    def baseline(raw: bytes) -> str:
        return trafilatura.extract(raw) or ""

    ours_gold, ours_f1 = _scores(ours)
    base_gold, base_f1 = _scores(baseline)
    print(f"\nsnippet accuracy (gold.json, 322 pages): curate {ours_gold:.4f}  trafilatura default {base_gold:.4f}")
    print(f"article body word F1 (ground-truth.json, 58 pages): curate {ours_f1:.4f}  trafilatura default {base_f1:.4f}")
    assert ours_gold >= base_gold
    assert ours_f1 >= base_f1
