"""Script evidence: which Han script a Chinese text uses (Hans / Hant), whether a CJK text
is Chinese or Japanese (kana), and the traditional -> simplified normalisation."""
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


@lru_cache(maxsize=1)
def _tw2s():
    import opencc
    return opencc.OpenCC("tw2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


# Variants that OpenCC's tables keep although Simplified text writes them otherwise: 牠 (it,
# of animals) and 妳 (you, to a woman) are Taiwan usage that mainland text writes 它 and 你.
VARIANTS = str.maketrans({"牠": "它", "妳": "你"})


def to_simplified_all(text: str) -> str:
    """The most complete traditional -> simplified mapping OpenCC offers: tw2s (t2s plus
    Taiwan's character variants: 著 -> 着 where it is the particle, 裏/裡 -> 里, ...), then
    the variants above. On the 500 Traditional/Simplified Wikipedia pairs of the shared
    data it makes 459 sentences identical to their Simplified side (t2s: 445); the rest
    differ in quotes and punctuation, which dedup's normalisation removes anyway."""
    return _tw2s().convert(text).translate(VARIANTS)


_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LETTER = re.compile(r"[^\W\d_]")
_KANA = re.compile(r"[぀-ゟ゠-ヿㇰ-ㇿｦ-ﾝ]")
_HAN = re.compile(r"[㐀-䶿一-鿿豈-﫿]")
# kana share of the CJK characters above which a text labelled zh is Japanese: Japanese
# prose is 30-70% kana; Chinese has none (a stray の in a shop name stays under this)
JA_MIN_KANA_SHARE = 0.05


# Labels lid.176 gives to Han-script text: Chinese, Japanese, and the Wu and Cantonese
# varieties it also predicts for standard written Chinese (short sentences especially).
HAN_LABELS = ("zh", "ja", "wuu", "yue")
# Characters of written Cantonese that standard written Chinese does not use.
CANTONESE_MARKERS = frozenset("嘅咗唔冇哋佢啲嚟喺嗰咁乜嘢")


def cjk_language(label: str, text: str) -> str:
    """Correct fastText's confusions among Han-script labels with script evidence.
    Japanese text almost always holds kana; Chinese never does. A text labelled ja (or
    wuu, or yue without Cantonese-only characters) with Han characters and no kana is
    Chinese; one labelled zh with a real share of kana is Japanese, one with a real share
    of Hangul Korean. Other labels pass."""
    if label not in HAN_LABELS:
        return label
    kana = len(_KANA.findall(text))
    han = len(_HAN.findall(text))
    hangul = len(_HANGUL.findall(text))
    if hangul >= 2 and hangul >= JA_MIN_KANA_SHARE * (hangul + han + kana):
        return "ko"         # lid.176 labels some short Korean zh (너무 두려워요.: zh 0.83)
    if label == "yue" and any(c in CANTONESE_MARKERS for c in text):
        return "yue"
    if label == "zh" or kana:
        return "ja" if kana >= 2 and kana >= JA_MIN_KANA_SHARE * (kana + han) else label
    return "zh" if han else label


# Share of a text's letters that are Han characters from which the script decides that it
# is Chinese, whatever fastText says. lid.176 reads short, all-Han sentences as Serbian,
# Basque, Hindi, Vietnamese ... (18 of 1,364 held-out Chinese sentences; on the shared
# data 4 of 500 UD Simplified sentences, 2 of 500 Traditional ones, all 100% Han). Other
# languages' text quoting Han words stays far below (at most 4 of 34 letters in the
# shared lingua sentences of 70 languages); Chinese with a few Latin names sits at 40-60%
# and is left to fastText.
HAN_DOMINANT_SHARE = 0.9


def han_dominant(text: str, sample: int = SAMPLE_CHARS) -> float | None:
    """The Han share of the letters when the text is almost all Han characters with no
    real share of kana (Japanese) or Hangul (Korean): then it is Chinese. Else None."""
    head = text[:sample]
    han = len(_HAN.findall(head))
    if not han:
        return None
    kana, hangul = len(_KANA.findall(head)), len(_HANGUL.findall(head))
    for other in (kana, hangul):
        if other >= 2 and other >= JA_MIN_KANA_SHARE * (other + han):
            return None
    share = han / max(len(_LETTER.findall(head)), 1)
    return share if share >= HAN_DOMINANT_SHARE else None


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
