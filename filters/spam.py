"""Chinese content spam: gambling, lottery and adult terms per 1,000 characters.

Chinese spam pages (private lottery, online casinos, adult fiction) pass the quality
rules: they are fluent, long and well punctuated. What gives them away is vocabulary
that ordinary text almost never uses at that density. The signal counts occurrences of
a small list of multi-character terms (no single characters: 骚 is also 骚扰, harassment;
no everyday words: 黄色 is also yellow) per 1,000 Han characters. The threshold 3.0 is
set on the shared data (tests/test_filters.py prints the figures): it rejects the
gambling, lottery and adult-fiction pages of the real Common Crawl excerpt and almost
no People's Daily article or user review.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from curate.filters.text import TextView

SPAM_TERMS = (
    # gambling, casino and Hong Kong "mark six" lottery lingo
    "博彩", "赌场", "赌博网", "百家乐", "六合彩", "时时彩", "北京赛车", "pk10", "老虎机", "娱乐城",
    "真人视讯", "体育投注", "网上投注", "下注", "开奖结果", "开奖现场", "开奖记录", "特码", "平特", "一肖",
    "三中三", "二中二", "跑狗", "心水", "马会", "报码", "白小姐", "曾道人", "图库", "彩金", "返水",
    "注册送", "开户送", "线上娱乐", "电子游艺", "赌球", "菠菜网", "葡京", "威尼斯人", "金沙娱乐",
    "包赔", "计划员",
    # adult
    "色情", "成人小说", "成人电影", "成人视频", "成人网站", "做爱", "性爱", "乱伦", "人妻", "熟女",
    "约炮", "一夜情", "裸聊", "无码", "情色", "偷拍", "偷情", "巨乳", "美乳", "丝袜美腿", "少妇",
    "淫荡", "淫乱", "骚货", "黄片", "毛片", "三级片", "av女优",
)
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass
class ChineseSpamFilter:
    name: ClassVar[str] = "zh_spam"
    max_terms_per_1k: float = 3.0
    min_han: int = 50                   # shorter texts: too few characters to judge a density
    terms: tuple = field(default=SPAM_TERMS)

    def __post_init__(self):
        latin = [t for t in self.terms if t.isascii()]
        han = [t for t in self.terms if not t.isascii()]
        # Latin terms as whole words (av, not "available"), Han terms as substrings
        parts = [re.escape(t) for t in sorted(han, key=len, reverse=True)]
        parts += [rf"(?<![a-z0-9]){re.escape(t)}(?![a-z0-9])" for t in latin]
        self._pattern = re.compile("|".join(parts)) if parts else None

    def signal_names(self) -> list[str]:
        return ["zh_spam_terms_per_1k"]

    def signals(self, doc: TextView) -> dict[str, float]:
        han = doc.han_count
        if han < self.min_han or self._pattern is None:
            return {"zh_spam_terms_per_1k": 0.0}
        hits = len(self._pattern.findall(doc.text.lower()))
        return {"zh_spam_terms_per_1k": 1000 * hits / han}

    def thresholds(self) -> dict[str, list[float]]:
        return {"zh_spam_terms_per_1k": [self.max_terms_per_1k]}

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        if s["zh_spam_terms_per_1k"] > self.max_terms_per_1k:
            return "zh_spam:term_density", f"terms_per_1k={s['zh_spam_terms_per_1k']:.3g} > {self.max_terms_per_1k:g}"
        return None
