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

    def __init__(self, output: str | Path):
        from curate.manifests.views import connect
        self.path = location(output)
        if not (self.path / "manifests").exists():
            raise FileNotFoundError(f"{self.path} has no manifests: run curate there first")
        self.con = connect(self.path)

    def query(self, sql: str, params=None):
        """A DuckDB relation (`.fetchall()`, `.arrow()`, `.df()` ...) over the views
        shards, rejects, docs_<stage>, dedup_curve, token_totals, token_budget."""
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


def open(output: str | Path) -> Output:    # noqa: A001 (curate.open reads like the builtin on purpose)
    return Output(output)
