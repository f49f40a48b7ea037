"""remix: the final corpus, one folder per language, reweighted by language and domain.

A document's domain is its URL's host (`site`) and a category from configurable rules
(encyclopedia, news, forum, code, academic, other). Its sampling rate is

    rate = language factor x domain factor x dup_count^x, capped at max_epochs

where the domain factor gives category c of a language the share C_c^alpha / sum C^alpha
of that language's characters (alpha < 1 raises small categories: DeepSeek's remixing
"increases the presence of underrepresented domains"; alpha = 1 keeps the natural mix)
times any explicit weight, and the language factor brings each language to its target
share. With `dup_count_exponent` x > 0 a dedup survivor weighs its cluster size to the
x (characters are counted with that weight, so the shares still hold). A document is
written floor(rate) times, plus once more when a hash of (seed, id) falls under the
fraction; rate < 1 drops it with that probability
(reason remix:downsampled). Its fate depends only on (seed, id, rates), never on order
or worker. A document's first copy (or its drop) goes to its home shard by a hash of
(seed, id), further copies by a hash of (seed, id, copy), and each shard is ordered by a
hash: shuffled across dumps, deterministically.

The shuffle opens input shards + output shards, never their product: in prepare, one Ray
task per input shard writes its rows sorted by a 64-bit key (output shard in the top 24
bits, the order hash below), the scattered files are merged into at most FAN_IN sorted
runs (pipeline/shuffle.py), and each output unit reads only its key range of each run.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.manifests.atomic import write_bytes_atomic, write_table_atomic
from curate.manifests.manifest import FINISHED, read_rows
from curate.pipeline.settings import at_least, between, positive, setting
from curate.pipeline.schema import with_columns
from curate.pipeline.stage import InputRef, PlanContext, Stage, Unit, UnitSink, fingerprint
from curate.pipeline.shuffle import (FAN_IN, add_counts, ROW_GROUP_BYTES, ROW_GROUP_ROWS, read_range, run_path,
                                     sorted_runs)
from curate.pipeline.storage import location, map_io, rmtree

DEFAULT_CATEGORIES = {
    "encyclopedia": ["wikipedia.org", "baike.baidu.com", "britannica.com", "wikiwand.com", "baike.com"],
    "code": ["github.com", "gitlab.com", "gitee.com", "bitbucket.org", "csdn.net", "cnblogs.com"],
    "forum": ["reddit.com", "stackexchange.com", "stackoverflow.com", "quora.com", "zhihu.com",
              "tieba.baidu.com", "douban.com", "prefix:forum.", "prefix:bbs.", "contains:forum"],
    "academic": [".edu", ".ac.uk", ".edu.cn", ".ac.cn", "arxiv.org", "researchgate.net",
                 "springer.com", "nature.com", "sciencedirect.com", "nih.gov"],
    "news": ["nytimes.com", "bbc.co.uk", "bbc.com", "cnn.com", "reuters.com", "theguardian.com",
             "washingtonpost.com", "latimes.com", "xinhuanet.com", "people.com.cn", "sina.com.cn",
             "163.com", "ifeng.com", "chinadaily.com.cn", "prefix:news.", "contains:news"],
}
PLAN_FILE = "_work/remix/plan.json"
# The output shard that holds the rejects when no language of the input is in the mix: the
# documents are still accounted for (remix:language_not_in_mix), never silently gone.
NO_MIX = "_none"
SCATTER = "_work/remix/scatter"
SCATTER_RUNS = "_work/remix/runs"
RUN_CHUNK_GROUPS = 8                 # row groups per file of the last merge level's runs
STEPS = "reports/remix_steps.json"     # per step: tasks, CPU, files opened (tools/bench_scale.py)
KEY_FIELD = pa.field("_key", pa.uint64())      # output shard << ORDER_BITS | order hash: the shuffle key
ORDER_BITS = 40
ROUTE_FIELDS = [KEY_FIELD, pa.field("_reason", pa.string()), pa.field("_detail", pa.string())]   # scatter-only
FIELDS = [pa.field("site", pa.string()), pa.field("category", pa.string()), pa.field("copy", pa.int32())]


@dataclass
class RemixSettings:
    target_shares: dict[str, float] = setting(
        {}, "share of characters per language, e.g. {en: 0.5, zh: 0.5}; {} = as the data has them. "
            "Languages not listed are dropped (remix:language_not_in_mix)", at_least(0))
    categories: dict[str, list[str]] = setting(
        DEFAULT_CATEGORIES, "domain category -> host rules: 'example.com' (the host or a subdomain), "
                            "'.edu' (a host suffix), 'prefix:news.', 'contains:forum'; first match wins, "
                            "else 'other'")
    alpha: float = setting(0.5, "domain temperature: 1 = natural mix, < 1 raises underrepresented domains",
                           between(0, 1))
    domain_weights: dict[str, float] = setting({}, "extra weight per category, e.g. {encyclopedia: 2}",
                                               at_least(0))
    max_epochs: float = setting(4.0, "no document is repeated more than this many times", at_least(1, 1000))
    dup_count_exponent: float = setting(0.0, "a dedup survivor whose cluster had n documents weighs "
                                             "n^x within its domain (x > 0 favours content many pages "
                                             "repeated); 0 = every survivor weighs 1. Shares stay on target",
                                      between(0, 2))
    shard_bytes: int = setting(256_000_000, "target characters of text per output shard", positive())
    seed: int = setting(0, "sampling and shuffling seed", at_least(0))

    def validate(self):
        if self.target_shares and not sum(self.target_shares.values()) > 0:
            raise ValueError(f"target_shares: the shares need a positive sum, got {self.target_shares}")


def site_of(url: str | None) -> str:
    host = (urlsplit(url or "").hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def category_of(site: str, categories: dict[str, list[str]]) -> str:
    for name, rules in categories.items():
        for rule in rules:
            if rule.startswith("prefix:"):
                hit = site.startswith(rule[7:])
            elif rule.startswith("contains:"):
                hit = rule[9:] in site
            elif rule.startswith("."):
                hit = site.endswith(rule)
            else:
                hit = site == rule or site.endswith("." + rule)
            if hit:
                return name
    return "other"


def unit_hash(seed: int, *parts) -> float:
    """Uniform in [0, 1) from (seed, parts): the only randomness remix uses."""
    h = hashlib.blake2b("\0".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def copies_of(rate: float, seed: int, doc_id: str) -> int:
    whole = math.floor(rate)
    return whole + (1 if unit_hash(seed, doc_id) < rate - whole else 0)


def dup_weights(t: pa.Table, s: RemixSettings) -> list[float]:
    """Each document's weight from its dedup cluster size (1 without dedup or exponent)."""
    if not s.dup_count_exponent or "dup_count" not in t.column_names:
        return [1.0] * t.num_rows
    return [max(1, n or 1) ** s.dup_count_exponent for n in t.column("dup_count").to_pylist()]


