"""A language pre-filter in front of the main-text extractor.

More than half of Common Crawl's pages are neither English nor Chinese, and every one of
them would pay for trafilatura only to be dropped by langid. Here a cheap text view of
the page (tags, scripts and styles stripped by regular expressions, entities unescaped,
the first few thousand characters of the body) goes through the same fastText model and
the same zh/ja script correction as the langid stage. A page is rejected before
extraction (`extract:prefilter_lang:<code>`) only when it is confidently another
language: fastText's top label is not a kept language, its score is at least
`prefilter_threshold`, the kept languages' own probability is tiny, and the page's
`<html lang>` attribute does not name a kept language.
"""
from __future__ import annotations

import html as htmllib
import re
from functools import lru_cache

_DROP = re.compile(r"<(script|style|noscript|template|svg|head)\b[^>]*>.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_HTML_LANG = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3})", re.I)
VIEW_CHARS = 3000
KEPT_MASS_MAX = 0.02        # the kept languages' probability must be below this to reject


def cheap_text(html: str, max_chars: int = VIEW_CHARS) -> str:
    body = _DROP.sub(" ", html[:400_000])
    text = htmllib.unescape(_TAG.sub(" ", body))
    return _SPACE.sub(" ", text).strip()[:max_chars]


def html_lang(html: str) -> str | None:
    m = _HTML_LANG.search(html[:5000])
    return m.group(1).lower() if m else None


@lru_cache(maxsize=2)
def _model(model_path: str | None):
    from curate.stages.langid.model import load_fasttext, resolve_lid_model
    return load_fasttext(resolve_lid_model(model_path))


def judge(html: str, keep: list[str], threshold: float, model_path: str | None = None) -> tuple[str, float] | None:
    """None to extract the page; (language, score) when it is confidently not a kept one."""
    from curate.filters.script import HAN_LABELS, cjk_language
    hint = html_lang(html)
    if hint in keep or (hint in ("zh", "ja", "yue") and "zh" in keep):
        return None
    text = cheap_text(html)
    if len(text) < 20:
        return None                     # too little to judge: the extractor decides
    labels, probs = _model(model_path).predict(text, k=5)
    p = {lab.replace("__label__", ""): float(x) for lab, x in zip(labels, probs)}
    top = labels[0].replace("__label__", "")
    lang = cjk_language(top, text)
    if lang in keep:
        return None
    kept_mass = sum(p.get(k, 0.0) for k in keep)
    if "zh" in keep and lang in HAN_LABELS:
        kept_mass += sum(p.get(k, 0.0) for k in HAN_LABELS if k != "ja")
    if p[top] >= threshold and kept_mass < KEPT_MASS_MAX:
        return lang, p[top]
    return None
