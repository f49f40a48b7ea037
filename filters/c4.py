"""C4 rules (Raffel et al. 2020, "Exploring the Limits of Transfer Learning", section 2.2).

C4 keeps lines that end in terminal punctuation (not an ellipsis), have at least 3 words
and mention no javascript or cookie/terms policy; it drops pages where a line it would
keep says "lorem ipsum" or holds a curly bracket, and pages with fewer than 5 sentences
left. Tag, then select: the text is not rewritten; the signals say how much C4 would have
cut and the verdict uses what would remain.

Known differences from datatrove's C4QualityFilter (the reference compared by
tools/fidelity_datatrove.py), kept on purpose:
- closing curly quotes (” ’) count as end quotation marks, as C4's text says ("end
  quotation mark"); datatrove knows only the straight ones;
- sentences are counted with a documented abbreviation list (`count_sentences`), not
  NLTK's Punkt model; datatrove's default counts one sentence per kept line;
- `whole_page_checks: true` checks lorem ipsum and '{' on the whole page (curate < 0.2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from curate.filters.gopher import fail
from curate.filters.text import TextView

TERMINAL = (".", "!", "?", '"', "'", "”", "’")
ELLIPSES = ("...", "…")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies",
                  "use of cookies", "use cookies")
_SENTENCE_END = re.compile(r"[.!?]+(?=[\s\"'”’)\]]|$)")
_LAST_WORD = re.compile(r"([^\s\"'“‘(\[]+)$")
# A period after one of these (or after a single-letter initial, or followed by a lower-case
# word) does not end a sentence: "Mr. Garrett met Dr. Rudolph." is one sentence. C4 split
# with a sentence tokenizer that knows abbreviations; a short documented list does the
# same job here without a model. Words that often end sentences too (etc., a.m.) are left out.
ABBREVIATIONS = frozenset("""mr mrs ms messrs dr prof rev hon st sr jr gen col lt sgt capt cmdr adm
    gov sen rep pres supt mt ft vs vol fig figs eq approx dept est inc ltd co corp bros
    jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e cf al u.s u.k u.n ph.d""".split())


def count_sentences(line: str) -> int:
    """Sentence ends in a line: runs of . ! ? before a space, quote, bracket or the end,
    not counting a period that closes an abbreviation or an initial."""
    n = 0
    for m in _SENTENCE_END.finditer(line):
        if m.group() == ".":
            word = _LAST_WORD.search(line, 0, m.start())
            token = word.group(1).lower().rstrip(".") if word else ""
            rest = line[m.end():].lstrip(" \"'”’)]")
            numbered = token in ("no", "nos") and rest[:1].isdigit()       # "No. 5"
            if token in ABBREVIATIONS or numbered or (len(token) == 1 and token.isalpha()) or rest[:1].islower():
                continue
        n += 1
    return n


@dataclass
class C4Filter:
    name: ClassVar[str] = "c4"
    min_sentences: int = 5
    min_words_per_line: int = 3
    filter_lorem_ipsum: bool = True
    filter_curly_bracket: bool = True
    drop_ellipsis_lines: bool = True        # C4: a line ending in "..." is not a sentence end
    whole_page_checks: bool = False         # lorem ipsum / '{' anywhere, not only in kept lines
    policy_phrases: tuple = field(default=POLICY_PHRASES)

    def signal_names(self) -> list[str]:
        return ["c4_terminal_punct_lines_ratio", "c4_javascript_lines", "c4_policy_lines",
                "c4_kept_lines_ratio", "c4_sentences", "c4_lorem_ipsum", "c4_curly_bracket"]

    def signals(self, doc: TextView) -> dict[str, float]:
        lines = doc.lines
        terminal = js = policy = 0
        lorem = curly = False
        kept: list[str] = []
        for ln in lines:
            low = ln.lower()
            ends = ln.endswith(TERMINAL) and not (self.drop_ellipsis_lines and ln.endswith(ELLIPSES))
            terminal += ends
            has_js = "javascript" in low
            has_policy = any(p in low for p in self.policy_phrases)
            js += has_js
            policy += has_policy
            if ends and len(ln.split()) >= self.min_words_per_line:
                # C4 looks for lorem ipsum and '{' in the lines its line rules let through
                lorem = lorem or "lorem ipsum" in low
                curly = curly or "{" in ln
                if not has_js and not has_policy:
                    kept.append(ln)
        if self.whole_page_checks:
            lorem, curly = "lorem ipsum" in doc.text.lower(), "{" in doc.text
        n = len(lines) or 1
        return {
            "c4_terminal_punct_lines_ratio": terminal / n,
            "c4_javascript_lines": js,
            "c4_policy_lines": policy,
            "c4_kept_lines_ratio": len(kept) / n,
            "c4_sentences": sum(count_sentences(ln) for ln in kept),
            "c4_lorem_ipsum": float(lorem),
            "c4_curly_bracket": float(curly),
        }

    def thresholds(self) -> dict[str, list[float]]:
        return {"c4_sentences": [self.min_sentences]}

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        if self.filter_lorem_ipsum and s["c4_lorem_ipsum"]:
            return "c4:lorem_ipsum", "contains 'lorem ipsum'"
        if self.filter_curly_bracket and s["c4_curly_bracket"]:
            return "c4:curly_bracket", "contains '{'"
        if s["c4_sentences"] < self.min_sentences:
            return fail(self.name, "min_sentences", s["c4_sentences"], "<", self.min_sentences)
        return None