def scan_shard(path: str, s: RemixSettings) -> dict:
    """Weighted characters per (language, category) of one input shard (a Ray task)."""
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    t = pf.read(columns=[c for c in ("lang", "url", "n_chars", "dup_count") if c in names], use_threads=False)
    langs = t.column("lang").to_pylist() if "lang" in t.column_names else ["und"] * t.num_rows
    out: dict[str, dict[str, float]] = {}
    for lang, url, n, w in zip(langs, t.column("url").to_pylist(), t.column("n_chars").to_pylist(),
                               dup_weights(t, s)):
        cat = category_of(site_of(url), s.categories)
        by_cat = out.setdefault(lang or "und", {})
        by_cat[cat] = by_cat.get(cat, 0) + n * w
    return out


_SCANS: dict = {}


def _scan_key(output, rel: str, fingerprint: str, s: RemixSettings) -> tuple:
    """output: the resolved output folder."""
    return (str(output), rel, fingerprint, s.dup_count_exponent, repr(s.categories))


def _scan_once(output, rel: str, fingerprint: str, s: RemixSettings) -> dict:
    """scan_shard, remembered by the driver: the runner plans remix twice in a run (at the
    start and again once its input exists) and prepares it, and each needs every shard's
    scan. A shard's fingerprint fixes its content, so a remembered scan stays true.
    output: the resolved output folder."""
    key = _scan_key(output, rel, fingerprint, s)
    if key not in _SCANS:
        _SCANS[key] = scan_shard(str(output / rel), s)
    return _SCANS[key]


def compute_rates(chars: dict[str, dict[str, int]], s: RemixSettings) -> tuple[dict, dict]:
    """Sampling rate per (language, category), and what the mix will be."""
    total = sum(sum(c.values()) for c in chars.values()) or 1
    langs = sorted(chars)
    shares = ({l: s.target_shares.get(l, 0.0) / sum(s.target_shares.values()) for l in langs}
              if s.target_shares else {l: sum(chars[l].values()) / total for l in langs})
    rates: dict[str, dict[str, float]] = {}
    for lang in langs:
        cl = sum(chars[lang].values())
        weight = {c: (n ** s.alpha) * s.domain_weights.get(c, 1.0) for c, n in chars[lang].items() if n}
        wsum = sum(weight.values()) or 1
        domain_rate = {c: cl * weight[c] / wsum / chars[lang][c] for c in weight}
        lang_factor = shares[lang] * total / cl if cl else 0.0
        rates[lang] = {c: min(s.max_epochs, lang_factor * r) for c, r in domain_rate.items()}
    return rates, shares


