"""Benchmark: extract through curate vs a plain single-process warcio + trafilatura loop.

Both see the same WARC files and extract the same response records with the same
trafilatura settings. Prints pages/s per core for each and their ratio, so the framework's
overhead (WARC parsing, Ray tasks, Parquet writes, manifests) is visible.

    python -m tools.bench_extract [--input ../shared/data/crawl] [--cpus 2]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

DEFAULT_INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "crawl"


def plain_loop(files: list[Path]) -> tuple[int, int, float]:
    """The reference: warcio + trafilatura in one process, as a user would write it."""
    from warcio.archiveiterator import ArchiveIterator

    from curate.stages.extract import ExtractSettings, extract_text
    from curate.stages.extract.http import decode_html
    s = ExtractSettings()
    records = pages = 0
    t0 = time.perf_counter()
    for path in files:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type != "response":
                    continue
                records += 1
                status = rec.http_headers.get_statuscode() if rec.http_headers else None
                ctype = rec.http_headers.get_header("Content-Type", "") if rec.http_headers else ""
                if status != "200" or "html" not in ctype:
                    continue
                body = rec.content_stream().read()
                html, _ = decode_html(body, ctype)
                if extract_text(html, rec.rec_headers.get_header("WARC-Target-URI"), s).strip():
                    pages += 1
    return records, pages, time.perf_counter() - t0


def curate_run(input_dir: Path, cpus: int) -> tuple[int, int, float, float, float]:
    import ray

    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import Runner
    t_ray = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    t_ray = time.perf_counter() - t_ray
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({"input": str(input_dir), "output": tmp})
        t0 = time.perf_counter()
        res = Runner(cfg, log=lambda m: None).run(only=["extract"])
        wall = time.perf_counter() - t0
    ray.shutdown()
    st = res.stages[0]
    import json
    peak = max(json.loads(r.stats)["peak_rss_mb"] for r in st.rows)
    return sum(r.docs_in for r in st.rows), sum(r.docs for r in st.rows), wall, t_ray, peak


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--cpus", type=int, default=1, help="Ray workers for the curate run")
    args = ap.parse_args(argv)
    files = sorted(args.input.glob("*/*.warc*"))
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"input: {len(files)} WARC files, {mb:.1f} MB compressed, under {args.input}")

    records, pages, secs = plain_loop(files)
    plain_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    c_records, c_pages, c_wall, t_ray, c_peak = curate_run(args.input, args.cpus)
    plain_rate = records / secs
    curate_rate = c_records / (c_wall * args.cpus)
    print(f"{'':28s} {'records':>8s} {'pages':>6s} {'seconds':>8s} {'rec/s/core':>10s} {'MB/s/core':>9s} {'peak MB':>8s}")
    print(f"{'plain warcio+trafilatura':28s} {records:8d} {pages:6d} {secs:8.2f} {plain_rate:10.1f} "
          f"{mb / secs:9.2f} {plain_rss:8.0f}")
    print(f"{f'curate extract ({args.cpus} cpu)':28s} {c_records:8d} {c_pages:6d} {c_wall:8.2f} "
          f"{curate_rate:10.1f} {mb / (c_wall * args.cpus):9.2f} {c_peak:8.0f}")
    print(f"curate / plain per core: {curate_rate / plain_rate:.3f}  "
          f"(Ray start {t_ray:.1f} s, not counted: paid once per run)")


if __name__ == "__main__":
    main()
