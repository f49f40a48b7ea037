"""Make a small multi-dump demo crawl as real .warc.gz files, deterministically by seed.

Text comes from the project's own templates and word lists (English and Chinese, a few
German and French pages for language ID): article-like pages wrapped in navigation,
sidebars and footers; keyword spam and very short pages; PNG, PDF and 404 responses;
and pages re-crawled in later dumps as exact copies and as near copies (new date line,
one edited sentence). Each page is a request/response/metadata triple, as in Common Crawl.

    python -m pipeline.demo_corpus OUT_DIR [--seed 0] [--pages-per-dump 60]
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

DUMPS = [("CC-MAIN-2024-10", datetime(2024, 2, 20, tzinfo=timezone.utc)),
         ("CC-MAIN-2024-18", datetime(2024, 4, 12, tzinfo=timezone.utc)),
         ("CC-MAIN-2024-26", datetime(2024, 6, 12, tzinfo=timezone.utc))]

EN_SUBJECTS = ["The city council", "A group of local teachers", "The regional health board",
               "Researchers at the state university", "The small farming cooperative",
               "Volunteers from the river trust", "The new library director", "Most residents",
               "The transport authority", "A team of young engineers", "The museum's curators",
               "Several shop owners on Main Street", "The school board", "Local fishermen"]
EN_VERBS = ["approved", "announced", "questioned", "presented", "funded", "studied", "rejected",
            "welcomed", "reviewed", "expanded", "described", "proposed", "delayed", "tested"]
# Objects and clauses are built from parts so that an article never repeats a phrase
# (real articles pass the Gopher repetition rules; a template corpus must too).
EN_ACTS = ["repair", "rebuild", "close", "expand", "modernize", "inspect", "repaint", "move",
           "sell", "protect", "clean up", "light"]
EN_ADJS = ["old", "northern", "wooden", "historic", "main", "small", "busy", "empty", "flooded",
           "narrow", "southern", "new"]
EN_PLACES = ["bridge", "library", "harbor", "station", "market hall", "school gym", "swimming pool",
             "town hall", "fire station", "bus depot", "community garden", "parking garage"]
EN_AREAS = ["old town", "harbor district", "eastern suburbs", "university quarter", "river valley",
            "industrial zone", "city center", "western hills"]
EN_TOPICS = ["water quality", "bird populations", "traffic noise", "air pollution", "school meals",
             "youth sports", "rental prices", "summer tourism", "night buses", "recycling rates",
             "library hours", "flood defenses"]
EN_OBJECT_FORMS = ["a plan to {act} the {adj} {place}", "the cost of the {adj} {place} in the {area}",
                   "new rules for the {place} in the {area}", "a study of {topic} in the {area}",
                   "the budget for {topic} next year", "a report on {topic} and the {adj} {place}"]
EN_CLAUSES = ["the debate lasted well into the evening", "the old system had become too expensive",
              "some members asked for more time to read the details", "the first work could begin in spring",
              "critics said the money could be spent in better ways", "families wanted more choices in summer",
              "neighbors had asked for it since last year", "the weather kept many people at home",
              "the state promised to cover half of the cost", "two earlier proposals had failed",
              "engineers found cracks in the foundations", "the contract with the old supplier ends soon",
              "volunteers collected signatures for months", "the numbers from last winter were worrying",
              "a local firm offered to do the work at cost", "students presented their own survey",
              "the mayor called it a matter of safety", "nobody could remember a similar case",
              "the council wants a decision before the elections", "prices for materials have gone up"]
EN_CONJ = ["after", "because", "although", "while", "since", "even though", "now that", "once"]
EN_QUOTES = ["\"We have waited a long time for this, and it is good news for everyone,\" said one of the organizers.",
             "\"It is not perfect, but it is a start,\" a spokesperson told reporters on Tuesday.",
             "\"The numbers show that the change is working,\" the report concluded.",
             "\"People want to know what happens next, and we owe them a clear answer,\" she said."]
EN_TITLES = ["Council backs {} plan", "What the new {} means for residents", "A closer look at the {} project",
             "Town debates the future of the {}", "Volunteers lead the {} effort"]
EN_TITLE_WORDS = ["bridge", "library", "harbor", "river", "bus", "school", "museum", "park", "market"]

ZH_SUBJECTS = ["市政府", "当地学校的老师们", "省卫生部门", "大学的研究人员", "一家农业合作社",
               "河道保护志愿者", "新上任的图书馆馆长", "大多数居民", "交通管理部门", "一群年轻的工程师",
               "博物馆的工作人员", "街道上的商户", "教育委员会", "沿海的渔民"]
ZH_VERBS = ["批准了", "宣布了", "讨论了", "提出了", "资助了", "研究了", "否决了", "审议了",
            "扩大了", "介绍了", "推迟了", "测试了", "公布了", "调整了"]
ZH_ACTS = ["修缮", "重建", "关闭", "扩建", "改造", "检查", "粉刷", "搬迁", "出售", "保护", "清理", "照亮"]
ZH_ADJS = ["老旧的", "北边的", "木制的", "有历史的", "主要的", "小型的", "繁忙的", "空置的", "被淹的",
           "狭窄的", "南边的", "新建的"]
ZH_PLACES = ["桥梁", "图书馆", "港口", "车站", "菜市场", "学校体育馆", "游泳池", "市政厅", "消防站",
             "公交场站", "社区花园", "停车楼"]
ZH_AREAS = ["老城区", "港区", "东部郊区", "大学城", "河谷地带", "工业园区", "市中心", "西山片区"]
ZH_TOPICS = ["水质", "鸟类数量", "交通噪音", "空气污染", "学校午餐", "青少年体育", "房屋租金",
             "夏季旅游", "夜间公交", "垃圾回收率", "图书馆开放时间", "防洪设施"]
ZH_OBJECT_FORMS = ["{act}{adj}{place}的计划", "{area}{adj}{place}的费用", "{area}{place}的新规定",
                   "关于{area}{topic}的研究", "明年{topic}方面的预算", "一份关于{topic}和{place}的报告"]
ZH_CLAUSES = ["讨论一直持续到深夜", "旧系统的维护成本已经太高", "有些委员希望有更多时间阅读细节",
              "第一阶段工程可能在春天开始", "批评者认为这笔钱可以用在更好的地方", "许多家庭希望暑假有更多选择",
              "附近居民从去年起就提出了要求", "恶劣天气让很多人留在家里", "省里承诺承担一半费用",
              "此前两个方案都没有通过", "工程师在地基里发现了裂缝", "与原供应商的合同即将到期",
              "志愿者花了几个月收集签名", "去年冬天的数据令人担忧", "一家本地企业愿意按成本价施工",
              "学生们展示了他们自己的调查", "市长称这是一个安全问题", "谁也想不起以前有过类似情况",
              "议会希望在选举前作出决定", "建筑材料的价格一直在上涨"]
ZH_CONJ = ["因为", "虽然", "由于", "尽管", "随着", "鉴于"]
ZH_QUOTES = ["一位组织者说：“我们等待了很久，这对每个人来说都是好消息。”",
             "一位发言人周二对记者表示：“这并不完美，但这是一个开始。”",
             "报告的结论指出：“数据表明，这项改变正在发挥作用。”",
             "她说：“人们想知道接下来会发生什么，我们应该给他们一个清楚的答复。”"]
ZH_TITLES = ["市议会支持{}计划", "新的{}对居民意味着什么", "深入了解{}项目", "小镇讨论{}的未来"]
ZH_TITLE_WORDS = ["老桥", "图书馆", "港口", "河道", "公交", "学校", "博物馆", "公园", "市场"]

DE_SENTENCES = ["Der Stadtrat hat am Dienstag einen neuen Plan für die Sanierung der alten Brücke beschlossen.",
                "Viele Anwohner hatten sich seit Jahren eine bessere Verbindung in die Innenstadt gewünscht.",
                "Die Arbeiten sollen im Frühjahr beginnen und etwa zwei Jahre dauern.",
                "Kritiker meinen, dass das Geld an anderer Stelle dringender gebraucht würde.",
                "Die Verwaltung will die Bürger in den kommenden Wochen ausführlich informieren."]
FR_SENTENCES = ["Le conseil municipal a approuvé mardi un nouveau projet pour rénover le vieux pont.",
                "De nombreux habitants réclamaient depuis longtemps une meilleure liaison avec le centre-ville.",
                "Les travaux devraient commencer au printemps et durer environ deux ans.",
                "Selon certains élus, cet argent aurait pu être utilisé de manière plus utile.",
                "La mairie organisera plusieurs réunions publiques dans les semaines à venir."]
SPAM_WORDS = ["cheap", "watches", "buy", "now", "best", "price", "discount", "replica", "free",
              "shipping", "casino", "bonus", "win", "online", "pills"]
SITES_EN = ["riverside-gazette.example.com", "valleynews.example.org", "northcounty-herald.example.net",
            "harborweekly.example.com", "citydesk.example.org"]
SITES_ZH = ["news.example.cn", "daily.example.com.cn", "city.example.cn"]
SITES_OTHER = ["zeitung.example.de", "journal.example.fr"]
SPAM_SITES = ["best-deals-4u.example.biz", "win-big.example.info"]


@dataclass
class Page:
    url: str
    html: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    kind: str = "article"               # article / spam / short / other-lang / png / pdf / 404
    lang: str | None = None
    origin: str = ""                     # page id this one copies (re-crawls)
    recrawl: str = "new"                 # new / exact / near
    extra: dict = field(default_factory=dict)


class _Bag:
    """Draw without replacement, refilling when empty: an article reuses a part only
    after it has used all the others."""

    def __init__(self, items, rng: random.Random):
        self.items, self.rng, self.left = list(items), rng, []

    def draw(self):
        if not self.left:
            self.left = self.rng.sample(self.items, len(self.items))
        return self.left.pop()


def _sentences(rng: random.Random, lang: str, n: int) -> list[str]:
    """n sentences with no object, clause or quote used twice."""
    en = lang == "en"
    parts = (dict(act=EN_ACTS, adj=EN_ADJS, place=EN_PLACES, area=EN_AREAS, topic=EN_TOPICS) if en
             else dict(act=ZH_ACTS, adj=ZH_ADJS, place=ZH_PLACES, area=ZH_AREAS, topic=ZH_TOPICS))
    bags = {k: _Bag(v, rng) for k, v in parts.items()}
    subjects = _Bag(EN_SUBJECTS if en else ZH_SUBJECTS, rng)
    forms = _Bag(EN_OBJECT_FORMS if en else ZH_OBJECT_FORMS, rng)
    clauses = rng.sample(EN_CLAUSES if en else ZH_CLAUSES, k=min(n, 20))
    quotes = rng.sample(EN_QUOTES if en else ZH_QUOTES, k=2)
    out = []
    while len(out) < n:
        obj = forms.draw().format(**{k: b.draw() for k, b in bags.items()})
        if en:
            sent = f"{subjects.draw()} {rng.choice(EN_VERBS)} {obj}"
            sent += f" {rng.choice(EN_CONJ)} {clauses.pop()}." if clauses and rng.random() < 0.7 else "."
        else:
            sent = f"{subjects.draw()}{rng.choice(ZH_VERBS)}{obj}"
            sent += f"，{rng.choice(ZH_CONJ)}{clauses.pop()}。" if clauses and rng.random() < 0.7 else "。"
        out.append(sent)
        if quotes and rng.random() < 0.12:
            out.append(quotes.pop())
    return out


def _paragraphs(rng: random.Random, lang: str) -> list[str]:
    sents = _sentences(rng, lang, rng.randint(10, 16))
    paras, i = [], 0
    while i < len(sents):
        k = rng.randint(3, 5)
        paras.append((" " if lang == "en" else "").join(sents[i:i + k]))
        i += k
    return paras


def _wrap(title: str, date_line: str, paras: list[str], site: str, lang: str, rng: random.Random) -> bytes:
    """An article inside the navigation, sidebar and footer boilerplate of a news site."""
    nav_words = {"en": ["Home", "News", "Sports", "Weather", "Opinion", "Contact"],
                 "zh": ["首页", "新闻", "体育", "天气", "评论", "联系我们"],
                 "de": ["Startseite", "Nachrichten", "Sport", "Wetter", "Kontakt"],
                 "fr": ["Accueil", "Actualités", "Sport", "Météo", "Contact"]}[lang]
    nav = "".join(f'<li><a href="/{w.lower()}">{w}</a></li>' for w in nav_words)
    side = "".join(f'<li><a href="/story/{rng.randint(1000, 9999)}">{rng.choice(nav_words)} '
                   f'{rng.randint(1, 99)}</a></li>' for _ in range(5))
    body = "".join(f"<p>{p}</p>\n" for p in paras)
    footer = {"en": "Copyright 2024. All rights reserved. Privacy Policy | Terms of Use | Subscribe",
              "zh": "版权所有 2024 | 隐私政策 | 使用条款 | 订阅",
              "de": "Impressum | Datenschutz | Alle Rechte vorbehalten",
              "fr": "Mentions légales | Confidentialité | Tous droits réservés"}[lang]
    html = (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{title} - {site}</title>'
            f'</head><body><header><nav><ul>{nav}</ul></nav></header>\n<main><article><h1>{title}</h1>\n'
            f'<p class="date">{date_line}</p>\n{body}</article></main>\n'
            f'<aside><h3>Related</h3><ul>{side}</ul></aside>\n<footer>{footer}</footer></body></html>\n')
    return html.encode("utf-8")


def _article(rng: random.Random, lang: str, n: int, when: datetime) -> Page:
    if lang == "en":
        title = rng.choice(EN_TITLES).format(rng.choice(EN_TITLE_WORDS))
        paras, site = _paragraphs(rng, "en"), rng.choice(SITES_EN)
        date_line = f"Published {when:%B %d, %Y}"
    elif lang == "zh":
        title = rng.choice(ZH_TITLES).format(rng.choice(ZH_TITLE_WORDS))
        paras, site = _paragraphs(rng, "zh"), rng.choice(SITES_ZH)
        date_line = f"发布时间：{when:%Y年%m月%d日}"
    else:
        sents = DE_SENTENCES if lang == "de" else FR_SENTENCES
        paras = [" ".join(rng.sample(sents, len(sents))) for _ in range(4)]
        title, site = sents[0][:40], SITES_OTHER[0 if lang == "de" else 1]
        date_line = f"{when:%d.%m.%Y}"
    url = f"https://{site}/{when:%Y/%m}/article-{n:05d}.html"
    page = Page(url, _wrap(title, date_line, paras, site, lang, rng), lang=lang,
                kind="article" if lang in ("en", "zh") else "other-lang")
    page.extra = {"title": title, "paras": paras, "site": site, "lang": lang}
    return page


def _near_copy(page: Page, rng: random.Random, when: datetime) -> Page:
    """The same article captured later: a new date line and one sentence edited."""
    ex = page.extra
    paras = list(ex["paras"])
    i = rng.randrange(len(paras))
    if ex["lang"] == "zh":
        paras[i] = paras[i] + "记者将继续关注此事的进展。"
        date_line = f"更新时间：{when:%Y年%m月%d日}"
    else:
        paras[i] = paras[i] + " Reporters will follow the story as it develops."
        date_line = f"Updated {when:%B %d, %Y}"
    html = _wrap(ex["title"], date_line, paras, ex["site"], ex["lang"], random.Random(page.url))
    return Page(page.url, html, lang=page.lang, kind=page.kind, origin=page.url, recrawl="near",
                extra=dict(ex, paras=paras))


def _spam(rng: random.Random, n: int) -> Page:
    words = " ".join(rng.choice(SPAM_WORDS) for _ in range(rng.randint(80, 200)))
    html = (f"<html><head><title>BEST DEALS</title></head><body><div>{words}</div>"
            f"<div>{words.upper()}</div></body></html>").encode()
    return Page(f"https://{rng.choice(SPAM_SITES)}/deal-{n}.html", html, kind="spam", lang="en")


def _short(rng: random.Random, n: int) -> Page:
    html = (b"<html><head><title>Coming soon</title></head><body><p>Coming soon.</p>"
            b"</body></html>")
    return Page(f"https://{rng.choice(SITES_EN)}/placeholder-{n}.html", html, kind="short")


PNG_BYTES = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
             b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
             b"\x00\x00\x00IEND\xaeB`\x82")


def _non_html(rng: random.Random, n: int) -> Page:
    site = rng.choice(SITES_EN)
    r = rng.random()
    if r < 0.4:
        return Page(f"https://{site}/img/photo-{n}.png", PNG_BYTES, "image/png", kind="png")
    if r < 0.6:
        pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
        return Page(f"https://{site}/files/report-{n}.pdf", pdf, "application/pdf", kind="pdf")
    body = b"<html><body><h1>404 Not Found</h1></body></html>"
    return Page(f"https://{site}/missing-{n}.html", body, status=404, kind="404")


class WarcWriter:
    """Writes WARC/1.0 records, one gzip member each (as Common Crawl does), reproducibly."""

    def __init__(self, fh, rng: random.Random):
        self.fh = fh
        self.rng = rng

    def _id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}>"

    def record(self, rec_type: str, url: str | None, when: datetime, block: bytes,
               content_type: str, extra: dict | None = None) -> str:
        rid = self._id()
        headers = {"WARC-Type": rec_type, "WARC-Date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "WARC-Record-ID": rid}
        if url:
            headers["WARC-Target-URI"] = url
        headers.update(extra or {})
        headers["Content-Type"] = content_type
        headers["Content-Length"] = str(len(block))
        head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(head.encode("utf-8") + block + b"\r\n\r\n")
        self.fh.write(buf.getvalue())
        return rid

    def page(self, page: Page, when: datetime) -> str:
        reason = {200: "OK", 404: "Not Found"}.get(page.status, "OK")
        http = (f"HTTP/1.1 {page.status} {reason}\r\nContent-Type: {page.content_type}\r\n"
                f"Content-Length: {len(page.html)}\r\n\r\n").encode() + page.html
        host = page.url.split("/")[2]
        req = f"GET /{page.url.split('/', 3)[3]} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.record("request", page.url, when, req, "application/http; msgtype=request")
        digest = "sha1:" + hashlib.sha1(page.html).hexdigest()
        rid = self.record("response", page.url, when, http, "application/http; msgtype=response",
                          {"WARC-Payload-Digest": digest})
        meta = f"fetchTimeMs: {self.rng.randint(50, 900)}\r\n".encode()
        self.record("metadata", page.url, when, meta, "application/warc-fields",
                    {"WARC-Concurrent-To": rid})
        return rid


def make_demo_corpus(out_dir: str | Path, seed: int = 0, pages_per_dump: int = 60,
                     files_per_dump: int = 2, scale: int = 1) -> dict:
    """Write the demo crawl under out_dir/<dump>/*.warc.gz; returns what it wrote. `scale`
    multiplies the pages and the files per dump (benchmarks use 8x and 64x)."""
    pages_per_dump *= scale
    files_per_dump *= scale
    out = Path(out_dir)
    rng = random.Random(seed)
    earlier: list[Page] = []
    info = {"dumps": [d for d, _ in DUMPS], "files": 0, "pages": 0, "kinds": {}}
    n = 0
    for d_index, (dump, base) in enumerate(DUMPS):
        pages: list[Page] = []
        for _ in range(pages_per_dump):
            n += 1
            when = base + timedelta(seconds=rng.randint(0, 6 * 86400))
            r = rng.random()
            if r < 0.45:
                pages.append(_article(rng, "en", n, when))
            elif r < 0.75:
                pages.append(_article(rng, "zh", n, when))
            elif r < 0.80:
                pages.append(_article(rng, rng.choice(["de", "fr"]), n, when))
            elif r < 0.86:
                pages.append(_spam(rng, n))
            elif r < 0.90:
                pages.append(_short(rng, n))
            else:
                pages.append(_non_html(rng, n))
        # re-crawls of earlier dumps' articles: exact and near copies
        articles = [p for p in earlier if p.kind == "article"]
        for p in rng.sample(articles, min(len(articles), pages_per_dump // 3)):
            when = base + timedelta(seconds=rng.randint(0, 6 * 86400))
            if rng.random() < 0.5:
                pages.append(Page(p.url, p.html, p.content_type, kind=p.kind, lang=p.lang,
                                  origin=p.url, recrawl="exact", extra=p.extra))
            else:
                pages.append(_near_copy(p, rng, when))
        rng.shuffle(pages)
        folder = out / dump
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_dump):
            path = folder / f"{dump}-{f:05d}.warc.gz"
            tmp = path.with_name(path.name + ".partial")
            with open(tmp, "wb") as fh:
                w = WarcWriter(fh, rng)
                w.record("warcinfo", None, base, b"software: curate demo generator\r\n",
                         "application/warc-fields", {"WARC-Filename": path.name})
                for page in pages[f::files_per_dump]:
                    when = base + timedelta(seconds=rng.randint(0, 6 * 86400))
                    w.page(page, when)
                    info["kinds"][page.kind] = info["kinds"].get(page.kind, 0) + 1
                    info["pages"] += 1
            tmp.replace(path)
            info["files"] += 1
        earlier += [p for p in pages if p.recrawl == "new"]
    return info


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pages-per-dump", type=int, default=60)
    args = ap.parse_args(argv)
    info = make_demo_corpus(args.out_dir, args.seed, args.pages_per_dump)
    print(f"wrote {info['pages']} pages in {info['files']} files: {info['kinds']}")


if __name__ == "__main__":
    main()
