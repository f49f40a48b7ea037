"""remix: target mixture, determinism, every document kept, repeated or dropped with a reason."""
import collections

import pytest

from conftest import DATA, read_shards, run_stages
from curate.manifests.manifest import read_rows
from curate.stages.remix import DEFAULT_CATEGORIES, category_of, site_of

ORDER = ["extract", "langid", "remix"]
MIX = {"target_shares": {"en": 0.6, "zh": 0.4}, "max_epochs": 8.0, "shard_bytes": 150_000}


@pytest.fixture(scope="module")
def remixed(ray_address, tmp_path_factory):
    out = tmp_path_factory.mktemp("remix") / "out"
    run_stages(ray_address, DATA / "crawl", out, order=ORDER, remix=MIX)
    return out


def test_shares_reach_the_targets(remixed):
    docs = read_shards(remixed, "remix")
    chars = collections.Counter()
    for d in docs:
        chars[d["lang"]] += d["n_chars"]
    total = sum(chars.values())
    shares = {k: v / total for k, v in chars.items()}
    print(f"\nachieved shares {shares} for targets {MIX['target_shares']}")
    assert shares["en"] == pytest.approx(0.6, abs=0.06) and shares["zh"] == pytest.approx(0.4, abs=0.06)
    rows = read_rows(remixed, "remix")
    assert {r.unit.split("/")[0] for r in rows.values()} == {"en", "zh"}
    assert all(r.path.startswith(f"remix/{r.lang}/") for r in rows.values())


def test_every_input_is_kept_repeated_or_dropped_with_a_reason(remixed):
    inputs = {d["id"] for d in read_shards(remixed, "langid")}
    copies = collections.defaultdict(list)
    for d in read_shards(remixed, "remix"):
        copies[d["id"]].append(d["copy"])
    rejects = read_shards(remixed, "remix", "rejects")
    dropped = collections.Counter(r["id"] for r in rejects)
    assert set(copies) | set(dropped) == inputs and not set(copies) & set(dropped)
    assert max(dropped.values()) == 1 and {r["reason"] for r in rejects} <= {"remix:downsampled",
                                                                             "remix:language_not_in_mix"}
    for doc_copies in copies.values():
        assert sorted(doc_copies) == list(range(len(doc_copies)))
    assert any(len(c) > 1 for c in copies.values())             # zh is upsampled
    rows = read_rows(remixed, "remix").values()
    assert sum(r.docs for r in rows) == sum(len(c) for c in copies.values())
    assert sum(r.docs_in for r in rows) == len(inputs)


def test_underrepresented_domains_are_raised(remixed):
    """With alpha 0.5 a small category's documents get a higher rate than a big one's."""
    inputs = [d for d in read_shards(remixed, "langid") if d["lang"] == "en"]
    size = collections.Counter(category_of(site_of(d["url"]), DEFAULT_CATEGORIES) for d in inputs)
    out = collections.Counter(d["category"] for d in read_shards(remixed, "remix") if d["lang"] == "en")
    small = min(size, key=size.get)
    big = max(size, key=size.get)
    assert out[small] / size[small] > out[big] / size[big]


def test_remix_is_deterministic(ray_address, remixed, tmp_path):
    other = tmp_path / "again"
    run_stages(ray_address, DATA / "crawl", other, order=ORDER, remix=MIX)
    a = {k: r.sha256 for k, r in read_rows(remixed, "remix").items()}
    b = {k: r.sha256 for k, r in read_rows(other, "remix").items()}
    assert a == b


def test_site_and_category_rules():
    rules = {"news": ["nytimes.com", "prefix:news."], "academic": [".edu"], "forum": ["contains:forum"]}
    assert category_of(site_of("https://www.nytimes.com/2019/x.html"), rules) == "news"
    assert category_of(site_of("http://news.example.cn/a"), rules) == "news"
    assert category_of(site_of("https://cs.stanford.edu/x"), rules) == "academic"
    assert category_of(site_of("https://myforum.net/t/1"), rules) == "forum"
    assert category_of(site_of("https://example.org/"), rules) == "other"


