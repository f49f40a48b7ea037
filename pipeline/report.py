"""Human-readable summaries: end of a run, and `curate status`."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from curate.manifests.manifest import FINISHED, ManifestRow, read_table
from curate.manifests.verify import damage, listed_sizes, size_problem
from curate.pipeline.registry import STAGES
from curate.pipeline.runner import DONE, FAILED_STATE, MISSING, PARTIAL, STALE, RunResult
from curate.pipeline.stage import PlannedUnits, Unit
from curate.pipeline.storage import ObjectPath, parquet_dataset
from curate.manifests.views import sql_list


def top_reasons(output: Path, rows, n: int = 5) -> list[tuple[str, int]]:
    """The most frequent reject reasons of these units: counted from their manifest rows
    (`stats.reasons`), reading rejects files only for rows written before rows kept them."""
    counts: Counter = Counter()
    paths = []
    for r in rows:
        if r.status not in FINISHED or not r.rejected:
            continue
        reasons = r.stats_dict.get("reasons")
        if reasons:
            counts.update(reasons)
        elif r.rejects_path:
            paths.append(output / r.rejects_path)
    for reason, count in (_file_reasons(output, paths) if paths else []):
        counts[reason] += count
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _file_reasons(output: Path, paths: list) -> list[tuple[str, int]]:
    con = duckdb.connect()
    if isinstance(output, ObjectPath):
        con.register("_rejects", parquet_dataset(paths))
        source = "_rejects"
    else:
        source = f"read_parquet({sql_list(paths)})"
    return con.execute(f"SELECT reason, count(*) AS n FROM {source} GROUP BY reason").fetchall()


def unread_lines(unread: list[str]) -> list[str]:
    if not unread:
        return []
    kinds = Counter("folder (not a dump, or inside one)" if f.endswith("/") else
                    "WAT (metadata, no text)" if ".wat" in f.lower() else "unknown type" for f in unread)
    return [f"input files not read: {len(unread)} (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
            + "): " + ", ".join(unread[:10]) + (" ..." if len(unread) > 10 else "")]


def run_summary(output: Path, result: RunResult) -> str:
    lines = ["", "Summary", "======="] + unread_lines(result.unread)
    for st in result.stages:
        docs_in = sum(r.docs_in for r in st.rows if r.status in FINISHED)
        docs = sum(r.docs for r in st.rows if r.status in FINISHED)
        rej = sum(r.rejected for r in st.rows if r.status in FINISHED)
        repeats = sum(r.stats_dict.get("repeats", 0) for r in st.rows
                      if r.status in FINISHED and r.stats and '"repeats"' in r.stats)
        lines.append(f"{st.stage:13s} units {st.planned} (ran {st.ran}, already done {st.skipped}"
                     + (f", waiting {st.blocked}" if st.blocked else "") + f")  docs in {docs_in:,}"
                     f" -> out {docs:,} + rejected {rej:,}"
                     + (f" (out is {docs - repeats:,} distinct documents + {repeats:,} repeated copies)"
                        if repeats else "")
                     + f"  [{st.seconds:.1f} s]")
        reasons = top_reasons(output, st.rows)
        if reasons:
            lines.append("          top reject reasons: " +
                         ", ".join(f"{reason} {n:,}" for reason, n in reasons))
        for r in st.rows:
            if r.status != DONE:
                lines.append(f"          {r.status.upper()} {r.unit}: {r.error}")
    curve = output / "reports" / "dedup_curve.parquet"
    if any(st.stage == "dedup" for st in result.stages) and curve.exists():
        import pyarrow.parquet as pq
        from curate.stages.dedup import DEEPSEEK_TABLE1
        lines.append("dedup rate by number of dumps (DeepSeek LLM Table 1 beside):")
        for r in pq.read_table(curve).to_pylist():
            ds = DEEPSEEK_TABLE1.get(r["dumps_used"])
            lines.append(f"          {r['dumps_used']:3d} dumps: {r['removed']:,} of {r['docs']:,} removed "
                         f"= {r['rate']:.1%}" + (f"   (DeepSeek {ds:.1%})" if ds else ""))
    remix = next((st for st in result.stages if st.stage == "remix" and st.rows), None)
    if remix is not None:
        import json as _json
        chars: dict[str, int] = {}
        for r in remix.rows:
            if r.status in FINISHED and r.docs:
                chars[r.lang or "und"] = chars.get(r.lang or "und", 0) + (r.chars or 0)
        total = sum(chars.values()) or 1
        cfg = output / "run-config.json"
        targets = _json.loads(cfg.read_text()).get("remix", {}).get("target_shares", {}) if cfg.exists() else {}
        norm = sum(targets.values()) or 1
        lines.append("language mix of the final corpus (share of characters):"
                     + ("" if chars else " no documents in the final corpus (see the reject reasons above)"))
        for lang, n in sorted(chars.items()):
            want = f"target {targets.get(lang, 0) / norm:.1%}" if targets else "no target"
            lines.append(f"          {lang:4s} {n:>15,} chars = {n / total:.1%}  ({want})")
    if any(st.stage == "tokenize" and st.rows for st in result.stages):
        from curate.manifests.views import connect
        con = connect(output, only=("tokenize",))
        cfg = output / "run-config.json"
        budget = (json.loads(cfg.read_text()).get("tokenize", {}).get("budget_tokens", 2e12)
                  if cfg.exists() else 2e12)
        lines.append("tokens vs budget (view token_budget):")
        for lang, tokens, frac, per_dump, need in con.execute(
                "SELECT lang, tokens, fraction_of_budget, tokens_per_dump, dumps_needed FROM token_budget").fetchall():
            lines.append(f"          {lang:4s} {int(tokens or 0):>15,} tokens = {frac or 0:.2e} of the budget"
                         + (f"; {per_dump:,.0f} per input dump -> {need:,.0f} input dumps of this size would be "
                            f"needed to reach the {budget:.3g}-token budget" if lang == "all" and need else ""))
    lines.append(f"Query it: curate query \"SELECT * FROM shards\" --output {output}")
    return "\n".join(lines)


STATUS_COLUMNS = ("docs", "bytes", "error", "path", "rejects_path", "rejects_bytes")


def status_table(output: Path, plans: dict[str, list[Unit]]) -> str:
    """Units per state and stage. Columnar: a stage's plan (keys and fingerprints) is
    matched with its record as Arrow columns, and Python touches only the units that need
    attention (a dump's 90,000 units per stage)."""
    head = f"{'stage':13s} {'units':>6s} {'done':>6s} {'partial':>7s} {'failed':>6s} {'stale':>6s} {'missing':>7s} {'docs':>10s} {'bytes':>12s}"
    lines = [head, "-" * len(head)]
    problems = []
    for name, units in plans.items():
        table = read_table(output, name, columns=STATUS_COLUMNS + (("stats",) if STAGES[name].extra_outputs else ()))
        keys, fps = _plan_columns(units)
        finished = pc.is_in(table.column("status"), value_set=pa.array(FINISHED))
        docs = int(pc.sum(pc.filter(table.column("docs"), finished)).as_py() or 0)
        size = int(pc.sum(pc.filter(table.column("bytes"), finished)).as_py() or 0)
        states = Counter()
        if keys and all(k.startswith("pending/") for k in keys):
            # the stage's plan waits on its input (remix sizes its shards from it): what is
            # on disk was made from an earlier input, so it is stale, not missing
            states[STALE] = table.num_rows
            states[MISSING] = 0 if table.num_rows else 1
            lines.append(_status_line(name, max(table.num_rows, 1), states, docs, size))
            continue
        at = pc.index_in(pa.array(keys, pa.string()), value_set=table.column("unit"))
        recorded = pc.is_valid(at)
        rows = table.take(pc.filter(at, recorded))
        states[MISSING] = len(keys) - rows.num_rows
        same = pc.fill_null(pc.equal(rows.column("fingerprint"),
                                     pc.filter(pa.array(fps, pa.string()), recorded)), False)
        state = pc.if_else(same, rows.column("status"), pa.scalar(STALE))
        broken = _damaged(output, name, rows, pc.and_(same, pc.is_in(state, value_set=pa.array(FINISHED))))
        if broken:                                  # the files no longer match the row
            state = pa.array([STALE if i in broken else s for i, s in enumerate(state.to_pylist())], pa.string())
        states.update({d["values"]: d["counts"] for d in pc.value_counts(state).to_pylist()})
        problems += _attention(name, rows, state, broken)
        lines.append(_status_line(name, len(keys), states, docs, size))
    if problems:
        lines += ["", "units that need attention:"] + problems
    return "\n".join(lines)


def _plan_columns(units) -> tuple[list[str], list[str]]:
    """(keys, fingerprints) of a stage's plan: its columns, or read off its Units."""
    if isinstance(units, PlannedUnits):
        return units.keys, units.fingerprints
    return [u.key for u in units], [u.fingerprint for u in units]


def _attention(name: str, rows, state, broken: dict[int, str]) -> list[str]:
    """A line per unit that is damaged, partial or failed, in key order."""
    errors = rows.column("error")
    verify = pc.and_(pc.equal(state, STALE), pc.fill_null(pc.starts_with(errors, "verify:"), False))
    note = pc.or_(pc.is_in(state, value_set=pa.array([PARTIAL, FAILED_STATE])), verify)
    picked = sorted(set(pc.indices_nonzero(note).to_pylist()) | set(broken))
    lines = []
    for i in picked:
        unit, st, error = rows.column("unit")[i].as_py(), state[i].as_py(), errors[i].as_py()
        if i in broken:
            lines.append(f"  {name} {unit} damaged: {broken[i]} (a rerun redoes it)")
        elif st == STALE:
            lines.append(f"  {name} {unit} damaged: {error[8:]} (a rerun redoes it)")
        else:
            lines.append(f"  {name} {unit} {st}: {error}")
    return lines


def _status_line(name: str, units: int, states: Counter, docs: int, size: int) -> str:
    return (f"{name:13s} {units:6d} {states[DONE]:6d} {states[PARTIAL]:7d} {states[FAILED_STATE]:6d} "
            f"{states[STALE]:6d} {states[MISSING]:7d} {docs:10,d} {size:12,d}")


def _damaged(output: Path, stage: str, rows, finished) -> dict[int, str]:
    """{row index: problem} of the `finished` rows whose files are missing (or, in object
    storage, of another size), from one listing per folder, compared as columns; the few rows that name further files (token
    shards) are checked one by one."""
    if not rows.num_rows or not pc.any(finished).as_py():
        return {}
    # names from a directory scan (sizes only where the listing gives them: object
    # storage); a stat per file would be most of status's cost. verify checks sizes.
    sizes = listed_sizes(output, stage, stat=False)
    listed = pa.array(list(sizes), pa.string())
    listed_size = pa.array(list(sizes.values()), pa.int64())
    bad = pa.array([False] * rows.num_rows)
    for path, want in (("path", "bytes"), ("rejects_path", "rejects_bytes")):
        rel = rows.column(path)
        at = pc.index_in(rel, value_set=listed)
        wrong = pc.not_equal(pc.take(listed_size, at), pc.cast(rows.column(want), pa.int64()))
        named = pc.fill_null(pc.not_equal(rel, ""), False)
        bad = pc.or_(bad, pc.and_(named, pc.or_(pc.is_null(at), pc.fill_null(wrong, False))))
    broken = {}
    for i in pc.indices_nonzero(pc.and_(finished, bad)).to_pylist():
        problem = next(filter(None, (size_problem(rows.column(p)[i].as_py(), rows.column(w)[i].as_py(), sizes)
                                     for p, w in (("path", "bytes"), ("rejects_path", "rejects_bytes"))
                                     if rows.column(p)[i].as_py())), None)
        if problem:
            broken[i] = problem
    if "stats" not in rows.column_names:        # a stage that publishes no further files
        return broken
    extra = pc.and_(pc.and_(finished, pc.invert(bad)),
                    pc.fill_null(pc.match_substring(rows.column("stats"), '"files"'), False))
    for i in pc.indices_nonzero(extra).to_pylist():
        rec = rows.slice(i, 1).to_pylist()[0]
        problem = damage(output, ManifestRow(**rec))
        if problem:
            broken[i] = problem
    return broken
