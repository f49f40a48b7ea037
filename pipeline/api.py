"""The Python API: build a config, run all or some stages, read what a run wrote.

    import curate
    cfg = curate.config(input="crawl/", output="out/", dedup={"threshold": 0.8})
    result = curate.run(cfg, until="quality")
    out = curate.open("out/")
    out.query("SELECT reason, count(*) FROM rejects GROUP BY ALL").fetchall()
    table = out.docs("quality")            # a pyarrow.Table

The same runner, manifests and views as the command line; nothing here is a second path.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import pyarrow as pa

from curate.pipeline.config import Config, config_from_dict, load_config
from curate.pipeline.storage import location


def config(path: str | Path | None = None, **sections) -> Config:
    """A checked Config from a file, keyword sections (`input=`, `output=`, `dedup={...}`),
    or both (keywords override the file). Errors name the key, as on the command line."""
    if path is not None:
        cfg = load_config(path)
        raw = {**cfg.to_dict(), **sections}
    else:
        raw = dict(sections)
    return config_from_dict(raw)


def run(cfg: Config | dict, stages: list[str] | None = None, until: str | None = None, force: bool = False,
        address: str | None = None, log: Callable[[str], None] | None = None, report: bool = True):
    """Run the pipeline (or `stages`, or the order up to `until`); returns the RunResult.
    With `report`, OUT/report/index.html is written at the end, as `curate run` does."""
    from curate.pipeline.runner import Runner
    if isinstance(cfg, dict):
        cfg = config_from_dict(cfg)
    result = Runner(cfg, log=log or (lambda m: print(m, file=sys.stderr, flush=True)), address=address).run(
        only=stages, until=until, force=force)
    if report:
        from curate.pipeline.html_report import write_report
        write_report(location(cfg.output))
    return result


class Output:
    """What a run wrote, through the same DuckDB views as `curate query`."""

    def __init__(self, output: str | Path, allow_write: bool = False):
        from curate.manifests.views import connect
        self.path = location(output)
        if not (self.path / "manifests").exists():
            raise FileNotFoundError(f"{self.path} has no manifests: run curate there first")
        self.allow_write = allow_write
        import warnings
        self.con = connect(self.path, read_only=not allow_write,
                           warn=lambda m: warnings.warn(m, RuntimeWarning, stacklevel=4))

    def query(self, sql: str, params=None):
        """A DuckDB relation (`.fetchall()`, `.arrow()`, `.df()` ...) over the views
        shards, rejects, docs_<stage>, dedup_curve, token_totals, token_budget. Read-only
        unless opened with allow_write=True (as `curate query --allow-write`)."""
        if not self.allow_write:
            from curate.manifests.views import check_read_only
            check_read_only(sql)
        return self.con.sql(sql, params=params) if params else self.con.sql(sql)

    def docs(self, stage: str) -> pa.Table:
        """Every document a stage kept (only shards that a manifest row names)."""
        return self.con.sql(f'SELECT * FROM "docs_{stage}"').to_arrow_table()

    def rejects(self, stage: str | None = None) -> pa.Table:
        where = " WHERE stage = ?" if stage else ""
        return self.con.sql("SELECT * FROM rejects" + where, params=[stage] if stage else None).to_arrow_table()

    def shards(self) -> pa.Table:
        return self.con.sql("SELECT * FROM shards").to_arrow_table()

    def report(self) -> Path:
        from curate.pipeline.html_report import write_report
        return write_report(self.path)

    def _finished(self, stage: str):
        from curate.manifests.manifest import FINISHED, read_rows
        return [r for _, r in sorted(read_rows(self.path, stage).items()) if r.status in FINISHED]

    def tokens(self, lang: str | None = None) -> "TokenSequences":
        """The token shards that `tokenize.write_tokens` wrote (of one language, or all), in
        shard order: `seqs[i]` is document i's token ids as a read-only NumPy view into the
        memory-mapped `.bin` (nothing is copied); `seqs.shards` are the pairs."""
        from curate.pipeline.storage import ObjectPath
        from curate.stages.tokenize.megatron import TokenShard
        if isinstance(self.path, ObjectPath):
            raise ValueError(f"{self.path}: token shards are memory-mapped from a local disk; copy "
                             f"{self.path}/tokens/ down first and open it with TokenShard.open(prefix)")
        shards = []
        for row in self._finished("tokenize"):
            info = row.stats_dict.get("token_shard")
            if info and (lang is None or (row.lang or row.unit.split("/", 1)[0]) == lang):
                shards.append(TokenShard.open(self.path / info["bin"]))
        if not shards:
            raise LookupError(f"{self.path}: no token shards" + (f" of language {lang!r}" if lang else "")
                              + " (run the tokenize stage with tokenize.write_tokens: true)")
        return TokenSequences(shards)

    def ray_dataset(self, stage: str = "remix"):
        """A Ray Dataset over a stage's finished shards (only files a manifest row names)."""
        try:
            import ray.data
        except ImportError as exc:
            raise ImportError(f"ray_dataset() needs Ray Data ({exc}); pip install 'curate[data]'") from None
        paths = [str(self.path / r.path) for r in self._finished(stage) if r.path and r.docs]
        if not paths:
            raise LookupError(f"{self.path}: no finished {stage} shards with documents")
        return ray.data.read_parquet(paths)


class TokenSequences:
    """Documents' token ids across token shards, each a view into a memory map."""

    def __init__(self, shards: list):
        import numpy as np
        self.shards = shards
        self._starts = np.cumsum([0] + [len(s) for s in shards])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i: int):
        import numpy as np
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.shards[k][i - int(self._starts[k])]

    def __iter__(self):
        for shard in self.shards:
            yield from shard

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.shards)


def open(output: str | Path, allow_write: bool = False) -> Output:    # noqa: A001 (reads like the builtin on purpose)
    """What a run wrote. Queries read only, and only files under the output, unless
    allow_write=True."""
    return Output(output, allow_write=allow_write)