def _output_counts(rates, chars, s) -> dict[str, int]:
    expected = {l: sum(rates[l].get(c, 0) * n for c, n in chars[l].items()) for l in chars}
    return {l: max(1, math.ceil(v / s.shard_bytes)) for l, v in expected.items() if v > 0}


SHARE_TOLERANCE = 0.02      # a target share missed by more than 2 points is said


def mix_warnings(s: RemixSettings, shares: dict[str, float], expected: dict[str, float]) -> list[str]:
    """What a user should hear about the mix before it is written: targets that do not sum
    to 1 (they are normalised), and targets the data cannot reach under max_epochs."""
    if not s.target_shares:
        return []
    out = []
    total = sum(s.target_shares.values())
    if abs(total - 1) > 1e-6:
        out.append(f"remix.target_shares sum to {total:g}, not 1: normalised to "
                   + ", ".join(f"{l} {v / total:.1%}" for l, v in sorted(s.target_shares.items())))
    for lang, want in sorted(shares.items()):
        got = expected.get(lang, 0.0)
        if abs(got - want) > SHARE_TOLERANCE:
            why = (f"the data cannot reach it with no document repeated more than remix.max_epochs = "
                   f"{s.max_epochs:g} times (raise max_epochs or lower the target)" if got < want else
                   "the other languages cannot fill their shares")
            out.append(f"{lang} reaches {got:.1%} of the characters against its target {want:.1%}: {why}")
    missing = sorted(l for l in s.target_shares if l not in shares and s.target_shares[l] > 0)
    if missing:
        out.append(f"no {', '.join(missing)} documents reach remix: their target shares cannot be met")
    return out


def unit_opens(runs: list, units: int) -> int:
    """Run files the units open: a plain run by every unit, a chunk by the units whose
    key range (index << ORDER_BITS) it meets."""
    return sum(units if isinstance(r, str) else min(units - 1, r[2] >> ORDER_BITS) - (r[1] >> ORDER_BITS) + 1
               for r in runs)


