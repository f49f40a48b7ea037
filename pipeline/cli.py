"""The `curate` command line."""
from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
from pathlib import Path

from curate.pipeline.config import ConfigError, config_from_dict, describe_defaults, load_config
from curate.pipeline.storage import StorageError, location

EXIT_OK, EXIT_FAILED_UNITS, EXIT_USAGE, EXIT_CONSERVATION = 0, 1, 2, 3


def _add_common(p: argparse.ArgumentParser, with_config: bool = True) -> None:
    if with_config:
        p.add_argument("--config", help="YAML or TOML config file (see `curate config`)")
    p.add_argument("--output", help="output folder (default: the config's, else ./curate-out)")


def _add_output_style(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="only warnings and errors while running")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text: live bars on a terminal, plain lines otherwise; json: one JSON object per event")
    if p.prog.endswith(" run"):
        p.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                       help="write OUT/report/index.html at the end (default: yes)")


def _view(args):
    from curate.pipeline.progress import make_view
    return make_view(args.log_format, args.quiet)


def _finish(out, result, view, write: bool) -> None:
    from curate.pipeline.report import run_summary
    view.close()
    _print_to_a_pipe(run_summary(out, result))
    if write:           # written even when nobody reads stdout any more
        from curate.pipeline.html_report import write_report
        _print_to_a_pipe(f"report: {write_report(out)}")


def _print_to_a_pipe(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:         # `curate run | head`: the run is finished; the rest is not read
        _silence_stdout()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("curate")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="curate", description=(
        "Pretraining-data curation: WARC -> clean, deduplicated, remixed corpus on Ray."))
    ap.add_argument("--version", action="version", version=f"curate {_version()}")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the pipeline (or some stages of it)")
    _add_common(run)
    run.add_argument("--input", help="folder with one sub-folder per crawl dump (WARC, WET, JSONL, Parquet files)")
    run.add_argument("--dump", help="the input folder is flat (files, no dump folders): read it as this dump")
    run.add_argument("--stage", nargs="+", action="extend", metavar="NAME",
                     help="run only these stages (their inputs must be done)")
    run.add_argument("--until", metavar="NAME", help="run the order up to and including this stage")
    run.add_argument("--force", action="store_true", help="redo units even when they are fresh")
    run.add_argument("--replace", action="store_true",
                     help="empty the output folder first: start it over, for another input")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else embedded local Ray)")
    _add_output_style(run)

    st = sub.add_parser("status", help="units done / partial / failed / stale per stage")
    _add_common(st)
    st.add_argument("--input", help="input folder (default: the one the last run used)")

    q = sub.add_parser("query", help="SQL over manifests, rejects and documents (DuckDB)")
    q.add_argument("sql", help="e.g. \"SELECT stage, status, count(*) FROM shards GROUP BY ALL\"")
    _add_common(q, with_config=False)
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.add_argument("--allow-write", action="store_true",
                   help="also run statements that write or reach outside the output (COPY, ATTACH, INSTALL, ...)")

    demo = sub.add_parser("demo", help="make the demo corpus and run the pipeline on it")
    demo.add_argument("--output", default="curate-demo", help="folder for the corpus and the run")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--scale", type=int, default=1, help="N times the pages and files per dump")
    demo.add_argument("--address", help="Ray cluster address")
    demo.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                      help="write OUT/run/report/index.html at the end (default: yes)")
    _add_output_style(demo)

    es = sub.add_parser("estimate", help="measure the pipeline on a sample and project cost, storage and tokens")
    es.add_argument("--input", help="a sample crawl folder (run the pipeline on it)")
    es.add_argument("--from-run", metavar="OUT", help="measure an existing run's output instead of running")
    es.add_argument("--config", help="config file (the same as the production run's)")
    es.add_argument("--output", help="where the sample run writes (default: a temporary folder)")
    es.add_argument("--pages", type=float, help="project to this many input records (pages)")
    es.add_argument("--dumps", type=float, help="project to this many dumps of --pages-per-dump pages")
    es.add_argument("--pages-per-dump", type=float, default=3e9, help="pages per dump (Common Crawl: about 3e9)")
    es.add_argument("--address", help="Ray cluster address for the sample run")
    es.add_argument("--format", choices=("text", "json"), default="text",
                    help="json: one object (documents, tokens, dumps_to_budget, stages, what is measured)")

    rp = sub.add_parser("report", help="write OUT/report/index.html: funnel, rejects, dedup, mix, tokens, samples")
    _add_common(rp, with_config=False)

    vf = sub.add_parser("verify", help="check every shard against its manifest row; mark damaged ones stale")
    _add_common(vf, with_config=False)
    vf.add_argument("--deep", action="store_true", help="also compare each file's sha256 (reads every byte)")

    sub.add_parser("config", help="print every config key with its default")

    tq = sub.add_parser("train-quality", help="train a fastText quality classifier (DCLM style)")
    from curate.stages.quality.train import add_arguments
    add_arguments(tq)

    models = sub.add_parser("models", help="models the stages use")
    msub = models.add_subparsers(dest="models_command", required=True)
    fetch = msub.add_parser("fetch", help="put the fastText language-ID model in the user cache")
    fetch.add_argument("--official", action="store_true",
                       help="take lid.176.bin from fastText's own site (needs open internet)")
    return ap


