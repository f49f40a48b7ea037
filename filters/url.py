"""URL and domain filter, after FineWeb's URLFilter (datatrove `URLFilter`, built on the
C4/RefinedWeb idea): a page is rejected when its domain is on a block list, when its URL
holds a banned word, or when it holds several "soft" words.

The block lists are the user's (`blocked_domains`, and one-per-line files in
`blocked_domain_files`); curate ships no domain list. The built-in word lists are small
and cover what reached the final corpus in real Common Crawl runs: adult and gambling
terms in English, pinyin and Han. Banned words match whole URL tokens (split on
non-alphanumerics) for Latin words and substrings for Han words; soft words count
toward `max_soft_words`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from curate.filters.text import TextView

BANNED_WORDS = frozenset("""porn porno pornhub xxx xvideos xnxx xhamster redtube youporn hentai nsfw
    milf camgirl camgirls escort escorts bdsm fetish nude nudes
    casino casinos gambling baccarat roulette slots betting sportsbook
    seqing huangse chengren luanlun yinse qingse seqingwang duchang bocai baijiale
    liuhecai shishicai yulecheng zhenrenyule""".split())
BANNED_HAN = ("色情", "成人影", "黄色网", "av女优", "乱伦", "博彩", "赌场", "百家乐", "六合彩", "时时彩",
              "娱乐城", "真人娱乐", "赌博")
SOFT_WORDS = frozenset("""sex sexy adult xxx18 girls hot lingerie bet poker lottery caipiao
    dubo sese meinv mm""".split())
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass
class UrlFilter:
    name: ClassVar[str] = "url"
    blocked_domains: list = field(default_factory=list)      # example.com blocks it and its subdomains
    blocked_domain_files: list = field(default_factory=list)  # text files, one domain per line (# comments)
    banned_words: frozenset = field(default=BANNED_WORDS)
    banned_han: tuple = field(default=BANNED_HAN)
    soft_words: frozenset = field(default=SOFT_WORDS)
    max_soft_words: int = 2                                   # reject at 3 or more (FineWeb: soft_word_threshold)

    def __post_init__(self):
        domains = {d.strip().lower().lstrip(".") for d in self.blocked_domains if d.strip()}
        for f in self.blocked_domain_files:
            path = Path(f).expanduser()
            if not path.is_file():
                raise ValueError(f"blocked_domain_files: {path} does not exist")
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip().lower().lstrip(".")
                if line:
                    domains.add(line)
        self._domains = frozenset(domains)

    def signal_names(self) -> list[str]:
        return ["url_blocked_domain", "url_banned_words", "url_soft_words"]

    def signals(self, doc: TextView) -> dict[str, float]:
        url = (doc.url or "").strip()
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        labels = host.split(".")
        blocked = any(".".join(labels[i:]) in self._domains for i in range(len(labels)))
        low = unquote(url).lower()
        tokens = _TOKEN.findall(low)
        banned = sum(t in self.banned_words for t in tokens) + sum(w in low for w in self.banned_han)
        soft = sum(t in self.soft_words for t in tokens)
        return {"url_blocked_domain": float(blocked), "url_banned_words": banned, "url_soft_words": soft}

    def verdict(self, s: dict[str, float]) -> tuple[str, str] | None:
        if s["url_blocked_domain"]:
            return "url:blocked_domain", "domain on the block list"
        if s["url_banned_words"]:
            return "url:banned_word", f"banned_words={s['url_banned_words']:g}"
        if s["url_soft_words"] > self.max_soft_words:
            return "url:soft_words", f"soft_words={s['url_soft_words']:g} > {self.max_soft_words}"
        return None
