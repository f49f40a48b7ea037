"""curate: pretraining-data curation after the DeepSeek LLM recipe, on Ray.

Installed, the repository's folders are one namespace: curate.pipeline (config, runner,
CLI, report), curate.stages (one package per stage), curate.filters (pure text rules),
curate.manifests (the record and its DuckDB views). The Python API:

    import curate
    cfg = curate.config(input="crawl/", output="out/")
    curate.run(cfg)
    curate.open("out/").query("SELECT stage, count(*) FROM shards GROUP BY ALL").fetchall()
"""
__version__ = "0.2.0"

from curate.pipeline.api import Output, config, open, run  # noqa: E402,F401  (the public API)

__all__ = ["Output", "config", "open", "run", "__version__"]