def _resolve_config(args, need_input: bool):
    overrides = {"output": getattr(args, "output", None), "input": getattr(args, "input", None),
                 "dump": getattr(args, "dump", None)}
    if getattr(args, "config", None):
        return load_config(args.config, overrides)
    out = location(args.output or "curate-out")
    saved = out / "run-config.json"
    if not need_input and saved.exists():
        raw = json.loads(saved.read_text())
        raw["output"] = str(out)
        return config_from_dict(raw, overrides)
    return load_config(None, overrides)


class RunStopped(Exception):
    """A run stopped on a signal or a closed stdout: its message and exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _run_pipeline(cfg, address, view, rerun: str, **run_args):
    """Run the pipeline; SIGINT, SIGTERM or a closed stdout stop it cleanly (Ray shut
    down, lock released) and become `RunStopped`, naming the stage and how to finish."""
    from curate.pipeline.interrupt import EXIT_BROKEN_PIPE, stop_on_signals
    from curate.pipeline.runner import Runner, stop_ray
    runner = Runner(cfg, address=address, view=view)
    try:
        with stop_on_signals():
            try:
                return runner.run(**run_args)
            finally:
                view.close()
                if runner.started_ray:      # never a Ray this process had before (a caller's, a test's)
                    stop_ray()
    except BaseException as raised:
        exc = _stop_cause(raised)
        if exc is None:
            raise
        if isinstance(exc, BrokenPipeError):
            _silence_broken_streams()
            why, code = "its output was closed (broken pipe)", EXIT_BROKEN_PIPE
        else:
            signum = getattr(exc, "signum", signal.SIGTERM if isinstance(exc, SystemExit) else signal.SIGINT)
            why, code = f"interrupted by {signal.Signals(signum).name}", 128 + signum
        where = f" during stage {runner.stage_now}" if runner.stage_now else " before any stage started"
        raise RunStopped(f"the run stopped{where}: {why}. What is published is whole; run `{rerun}` "
                         "with the same arguments to finish the rest", code) from None


def _stop_cause(exc: BaseException | None) -> BaseException | None:
    """The signal or closed pipe that stopped a run, also where a library wrapped it: a
    SIGINT that lands inside Ray's CoreWorker.wait comes out as a SystemError caused by our
    Interrupted. Ray's own SIGTERM handler exits with 15; any other SystemExit is not one."""
    from curate.pipeline.interrupt import Interrupted
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (Interrupted, KeyboardInterrupt, BrokenPipeError)) or (
                isinstance(exc, SystemExit) and exc.code == signal.SIGTERM):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _pipe_closed(stream) -> bool:
    """Whether the reader of this stream's pipe went away (poll says POLLERR)."""
    import select
    try:
        poll = select.poll()
        poll.register(stream.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_broken_streams() -> None:
    """Point whichever of stdout and stderr lost its reader at /dev/null, so that the
    way out (closing the view, the message) writes nothing more into a closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        if _pipe_closed(stream):
            os.dup2(devnull, stream.fileno())


def cmd_run(args) -> int:
    cfg = _resolve_config(args, need_input=True)
    view = _view(args)
    result = _run_pipeline(cfg, args.address, view, "curate run", only=args.stage, until=args.until,
                           force=args.force, replace=args.replace)
    _finish(location(cfg.output), result, view, args.report)
    return EXIT_FAILED_UNITS if result.failed else EXIT_OK


def cmd_status(args) -> int:
    from curate.pipeline.registry import STAGES
    from curate.pipeline.report import status_table, unread_lines
    from curate.pipeline.runner import plan_pipeline

    out = location(args.output or "curate-out")
    if not args.input and not args.config and not (out / "manifests").exists():
        raise ConfigError(f"{out} has no manifests: run `curate run --output {out}` first "
                          "(or give --input to see what a run would do)")
    cfg = _resolve_config(args, need_input=False)
    print(status_table(location(cfg.output), plan_pipeline(cfg)))
    for line in unread_lines([f for n in cfg.order for f in STAGES[n].unread_inputs(cfg)]):
        print(line)
    return EXIT_OK


def _format_table(columns: list[str], rows: list[tuple]) -> str:
    def cell(v):
        s = "NULL" if v is None else str(v)
        s = s.replace("\n", "\\n")
        return s if len(s) <= 60 else s[:57] + "..."
    cells = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def cmd_query(args) -> int:
    from curate.manifests.views import check_read_only, connect

    out = location(args.output or "curate-out")
    if not (out / "manifests").exists():
        raise ConfigError(f"{out} has no manifests: run `curate run --output {out}` first")
    if not args.allow_write:
        check_read_only(args.sql)
    con = connect(out, read_only=not args.allow_write, sql=args.sql,
                  warn=lambda m: print(f"curate: warning: {m}", file=sys.stderr, flush=True))
    cur = con.execute(args.sql)
    columns = [d[0] for d in cur.description] if cur.description else []
    rows = cur.fetchall() if columns else []
    if args.format == "table":
        print(_format_table(columns, rows))
    elif args.format == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        w.writerows(rows)
    else:
        print(json.dumps([dict(zip(columns, r)) for r in rows], default=str, ensure_ascii=False, indent=1))
    return EXIT_OK


def cmd_verify(args) -> int:
    from curate.manifests.verify import verify

    out = location(args.output or "curate-out")
    if not (out / "manifests").exists():
        raise ConfigError(f"{out} has no manifests: run `curate run --output {out}` first")
    checked, problems = verify(out, deep=args.deep)
    what = "sizes and sha256" if args.deep else "sizes"
    if problems:
        print(f"{len(problems)} of {checked} units damaged ({what} checked); they are marked stale: "
              f"`curate run` redoes them")
        return EXIT_FAILED_UNITS
    print(f"all {checked} finished units match their manifest rows ({what} checked)")
    return EXIT_OK


def cmd_demo(args) -> int:
    from curate.pipeline.demo_corpus import make_demo_corpus

    from curate.pipeline.storage import is_uri
    if is_uri(args.output):
        raise ConfigError(f"--output {args.output}: the demo writes its corpus on this machine; give a local "
                          "folder (`curate run --output s3://...` writes to object storage)")
    out = Path(args.output)
    corpus = out / "corpus"
    if args.scale < 1:
        raise ConfigError(f"--scale: at least 1, got {args.scale}")
    info = make_demo_corpus(corpus, seed=args.seed, scale=args.scale)
    print(f"demo corpus: {info['files']} WARC files, {info['pages']} pages in "
          f"{len(info['dumps'])} dumps under {corpus}", flush=True)
    cfg = load_config(None, {"input": str(corpus), "output": str(out / "run")})
    view = _view(args)
    result = _run_pipeline(cfg, args.address, view, "curate demo")
    _finish(location(cfg.output), result, view, args.report)
    return EXIT_FAILED_UNITS if result.failed else EXIT_OK


def cmd_estimate(args) -> int:
    import tempfile
    from curate.pipeline.estimate import measure, project
    from curate.pipeline.progress import QuietView
    if args.pages is None and args.dumps is None:
        raise ConfigError("estimate: give --pages N or --dumps N (the size to project to)")
    if args.from_run:
        out = location(args.from_run)
        if not (out / "manifests").exists():
            raise ConfigError(f"--from-run {out}: no manifests there")
        measured = measure(out)
    else:
        if not args.input and not args.config:
            raise ConfigError("estimate: give --input SAMPLE_DIR (or --config with input:), or --from-run OUT")
        scratch = None if args.output else tempfile.mkdtemp(prefix="curate-estimate-")
        try:
            out = location(args.output or scratch)
            overrides = {"input": args.input, "output": str(out)}
            cfg = load_config(args.config, overrides) if args.config else load_config(None, overrides)
            where = (f"a temporary folder, {out}, removed once measured (--output DIR keeps it)" if scratch
                     else str(out))
            print(f"running the pipeline on the sample into {where} ...", file=sys.stderr, flush=True)
            _run_pipeline(cfg, args.address, QuietView(), "curate estimate")
            measured = measure(out)
        finally:
            if scratch:
                import shutil
                shutil.rmtree(scratch, ignore_errors=True)
    dumps = args.dumps or 0
    pages = args.pages if args.pages is not None else args.dumps * args.pages_per_dump
    if args.format == "json":
        from curate.pipeline.estimate import projection
        print(json.dumps(projection(measured, pages, dumps), indent=1))
    else:
        print(project(measured, pages, dumps))
    return EXIT_OK


def cmd_report(args) -> int:
    from curate.pipeline.html_report import write_report
    out = location(args.output or "curate-out")
    if not (out / "manifests").exists():
        raise ConfigError(f"{out} has no manifests: run `curate run --output {out}` first")
    print(write_report(out))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except RunStopped as exc:
        try:
            print(f"curate: {exc}", file=sys.stderr, flush=True)
        except OSError:
            pass
        return exc.code
    except KeyboardInterrupt:           # Ctrl-C outside a run (planning, a query, the report)
        print("curate: interrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # `curate query ... | head`: the reader went away; that is not an error of ours
        _silence_stdout()
        return EXIT_OK


def _dispatch(args) -> int:
    from curate.manifests.views import QueryRefused
    from curate.pipeline.runner import RunError
    from curate.pipeline.stage import ConservationError, DiskFullError, disk_full
    from curate.stages.extract import InputError
    from curate.stages.langid.model import ModelError

    try:
        if args.command == "config":
            print(describe_defaults(), end="")
            return EXIT_OK
        if args.command == "train-quality":
            from curate.stages.quality.train import run as train_run
            return train_run(args)
        if args.command == "models":
            from curate.stages.langid.model import LID_LICENCE, fetch_lid_model
            path = fetch_lid_model(official=args.official)
            print(f"{path}  ({LID_LICENCE})")
            return EXIT_OK
        return {"run": cmd_run, "status": cmd_status, "query": cmd_query, "demo": cmd_demo,
                "verify": cmd_verify, "report": cmd_report, "estimate": cmd_estimate}[args.command](args)
    except (ConfigError, InputError, RunError, ModelError, StorageError, QueryRefused) as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ConservationError as exc:
        print(f"curate: CONSERVATION CHECK FAILED: {exc}", file=sys.stderr)
        return EXIT_CONSERVATION
    except DiskFullError as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return EXIT_FAILED_UNITS
    except OSError as exc:
        if disk_full(exc):
            where = f" while writing {exc.filename}" if getattr(exc, "filename", None) else ""
            print(f"curate: error: no space left on device{where}; what is published is "
                  "consistent: free space and rerun to finish", file=sys.stderr)
            return EXIT_FAILED_UNITS
        raise
    except Exception as exc:
        import duckdb
        if isinstance(exc, duckdb.Error):
            print(f"curate: query error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
