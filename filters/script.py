"""Which Han script a Chinese text is written in: simplified (Hans) or traditional (Hant)."""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

_HAN_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
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
    han = "".join(_HAN_RUNS.findall(text[:sample]))
    if not han:
        return None
    converted = to_simplified(han)
    if len(converted) == len(han):        # the usual case: compare code points in bulk
        changed = int((np.frombuffer(han.encode("utf-32-le"), np.uint32)
                       != np.frombuffer(converted.encode("utf-32-le"), np.uint32)).sum())
    else:                                 # a phrase changed length: compare position by position
        changed = sum(a != b for a, b in zip(han, converted))
    return "Hant" if changed / len(han) > HANT_MIN_CHANGED else "Hans"
