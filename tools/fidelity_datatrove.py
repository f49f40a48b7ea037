"""Rule fidelity: curate's English quality filters against datatrove's, one filter at a time.

For each pair (gopher_quality / GopherQualityFilter, gopher_repetition /
GopherRepetitionFilter, c4 / C4QualityFilter, fineweb / FineWebQualityFilter) it runs both
on the same English documents, separately (not chained), and prints the 2x2 agreement
table and every disagreeing rule pair with its count and two examples.

Documents: the main text (curate's extraction) of every HTML page in
../shared/data/pages and of every HTML 200 response in ../shared/data/crawl, kept when
lid.176 says English at >= 0.65 (the langid stage's rule); texts are deduplicated within
each source (the crawl re-crawls pages, and was written from the same pages).

datatrove is an optional reference, never a dependency: install it in a separate virtual
environment beside curate (`pip install -e . datatrove spacy`, not its `processing`
extra, which replaces trafilatura and the fasttext module), then
    python -m tools.fidelity_datatrove [--data ../shared/data] [--examples 2]
"""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path


def english_documents(data: Path) -> dict[str, list[tuple[str, str]]]:
    """{source: [(name, text)]} for pages and crawl, English only, unique texts."""
    from curate.stages.extract import ExtractSettings, extract_text
    from curate.stages.extract.http import HttpError, decode_html, is_html, parse_response
    from curate.stages.extract.warc import WarcRecord, read_warc
    from curate.stages.langid.model import load_fasttext, resolve_lid_model
    model = load_fasttext(resolve_lid_model(None))
    s = ExtractSettings()
    seen: set[str] = set()      # unique texts within one source (the crawl re-crawls pages)

    def english(text: str) -> bool:
        labels, scores = model.predict(text.replace("\n", " "))
        return labels[0] == "__label__en" and scores[0] >= 0.65

    def keep(out, name, html, url):
        text = extract_text(html, url, s).strip()
        if text and text not in seen and english(text):
            seen.add(text)
            out.append((name, text))

    pages = []
    for entry in json.loads((data / "pages.json").read_text()):
        raw = gzip.decompress((data / entry["file"]).read_bytes())
        html, _ = decode_html(raw, "")
        keep(pages, entry["file"], html, entry.get("url"))
    crawl = []
    seen.clear()
    for warc in sorted((data / "crawl").glob("*/*.warc.gz")):
        with open(warc, "rb") as fh:
            for ev in read_warc(fh):
                if not isinstance(ev, WarcRecord) or ev.type != "response":
                    continue
                try:
                    resp = parse_response(ev.block, 2_000_000)
                except HttpError:
                    continue
                if resp.status == 200 and is_html(resp):
                    html, _ = decode_html(resp.body, resp.headers.get("content-type", ""))
                    keep(crawl, ev.headers.get("warc-target-uri", "?"), html, ev.headers.get("warc-target-uri"))
    return {"pages": pages, "crawl": crawl}


def pairs():
    from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                            GopherRepetitionFilter)
    from curate.filters import FILTERS
    return [("gopher_quality", FILTERS["gopher_quality"](), GopherQualityFilter()),
            ("gopher_repetition", FILTERS["gopher_repetition"](), GopherRepetitionFilter()),
            ("c4", FILTERS["c4"](), C4QualityFilter()),
            ("fineweb", FILTERS["fineweb"](), FineWebQualityFilter())]


def curate_verdict(f, text: str) -> str | None:
    from curate.filters.text import TextView
    v = f.verdict(f.signals(TextView(text)))
    return v[0].split(":", 1)[1] if v else None


def datatrove_verdict(f, text: str, name: str) -> str | None:
    from datatrove.data import Document
    doc = Document(text=text, id=name)
    r = f.filter(doc)
    if r is True or (isinstance(r, tuple) and r[0]):
        return None
    return r[1] if isinstance(r, tuple) else "rejected"


def compare(docs: list[tuple[str, str]], examples: int) -> list[dict]:
    rows = []
    for name, ours, theirs in pairs():
        table = Counter()
        disagree: dict[tuple, list] = defaultdict(list)
        for doc_name, text in docs:
            a, b = curate_verdict(ours, text), datatrove_verdict(theirs, text, doc_name)
            table[(a is None, b is None)] += 1
            if (a is None) != (b is None):
                disagree[(a or "keep", b or "keep")].append(doc_name)
        rows.append({"filter": name, "both_keep": table[(True, True)], "both_reject": table[(False, False)],
                     "curate_only_rejects": table[(False, True)], "datatrove_only_rejects": table[(True, False)],
                     "disagreements": {f"curate {a} / datatrove {b}": (len(v), v[:examples])
                                       for (a, b), v in sorted(disagree.items(), key=lambda kv: -len(kv[1]))}})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--examples", type=int, default=2)
    ap.add_argument("--json", help="also write the tables here")
    args = ap.parse_args(argv)
    try:
        import datatrove  # noqa: F401
    except ImportError:
        raise SystemExit("datatrove is not installed here: see this script's docstring") from None
    sources = english_documents(Path(args.data))
    report = {}
    for source, docs in sources.items():
        print(f"\n== {source}: {len(docs)} English documents ==")
        print(f"{'filter':18s} {'agree':>6s} {'both keep':>9s} {'both rej':>8s} {'curate-only rej':>15s} "
              f"{'datatrove-only rej':>18s}")
        rows = compare(docs, args.examples)
        report[source] = rows
        for r in rows:
            agree = (r["both_keep"] + r["both_reject"]) / max(1, len(docs))
            print(f"{r['filter']:18s} {agree:6.1%} {r['both_keep']:9d} {r['both_reject']:8d} "
                  f"{r['curate_only_rejects']:15d} {r['datatrove_only_rejects']:18d}")
        for r in rows:
            for what, (n, ex) in r["disagreements"].items():
                print(f"  {r['filter']}: {what}: {n}  e.g. {', '.join(ex)}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