def test_shard_count_changes_where_copies_go_never_which(ray_address, remixed, tmp_path):
    """The scatter step routes each copy to one output shard: many shards or one, the same
    copies are written and the same documents dropped."""
    one = tmp_path / "one"
    run_stages(ray_address, DATA / "crawl", one, order=ORDER, remix={**MIX, "shard_bytes": 10**12})
    assert len(read_rows(one, "remix")) == 2 and len(read_rows(remixed, "remix")) > 2

    def copies(out):
        return collections.Counter((d["id"], d["copy"]) for d in read_shards(out, "remix"))

    def drops(out):
        return sorted((r["id"], r["reason"]) for r in read_shards(out, "remix", "rejects"))
    assert copies(one) == copies(remixed) and drops(one) == drops(remixed)


def test_dup_count_exponent_upsamples_often_repeated_content(ray_address, crawl_extract, tmp_path):
    """On the default pipeline's output (dedup ran before remix): with exponent 1, a
    survivor of a bigger cluster gets more copies, and the language shares stay put."""
    from conftest import copy_tree
    out = copy_tree(crawl_extract[0], tmp_path / "out")
    run_stages(ray_address, DATA / "crawl", out, stages=["remix"], remix={"dup_count_exponent": 1.0})
    copies = collections.Counter(d["id"] for d in read_shards(out, "remix"))
    size = {d["id"]: d["dup_count"] for d in read_shards(out, "remix")}
    by_size = collections.defaultdict(list)
    for i, n in size.items():
        by_size[min(n, 3)].append(copies[i])
    mean = {n: sum(v) / len(v) for n, v in by_size.items()}
    print(f"\nmean copies by cluster size (3 = 3 or more): {mean}")
    assert mean[3] > mean[1] * 1.5
    chars = collections.Counter()
    for d in read_shards(out, "remix"):
        chars[d["lang"]] += d["n_chars"]
    base = collections.Counter()
    for d in read_shards(crawl_extract[0], "remix"):
        base[d["lang"]] += d["n_chars"]
    share = chars["en"] / sum(chars.values())
    assert abs(share - base["en"] / sum(base.values())) < 0.06


def test_mix_warnings_name_unreachable_targets_and_shares_that_do_not_sum_to_1():
    from curate.stages.remix import RemixSettings, mix_warnings
    s = RemixSettings(target_shares={"en": 0.7, "zh": 0.5})
    shares = {"en": 0.7 / 1.2, "zh": 0.5 / 1.2}
    said = mix_warnings(s, shares, {"en": 0.694, "zh": 0.306})
    assert any("sum to 1.2, not 1" in w for w in said)
    assert any(w.startswith("zh reaches 30.6%") and "41.7%" in w and "max_epochs" in w for w in said), said
    assert mix_warnings(RemixSettings(target_shares={"en": 0.6, "zh": 0.4}), {"en": 0.6, "zh": 0.4},
                        {"en": 0.59, "zh": 0.41}) == []
    assert mix_warnings(RemixSettings(), {"en": 0.9, "zh": 0.1}, {"en": 0.9, "zh": 0.1}) == []


def test_remix_run_says_distinct_documents_and_warns_on_a_missed_target(ray_address, tmp_path):
    from curate.pipeline.html_report import write_report
    from curate.pipeline.report import run_summary
    logs = []
    out = tmp_path / "out"
    res = run_stages(ray_address, DATA / "crawl", out, log=logs.append, order=ORDER,
                     remix={"target_shares": {"en": 0.7, "zh": 0.5}})
    warnings = [m for m in logs if "[remix] warning:" in m]
    print("\n".join(warnings))
    assert any("sum to 1.2" in m for m in warnings) and any("zh reaches" in m for m in warnings)
    docs = read_shards(out, "remix")
    distinct = len({d["id"] for d in docs})
    assert distinct < len(docs)         # upsampled: a plain count(*) counts copies
    summary = run_summary(out, res)
    assert f"{distinct:,} distinct documents + {len(docs) - distinct:,} repeated copies" in summary, summary
    html = write_report(out).read_text()
    assert "distinct documents" in html and "missed by more than 2 points" in html
