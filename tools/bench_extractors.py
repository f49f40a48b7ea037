"""Extractors side by side: pages per CPU-second and quality on every gold set, English and
Chinese apart, for trafilatura (fallbacks on and off) and resiliparse.

Quality measures (the same page bytes, decoded by curate's decode_body, for every extractor):
- gold.json snippets: share of must-contain / must-not-contain snippets right (pages
  labelled en or zh in pages.json);
- ground-truth.json article bodies (English news): mean word-level F1;
- extraction-zh (Chinese, hand-copied gold): mean character-level F1;
- extraction-readability, extraction-newspaper4k: mean word F1 (English) or character F1
  (Chinese) against the expected article text.
Speed: pages per CPU-second (process time, one process) over every page of those sets,
the least of --repeat runs.

    python -m tools.bench_extractors [--repeat 3]        (resiliparse: pip install -e '.[fast]')
"""
from __future__ import annotations

import argparse
import gzip
import html as htmllib
import json
import re
import time
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_TAG = re.compile(r"<[^>]+>")


def _words(s):
    return re.findall(r"\w+", s.lower())


def _chars(s):
    return [c for c in s if not c.isspace()]


def _f1(pred: str, ref: str, unit) -> float:
    p, r = Counter(unit(pred)), Counter(unit(ref))
    common = sum((p & r).values())
    if not common:
        return 0.0
    prec, rec = common / sum(p.values()), common / sum(r.values())
    return 2 * prec * rec / (prec + rec)


def load_sets() -> dict[str, list[tuple[str, bytes, str, str]]]:
    """{measure: [(lang, page bytes, reference, kind)]}."""
    sets: dict[str, list] = {"snippets": [], "articles": [], "zh-gold": [], "readability": [], "newspaper4k": []}
    langs = {Path(e["file"]).name[:-3]: e.get("lang") for e in json.loads((DATA / "pages.json").read_text())}
    from curate.stages.langid import identify
    from curate.stages.langid.model import load_fasttext, resolve_lid_model
    model = load_fasttext(resolve_lid_model(None))
    for name, spec in json.loads((DATA / "gold.json").read_text()).items():
        # pages.json knows few of these pages' languages: the gold snippets tell the rest
        lang = langs.get(name) or identify(model, [" ".join(spec["with"]) or name])[0][0]
        if lang in ("en", "zh"):
            sets["snippets"].append((lang, gzip.open(DATA / "pages" / f"{name}.gz").read(), spec, "snippets"))
    for name, spec in json.loads((DATA / "ground-truth.json").read_text()).items():
        sets["articles"].append(("en", gzip.open(DATA / "pages" / f"{name}.gz").read(), spec["articleBody"], "words"))
    for name, spec in json.loads((DATA / "extraction-zh" / "gold.json").read_text()).items():
        sets["zh-gold"].append(("zh", gzip.open(DATA / "extraction-zh" / "pages" / f"{name}.gz").read(),
                                spec["content"], "chars"))
    meta = json.loads((DATA / "extraction-readability" / "expected-metadata.json").read_text())
    for page in sorted((DATA / "extraction-readability" / "pages").glob("*.html.gz")):
        lang = (meta.get(page.name[:-3], {}).get("lang") or "en").lower()
        lang = "zh" if lang.startswith("zh") else "en" if lang.startswith("en") else lang
        if lang not in ("en", "zh"):
            continue
        expected = gzip.open(DATA / "extraction-readability" / "expected" / page.name).read().decode("utf-8", "replace")
        ref = htmllib.unescape(_TAG.sub(" ", expected))
        sets["readability"].append((lang, gzip.open(page).read(), ref, "chars" if lang == "zh" else "words"))
    for name, spec in json.loads((DATA / "extraction-newspaper4k" / "gold.json").read_text()).items():
        lang = spec.get("language") or ""
        if lang in ("en", "zh"):
            sets["newspaper4k"].append((lang, gzip.open(DATA / "extraction-newspaper4k" / "pages" / f"{name}.gz").read(),
                                        spec["text"], "chars" if lang == "zh" else "words"))
    return sets


def evaluate(settings, sets, repeat: int) -> dict:
    from curate.stages.extract import extract_text
    from curate.stages.extract.http import decode_body
    pages = [p for items in sets.values() for p in items]
    htmls = [decode_body(raw, "")[0] for _, raw, _, _ in pages]
    best = None
    outputs = None
    for _ in range(repeat):
        t0 = time.process_time()
        outs = [extract_text(h, None, settings) for h in htmls]
        took = time.process_time() - t0
        if best is None or took < best:
            best, outputs = took, outs
    scores: dict[tuple[str, str], list[float]] = {}
    for (lang, _, ref, kind), out, (measure, _) in zip(pages, outputs, [(m, i) for m, items in sets.items()
                                                                        for i in items]):
        if kind == "snippets":
            hit = sum(s in out for s in ref["with"]) + sum(s not in out for s in ref["without"])
            val = hit / max(1, len(ref["with"]) + len(ref["without"]))
        else:
            val = _f1(out, ref, _chars if kind == "chars" else _words)
        scores.setdefault((measure, lang), []).append(val)
    return {"pages_per_cpu_s": len(pages) / best, "pages": len(pages),
            "scores": {k: sum(v) / len(v) for k, v in scores.items()}, "n": {k: len(v) for k, v in scores.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from curate.stages.extract import ExtractSettings
    configs = [("trafilatura", ExtractSettings()),
               ("trafilatura, no fallbacks", ExtractSettings(fallback_extractors=False))]
    try:
        import resiliparse  # noqa: F401
        configs.append(("resiliparse", ExtractSettings(extractor="resiliparse")))
    except ImportError:
        print("resiliparse not installed (pip install -e '.[fast]'): left out")
    sets = load_sets()
    results = {name: evaluate(s, sets, args.repeat) for name, s in configs}
    keys = sorted({k for r in results.values() for k in r["scores"]})
    head = f"{'extractor':27s} {'pages/CPU-s':>11s} " + " ".join(f"{m[:11] + ' ' + l:>14s}" for m, l in keys)
    print(head)
    for name, r in results.items():
        print(f"{name:27s} {r['pages_per_cpu_s']:11.1f} " + " ".join(f"{r['scores'].get(k, float('nan')):14.4f}"
                                                                     for k in keys))
    first = next(iter(results.values()))
    print("pages per measure: " + ", ".join(f"{m} {l}: {first['n'][(m, l)]}" for m, l in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
