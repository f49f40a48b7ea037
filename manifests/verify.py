"""Is what a manifest row promises still on disk? Sizes always (cheap), sha256 on demand.

A shard that was deleted, truncated or overwritten after its row was written must not
be skipped by a rerun nor served by a query: the runner checks sizes before it skips a
unit, and `curate verify [--deep]` checks every row and marks the damaged ones stale.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from curate.manifests.atomic import sha256_file
from curate.manifests.manifest import FINISHED, ManifestRow, read_all_rows, write_row
from curate.pipeline.storage import location, tree

DAMAGED = "damaged"         # the fingerprint a damaged unit's row gets: never equal to a plan's


def _files(row: ManifestRow):
    yield row.path, row.bytes, row.sha256
    if row.rejects_path:
        yield row.rejects_path, row.rejects_bytes, row.rejects_sha256
    for rel, (size, digest) in extra_files(row).items():
        yield rel, size, digest


def extra_files(row: ManifestRow) -> dict[str, tuple[int, str]]:
    """Files a unit published besides its shard and rejects (tokenize's token shards):
    {relative path: (bytes, sha256)}, kept in the row's stats."""
    if not row.stats or '"files"' not in row.stats:
        return {}
    return {rel: (size, digest) for rel, (size, digest) in row.stats_dict.get("files", {}).items()}


def listed_sizes(output, stage: str, rows=(), stat: bool = True) -> dict[str, int | None]:
    """{relative path: size} of a stage's shards and rejects (and the further files its
    `rows` name), from a listing per folder: in object storage one request per thousand
    files instead of one per file; on a local disk one directory scan per folder, and a
    stat per file unless `stat` is False (the sizes are then None: only names are known)."""
    out = location(output)
    sizes: dict[str, int | None] = {}
    extra = sorted({rel.split("/", 1)[0] for r in rows for rel in extra_files(r)})
    for sub in (stage, f"rejects/{stage}", *extra):
        for rel, size in tree(out / sub, sizes=stat).items():
            sizes[f"{sub}/{rel}"] = size
    return sizes


def size_problem(rel: str, size: int | None, sizes: dict[str, int]) -> str | None:
    """What is wrong with one file, given the sizes a listing found, or None."""
    if rel not in sizes:
        return f"{rel} is missing"
    if size is not None and sizes[rel] is not None and sizes[rel] != size:
        return f"{rel} has {sizes[rel]} bytes, its manifest row says {size}"
    return None


def damage(output: str | Path, row: ManifestRow, deep: bool = False,
           sizes: dict[str, int] | None = None) -> str | None:
    """What is wrong with a finished unit's files, or None when they match its row.
    `sizes`: what listed_sizes() gave, instead of a stat per file."""
    if row.status not in FINISHED or not row.path:
        return None
    for rel, size, digest in _files(row):
        if sizes is not None:
            problem = size_problem(rel, size, sizes)
        else:
            try:
                problem = size_problem(rel, size, {rel: (location(output) / rel).stat().st_size})
            except FileNotFoundError:
                problem = f"{rel} is missing"
            except OSError as exc:
                problem = f"{rel} cannot be read ({exc.strerror or exc})"
        if problem:
            return problem
        if deep and digest and sha256_file(location(output) / rel) != digest:
            return f"{rel} does not match its recorded sha256"
    return None


def mark_damaged(output: str | Path, row: ManifestRow, problem: str) -> None:
    """Keep the row (its history) but make it stale: the next run redoes the unit."""
    write_row(output, replace(row, fingerprint=DAMAGED, error=f"verify: {problem}"))


def verify(output: str | Path, deep: bool = False, log=print) -> tuple[int, list[tuple[ManifestRow, str]]]:
    """Check every finished unit; mark the damaged ones stale. (units checked, problems)."""
    rows = [r for r in read_all_rows(output) if r.status in FINISHED]
    problems = []
    listed = {stage: listed_sizes(output, stage, [r for r in rows if r.stage == stage])
              for stage in {r.stage for r in rows}}
    for row in rows:
        problem = damage(output, row, deep, listed[row.stage])
        if problem:
            problems.append((row, problem))
            mark_damaged(output, row, problem)
            log(f"DAMAGED {row.stage} {row.unit}: {problem} (marked stale; a rerun redoes it)")
    return len(rows), problems