def run_group_bytes(shard_bytes: int) -> int:
    """Row-group bytes of the remix runs: a unit's waste (two partial groups per run, at
    most FAN_IN runs) stays under its own shard's size; at least 64 KiB, at most the
    shuffle's default."""
    return max(64 << 10, min(ROW_GROUP_BYTES, shard_bytes // (2 * FAN_IN)))


class RemixStage(Stage):
    name = "remix"
    code_version = "2"
    settings_cls = RemixSettings
    requires = ("extract",)
    needs_all_inputs = True
    summary = "final shards per language, reweighted by language and domain"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        """Output shards per language, sized from the input's characters. Until the input
        exists the plan is one provisional unit; the runner plans again before running."""
        s = ctx.config.settings(self.name)
        ups = ctx.upstream[ctx.previous]
        refs = [InputRef(u.out_path, u.fingerprint) for u in ups]
        rows = read_rows(ctx.output, ctx.previous)
        ready = ups and all(u.key in rows and rows[u.key].status in FINISHED
                            and rows[u.key].fingerprint == u.fingerprint for u in ups)
        counts = {"pending": 1}
        if ready:
            chars: dict[str, dict[str, int]] = {}
            out = location(ctx.output).resolve()
            scans = map_io(lambda u: _scan_once(out, u.out_path, u.fingerprint, s), ups, out)
            for scan in scans:
                for lang, by_cat in scan.items():
                    for c, n in by_cat.items():
                        chars.setdefault(lang, {})[c] = chars.get(lang, {}).get(c, 0) + n
            rates, _ = compute_rates(chars, s)
            counts = _output_counts(rates, chars, s) or {NO_MIX: 1}
        units = []
        for lang, n in sorted(counts.items()):
            for j in range(n):
                key = f"{lang}/part-{j:05d}"
                unit = Unit(self.name, key, None, list(refs), out_path=f"remix/{key}.parquet",
                            rejects_path=f"rejects/remix/{key}.parquet",
                            lang=None if lang in ("pending", NO_MIX) else lang)
                unit.fingerprint = fingerprint(self, s, refs + [InputRef(key, str(n))])
                units.append(unit)
        return units

    def prepare(self, s: RemixSettings, ctx) -> None:
        inputs = sorted({i.path for u in ctx.units for i in u.inputs})
        out = location(ctx.output).resolve()
        chars: dict[str, dict[str, int]] = {}
        refs = {i.path: i for u in ctx.units for i in u.inputs}
        keys = [_scan_key(out, p, refs[p].fingerprint, s) for p in inputs]
        if all(k in _SCANS for k in keys):      # the plan just scanned them
            parts = [_SCANS[k] for k in keys]
        else:
            parts = ctx.map(scan_shard, [(str(out / p), s) for p in inputs])
        for part in parts:
            for lang, by_cat in part.items():
                for c, n in by_cat.items():
                    chars.setdefault(lang, {})[c] = chars.get(lang, {}).get(c, 0) + n
        rates, shares = compute_rates(chars, s)
        counts = {}
        for u in ctx.units:
            lang = u.key.split("/")[0]
            counts[lang] = counts.get(lang, 0) + 1
        plan_fp = fingerprint(self, s, ctx.units[0].inputs)
        rmtree(out / SCATTER)
        steps = {"scatter": {"started": round(time.time(), 3)}, "runs": {}}
        t0 = time.perf_counter()
        add_counts(steps["scatter"], ctx.map(scatter_shard, [(str(out), p, i, s, rates, counts, plan_fp)
                                                             for i, p in enumerate(inputs)]))
        t1 = time.perf_counter()
        steps["runs"]["started"] = round(time.time(), 3)
        # row groups small beside an output shard: a unit reads at most two partial groups
        # past its range in each run (with 32 MB groups and 0.4 MB shards, 16,000 files'
        # units read 6x the bytes per document of 250 files')
        # the last level's runs in chunks of RUN_CHUNK_GROUPS row groups: a unit opens the
        # chunks its range meets, whose footers are small (a whole run's footer grows with
        # the corpus, and every unit parsed all of them: 0.17 s a unit at 16,000 files)
        group_bytes = run_group_bytes(s.shard_bytes)
        runs = sorted_runs(ctx.map, str(out), [f"{SCATTER}/{i:05d}.parquet" for i in range(len(inputs))],
                           "_key", SCATTER_RUNS, stats=steps["runs"], group_bytes=group_bytes,
                           chunk_bytes=RUN_CHUNK_GROUPS * group_bytes)
        steps["scatter"]["wall_s"], steps["runs"]["wall_s"] = round(t1 - t0, 3), round(time.perf_counter() - t1, 3)
        steps["units"] = {"tasks": len(ctx.units), "opens": len(ctx.units) * 2 + unit_opens(runs, len(ctx.units))}
        write_bytes_atomic(json.dumps({"steps": steps, "inputs": len(inputs), "runs": len(runs)}).encode(),
                           out / STEPS)
        write_bytes_atomic(json.dumps({"rates": rates, "shards": counts, "n_inputs": len(inputs), "runs": runs,
                                       "fingerprint": plan_fp}).encode(), out / PLAN_FILE)
        total_out = sum(rates[l].get(c, 0) * n for l in chars for c, n in chars[l].items()) or 1
        ctx.log("[remix] mixture (share of characters): language  input -> expected  (target)")
        total_in = sum(sum(v.values()) for v in chars.values()) or 1
        expected = {}
        for lang in sorted(chars):
            expected[lang] = got = sum(rates[lang].get(c, 0) * n for c, n in chars[lang].items()) / total_out
            want = f"{shares[lang]:.1%}" if s.target_shares else "natural"
            ctx.log(f"[remix]   {lang:5s} {sum(chars[lang].values()) / total_in:6.1%} -> {got:6.1%}  ({want})")
            for c in sorted(chars[lang]):
                ctx.log(f"[remix]     {c:13s} rate {rates[lang].get(c, 0):5.2f}")
        for warning in mix_warnings(s, shares, expected):
            ctx.log(f"[remix] warning: {warning}")

    def process(self, unit: Unit, s: RemixSettings, sink: UnitSink) -> None:
        plan = json.loads((sink.output / PLAN_FILE).read_text())
        plan_fp = fingerprint(self, s, unit.inputs)
        if plan["fingerprint"] != plan_fp:
            raise RuntimeError(f"{PLAN_FILE} belongs to another plan; rerun the stage")
        index = target_index(plan["shards"], unit.key)
        table = read_range(sink.output, plan["runs"], KEY_FIELD.name, index << ORDER_BITS,
                           ((index + 1) << ORDER_BITS) - 1)
        for run in plan["runs"][:1]:
            meta = pq.read_schema(sink.output / run_path(run)).metadata or {}
            if meta.get(b"curate_plan") != plan_fp.encode():
                raise RuntimeError(f"{run} was scattered for another plan; rerun the stage")
        if table is None:
            table = pq.read_schema(sink.output / run_path(plan["runs"][0])).empty_table() if plan["runs"] else None
        if table is None:
            raise RuntimeError("remix has no input shards")
        table = table.sort_by(KEY_FIELD.name)
        reasons = table.column("_reason")
        dropped = table.filter(reasons.is_valid())
        for did, reason, detail, dump, url in zip(*(dropped.column(c).to_pylist()
                                                    for c in ("id", "_reason", "_detail", "dump", "url"))):
            sink.count_in()
            sink.reject(reason, detail, did, dump, url)
        docs = table.filter(reasons.is_null()).drop_columns([f.name for f in ROUTE_FIELDS])
        firsts = pc.sum(pc.equal(docs.column("copy"), 0)).as_py() or 0
        sink.count_in(firsts)
        sink.set_schema(docs.schema)
        sink.add_docs(docs)
        # copies beyond each document's first: the conservation check counts them
        sink.repeats = docs.num_rows - firsts


def target_index(shards: dict[str, int], key: str) -> int:
    """An output shard's place among all of them (languages in name order, then part)."""
    lang, part = key.split("/")
    return sum(n for l, n in shards.items() if l < lang) + int(part.split("-")[1])


def shuffle_key(index: int, order: float) -> int:
    return (index << ORDER_BITS) | int(order * (1 << ORDER_BITS))


def scatter_shard(output: str, path: str, index: int, s: RemixSettings, rates: dict,
                  shards: dict[str, int], plan_fp: str) -> dict:
    """One input shard (a Ray task): every document's copies, or its drop, routed to an
    output shard; written sorted by the shuffle key (output shard, then order)."""
    c0 = time.process_time()
    out = location(output)
    t = pq.read_table(out / path)
    langs = t.column("lang").to_pylist() if "lang" in t.column_names else ["und"] * t.num_rows
    first_lang = min(shards)
    take, cols = [], {k: [] for k in ("site", "category", "copy", "_key", "_reason", "_detail")}

    def route(i, site, cat, copy, target, reason=None, detail=None, salt=None):
        take.append(i)
        key = shuffle_key(target_index(shards, target), unit_hash(s.seed, salt, copy, "order"))
        for k, v in zip(cols, (site, cat, copy, key, reason, detail)):
            cols[k].append(v)
    weights = dup_weights(t, s)
    for i, (did, dl, url) in enumerate(zip(t.column("id").to_pylist(), langs, t.column("url").to_pylist())):
        dl = dl or "und"
        site = site_of(url)
        cat = category_of(site, s.categories)
        if dl not in shards:
            # the first shard of the first language answers for languages that get none
            route(i, site, cat, -1, f"{first_lang}/part-00000", "remix:language_not_in_mix", dl, did)
            continue
        n, rate = shards[dl], min(s.max_epochs, rates.get(dl, {}).get(cat, 0.0) * weights[i])
        home = int(unit_hash(s.seed, did, "home") * n)
        k = copies_of(rate, s.seed, did)
        if k == 0:
            route(i, site, cat, -1, f"{dl}/part-{home:05d}", "remix:downsampled", f"rate {rate:.3f} ({cat})", did)
        for c in range(k):
            j = home if c == 0 else int(unit_hash(s.seed, did, c, "shard") * n)
            route(i, site, cat, c, f"{dl}/part-{j:05d}", salt=did)
    routed = with_columns(t.take(pa.array(take, pa.int64())), FIELDS + ROUTE_FIELDS, list(cols.values()))
    routed = routed.sort_by(KEY_FIELD.name)
    routed = routed.replace_schema_metadata({**(routed.schema.metadata or {}), "curate_plan": plan_fp})
    per_row = max(1, routed.nbytes // max(1, routed.num_rows))
    write_table_atomic(routed, out / SCATTER / f"{index:05d}.parquet",
                       row_group_size=max(1, min(ROW_GROUP_ROWS, ROW_GROUP_BYTES // per_row)),
                       write_statistics=[KEY_FIELD.name])     # no min/max of whole texts
    return {"rows": routed.num_rows, "opens": 1, "writes": 1, "cpu_s": time.process_time() - c0}
