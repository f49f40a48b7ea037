"""Which Han script a Chinese text is written in: simplified (Hans) or traditional (Hant)."""
from __future__ import annotations

import re
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Share of Han characters that t2s conversion changes, above which a text is traditional.
# Traditional prose changes about a quarter of its characters; simplified prose almost none.
HANT_MIN_CHANGED = 0.05
SAMPLE_CHARS = 4000


@lru_cache(maxsize=1)
def _t2s():
    import opencc
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def han_script(text: str, sample: int = SAMPLE_CHARS) -> str | None:
    """'Hant', 'Hans', or None where the text has no Han characters."""
    head = text[:sample]
    han = _HAN.findall(head)
    if not han:
        return None
    converted = to_simplified("".join(han))
    changed = sum(a != b for a, b in zip(han, converted))
    return "Hant" if changed / len(han) > HANT_MIN_CHANGED else "Hans"
