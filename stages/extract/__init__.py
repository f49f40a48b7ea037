"""extract: input files -> documents (one unit per input file).

WARC response records go through HTML extraction (trafilatura); WET conversion records
(Common Crawl's own text) and a user's documents in JSONL or Parquet become documents
directly. Files no reader knows (WAT metadata, anything else) are listed in the run
summary and in `curate status`, never silently skipped."""
from __future__ import annotations

import hashlib
import os
import logging
import signal
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from curate.pipeline.settings import NONEMPTY, at_least, between, one_of, positive, setting
from curate.pipeline.schema import DOC_SCHEMA
from curate.pipeline.stage import (InputRef, PlanContext, PlannedUnits, Stage, Unit, UnitSink,
                                   fingerprints_of_one)
from curate.manifests.atomic import write_table_atomic
from curate.manifests.manifest import printable
from curate.pipeline import storage
from curate.stages.extract.prefilter import judge
from curate.stages.extract.http import BodyTooLarge, HttpError, decode_body, is_html, parse_response
from curate.stages.extract.sources import (JSONL, PARQUET, READABLE, WET, Damage, Fields, Skip, conversion_event, input_kind,
                                           read_jsonl, read_parquet, read_wet, too_long)
from curate.stages.extract.warc import WarcDamage, read_warc

BATCH_DOCS = 500
WALL_CAP_FACTOR = 10     # the wall-clock safety net, as a multiple of the CPU cap


@dataclass
class ExtractSettings:
    max_html_bytes: int = setting(
        2_000_000, "decoded HTTP bodies larger than this are rejected (extract:too_large); "
                   "Common Crawl itself truncates payloads at 1 MiB", positive())
    max_doc_chars: int = setting(
        1_000_000, "documents longer than this many characters are rejected (extract:too_long) by every "
                   "reader, before they are held whole where the format allows (a JSON line, a WARC/WET "
                   "record is read past a chunk at a time). Common Crawl truncates payloads at 1 MiB, so "
                   "web text stays far below; raise it for books", positive())
    timeout_s: float = setting(
        5.0, "CPU-time cap per page for main-text extraction (extract:timeout); CPU time, so "
             "the result does not depend on machine load; a wall-clock cap of "
             f"{WALL_CAP_FACTOR}x this stays as a safety net against a page stuck off-CPU; 0 = no cap",
        at_least(0, 3600))
    favor_precision: bool = setting(
        True, "trafilatura: prefer leaving text out to letting boilerplate in")
    include_tables: bool = setting(
        True, "keep the text of HTML tables: on the shared gold pages dropping them cost "
              "recall (F1 0.979 -> 0.961) without gaining precision")
    include_comments: bool = setting(False, "keep user comments below articles")
    fallback_extractors: bool = setting(
        True, "trafilatura's readability/jusText fallbacks on hard pages (about 1.4x slower)")
    extractor: str = setting("trafilatura", "main-text extractor: trafilatura (best quality on the gold sets) or "
                                            "resiliparse (several times less CPU; pip install 'curate[fast]'); "
                                            "see the README's table", one_of("trafilatura", "resiliparse"))
    prefilter: bool | None = setting(None, "language pre-filter before the extractor: true/false; a page confidently "
                                           "in a language langid would drop is rejected as "
                                           "extract:prefilter_lang:<code> without extraction; null = on when langid "
                                           "is in the order")
    prefilter_threshold: float = setting(0.8, "fastText score the pre-filter needs to reject a page (the kept "
                                              "languages' own probability must also be under 2%)", between(0.5, 1))
    prefilter_languages: list[str] | None = setting(None, "languages the pre-filter keeps; null = langid.languages",
                                                    NONEMPTY)
    prefilter_model_path: str | None = setting(None, "lid.176 model for the pre-filter; null = langid's", NONEMPTY)
    text_field: str = setting("text", "JSONL/Parquet inputs: the field that holds the text (a dotted name such as doc.body reaches into nested objects)", NONEMPTY)
    id_field: str = setting("id", "JSONL/Parquet inputs: the field with the input's own id (optional; "
                                  "kept as warc_record_id; document ids stay unique)", NONEMPTY)
    url_field: str = setting("url", "JSONL/Parquet inputs: the URL field (optional; also looked up under metadata)", NONEMPTY)
    date_field: str = setting("date", "JSONL/Parquet inputs: the date field, ISO 8601 or epoch seconds "
                                      "(optional)", NONEMPTY)

    def validate(self):
        if self.extractor == "resiliparse":
            try:
                import resiliparse.extract.html2text  # noqa: F401
            except ImportError:
                raise ValueError("extractor: resiliparse is not installed here; install it with "
                                 "pip install 'curate[fast]' (or pip install resiliparse)") from None


def doc_id(record_id: str, source: str) -> str:
    """Stable and unique document id: the WARC-Record-ID together with where the record
    lies (`<dump>/<file>@<byte offset>`). The record id alone repeats in real crawls (a
    record written twice, one file given under two dumps); a file and offset hold one
    record, so ids are unique across the corpus by construction, and the same on every run."""
    return hashlib.blake2b(f"{record_id}\0{source}".encode("utf-8", "surrogateescape"),
                           digest_size=10).hexdigest()


def target_uri(value: str | None) -> str | None:
    """WARC/1.0 writers such as wget put the URI in angle brackets: `<https://...>`."""
    if value and value.startswith("<") and value.endswith(">"):
        return value[1:-1].strip()
    return value


def sample_fingerprint(path, name: str, sample: int = 1 << 16) -> str:
    """Content fingerprint of an input file: name, size, first and last 64 KiB.
    Cheap on terabytes of WARC and independent of where the files are mounted."""
    size = storage.size(str(path))
    h = hashlib.sha256(f"{name}\0{size}\0".encode("utf-8", "surrogateescape"))
    with storage.open_input(str(path)) as fh:
        h.update(fh.read(sample))
        if size > 2 * sample:
            fh.seek(size - sample)
            h.update(fh.read(sample))
    return h.hexdigest()[:24]


def unit_stem(name: str) -> str:
    return input_kind(name)[1]


HTTP_HEADER_SLACK = 1 << 20     # HTTP headers and chunk framing around a body


class InputError(ValueError):
    pass


KNOWN = "*.warc.gz, *.warc, *.warc.wet.gz, *.wet.gz, *.wet, *.jsonl, *.jsonl.gz, *.jsonl.zst or *.parquet"


def list_inputs(input_dir: str | Path, dump: str | None = None) -> tuple[list[tuple[str, storage.Entry, str]],
                                                                          list[storage.Entry]]:
    """(dump, file, stem) in a deterministic order, and the files no reader knows (WAT,
    anything else), which the run reports. One sub-folder per dump; or, with `dump`, the
    input folder's own files are that dump (a flat folder). The folder may be local or a
    URI (s3://bucket/crawl, gs://...)."""
    root = str(input_dir)
    try:
        if not storage.is_dir(root):
            if storage.is_file(root):
                raise InputError(f"input {root} is a file: --input takes a folder (one sub-folder per dump, "
                                 "or a flat folder of files with --dump NAME); put the file in a folder")
            raise InputError(f"input folder {root} does not exist or is not a folder")
        top = storage.list_dir(root)
    except OSError as exc:                 # a missing bucket, no credentials, no permission
        raise InputError(f"input folder {root} cannot be read: {exc}") from None
    if dump is not None:
        subdirs = [e.name for e in top if e.is_dir and not e.name.startswith(".")]
        if subdirs:
            raise InputError(f"--dump {dump}: {root} holds dump folders ({', '.join(sorted(subdirs)[:5])}); "
                             "--dump is for a flat folder of files; leave it out to read one dump per folder")
        groups = [(dump, top)]
    else:
        try:
            groups = [(e.name, storage.list_dir(e.location)) for e in top if e.is_dir and not e.name.startswith(".")]
        except OSError as exc:
            raise InputError(f"input folder {root} cannot be read: {exc}") from None
        _refuse_folders_of_dumps(root, groups)
    found = []
    # a hidden folder (.cache/, .git/) is no dump: listed as not read, never skipped silently
    ignored = [e for e in top if e.is_dir and e.name.startswith(".")] if dump is None else []
    for name, entries in groups:
        for f in entries:
            # hidden files are read like any other: ..hidden.jsonl is a JSON lines file
            kind, stem = input_kind(f.name)
            if kind in READABLE and not f.is_dir:
                # a known name that is not a readable file (a symlink loop, a dangling link,
                # no permission) is planned too: its unit fails naming the file, so it is
                # reported, never silently skipped
                found.append((name, f, stem))
            else:
                ignored.append(f)
    if not found:
        flat = dump is None and any(not f.is_dir and input_kind(f.name)[0] for f in top)
        hint = (f"; {root} holds input files directly: give --dump NAME (or `dump:` in the config) to "
                "read it as one dump" if flat else "")
        raise InputError(f"no input files ({KNOWN}) under {root}/<dump>/ (one sub-folder per crawl "
                         f"dump, named after the dump){hint}"
                         + (f"; not read: {', '.join(printable(e.name) for e in ignored[:5])}" if ignored else ""))
    return found, ignored


def _readable_files(entries) -> bool:
    return any(not f.is_dir and input_kind(f.name)[0] in READABLE for f in entries)


def _refuse_folders_of_dumps(root: str, groups) -> None:
    """`--input` one level too high: its sub-folders would be read as dumps while the real
    dump folders one level down were listed as unread. A sub-folder that holds folders
    of input files is a folder of dumps: stop, naming it."""
    nested = []
    for name, entries in groups:
        inner = [e for e in entries if e.is_dir and not e.name.startswith(".")]
        try:
            deeper = [e.name for e in inner if _readable_files(storage.list_dir(e.location))]
        except OSError:
            continue
        if deeper:
            nested.append((name, sorted(deeper)))
    if not nested:
        return
    likely = storage.join(root, nested[0][0])
    shown = "; ".join(f"{name}/ holds {', '.join(d + '/' for d in dumps[:3])}" + (" ..." if len(dumps) > 3 else "")
                      for name, dumps in nested[:3])
    raise InputError(f"input folder {root}: its sub-folders are read as crawl dumps, but {shown}, which hold "
                     f"the input files: the dump folders are one level down. Is the input {likely}? "
                     f"Give --input {likely}")


class _Timeout(Exception):
    pass


@contextmanager
def time_cap(seconds: float, wall_factor: float = WALL_CAP_FACTOR):
    """Raise _Timeout after `seconds` of CPU time of this process (ITIMER_PROF: user +
    system time, so a page's fate does not depend on how loaded the machine is), or after
    `wall_factor` times that of wall time (ITIMER_REAL, only a safety net for a page that
    waits off-CPU). Signals reach the main thread only, where Ray runs tasks; elsewhere,
    or with seconds == 0, there is no cap."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_expiry(signum, frame):
        raise _Timeout()

    old_prof = signal.signal(signal.SIGPROF, on_expiry)
    old_alarm = signal.signal(signal.SIGALRM, on_expiry)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    signal.setitimer(signal.ITIMER_REAL, seconds * wall_factor)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGPROF, old_prof)
        signal.signal(signal.SIGALRM, old_alarm)


def _quiet_trafilatura() -> None:
    """trafilatura logs a WARNING "discarding data: URL" for every page it finds no main
    text in; curate rejects that page with a reason already (extract:empty), so the line
    would only repeat it, once per unit, in every run's log."""
    core = logging.getLogger("trafilatura.core")
    if not any(getattr(f, "curate", False) for f in core.filters):
        drop = logging.Filter()
        drop.filter = lambda record: not record.getMessage().startswith("discarding data")
        drop.curate = True
        core.addFilter(drop)


def extract_text(html: str, url: str | None, s: ExtractSettings) -> str:
    if s.extractor == "resiliparse":
        from resiliparse.extract.html2text import extract_plain_text
        from resiliparse.parse.html import HTMLTree
        return extract_plain_text(HTMLTree.parse(html), main_content=True, alt_texts=False, links=False,
                                  form_fields=False, noscript=False) or ""
    import trafilatura
    _quiet_trafilatura()
    text = trafilatura.extract(
        html, url=url, output_format="txt", favor_precision=s.favor_precision,
        include_tables=s.include_tables, include_comments=s.include_comments,
        include_links=False, include_images=False, fast=not s.fallback_extractors,
        deduplicate=False, with_metadata=False)
    return text or ""


def parse_warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def input_ref(entry: storage.Entry, name: str, cache: "FingerprintCache | None" = None,
              folder: str | None = None) -> InputRef:
    """A source file and its content fingerprint; an unreadable file gets a fingerprint
    that says why (its unit then fails with the error, and is retried on every run).
    `folder`: the entry's folder, already resolved (a file that is no link is resolved by
    joining its name: one realpath per folder, not per file)."""
    return InputRef(*locate_input(entry, name, cache, folder))


def locate_input(entry: storage.Entry, name: str, cache: "FingerprintCache | None" = None,
                 folder: str | None = None) -> tuple[str, str]:
    """input_ref() as (path, fingerprint)."""
    path = entry.location
    uri = storage.is_uri(path)
    if uri:
        where = path
    elif folder is not None and not entry.link:
        where = f"{folder}/{entry.name}" if folder != "/" else f"/{entry.name}"     # folder: a realpath
    else:
        try:
            where = str(Path(path).resolve())
        except (OSError, RuntimeError):     # a symlink loop cannot be resolved
            where = str(Path(path).absolute())
    try:
        if cache is not None and not uri:
            return where, cache.fingerprint(where, path, name)
        return where, sample_fingerprint(path, name)
    except OSError as exc:
        return where, f"unreadable:{exc.strerror or type(exc).__name__}"


class FingerprintCache:
    """Local input files' content fingerprints, remembered by file identity in
    OUT/_work/extract/input-fingerprints.parquet: (path, name, size, mtime_ns, ctime_ns,
    inode). Any write to a file changes its ctime, which no tool can set back, so a file
    whose identity is unchanged has unchanged content; planning a dump's 90,000 files then
    costs a stat per file instead of two reads. Only the runner saves it (under the lock);
    `curate status` reads it."""

    FILE = "_work/extract/input-fingerprints.parquet"
    COLUMNS = ("path", "name", "size", "mtime_ns", "ctime_ns", "ino", "fingerprint")

    def __init__(self, output):
        self.output = output
        self.known: dict[tuple, str] = {}
        self.used: dict[tuple, str] = {}
        try:
            import pyarrow.parquet as pq
            table = pq.read_table(storage.location(output) / self.FILE) if output is not None else None
        except Exception:           # none yet, or unreadable: fingerprints are computed again
            table = None
        if table is not None and set(self.COLUMNS) <= set(table.column_names):
            cols = [table.column(c).to_pylist() for c in self.COLUMNS]
            self.known = {key[:-1]: key[-1] for key in zip(*cols)}

    def fingerprint(self, where: str, path: str, name: str) -> str:
        st = os.stat(path)
        key = (where, name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        fp = self.known.get(key)
        if fp is None:
            fp = sample_fingerprint(path, name)
        self.used[key] = fp
        return fp

    def save(self) -> None:
        """Write what this plan used, when it differs from what was read."""
        if self.output is None or self.used == self.known or not self.used:
            return
        import pyarrow as pa
        # a name that is not UTF-8 (surrogate escapes) cannot be stored: fingerprinted anew
        keys = sorted(k for k in self.used if printable(k[0]) == k[0] and printable(k[1]) == k[1])
        cols = {c: [k[i] for k in keys] for i, c in enumerate(self.COLUMNS[:-1])}
        cols["fingerprint"] = [self.used[k] for k in keys]
        write_table_atomic(pa.table(cols), storage.location(self.output) / self.FILE)
        self.known = dict(self.used)


class ExtractStage(Stage):
    name = "extract"
    code_version = "6"      # 6: extract:too_long (max_doc_chars), oversized records read past; 2: ids include the record's place, URLs lose WARC/1.0 brackets; 3: GB18030
                            # with replacement, replaced_chars; 5: JSON lines keep lone surrogates as U+FFFD, url/date under metadata; brotli and zstd bodies
    settings_cls = ExtractSettings
    summary = "WARC response records -> main text (trafilatura)"

    def plan(self, ctx: PlanContext) -> list[Unit]:
        if not ctx.config.input:
            raise InputError("no input folder: give --input DIR or `input:` in the config")
        settings = ctx.config.settings(self.name)
        found, ignored = list_inputs(ctx.config.input, ctx.config.dump)
        self._listed = ((ctx.config.input, ctx.config.dump), ignored)     # unread_inputs reuses it
        stems = Counter((dump, stem) for dump, _, stem in found)
        cache = FingerprintCache(ctx.output)
        folders: dict[str, str | None] = {}
        keys, dumps, wheres, input_fps = [], [], [], []
        for dump, path, stem in found:
            # example.warc and example.warc.gz side by side: both keep their full names
            # a file name that is not valid UTF-8 gets a printable key (\xNN escapes)
            keys.append(printable(f"{dump}/{stem if stems[(dump, stem)] == 1 else path.name}"))
            parent = path.location.rpartition("/")[0]       # the folder listed: list_dir joined its name
            if parent not in folders:
                try:
                    folders[parent] = None if storage.is_uri(parent) else os.path.realpath(parent, strict=True)
                except (OSError, RuntimeError):
                    folders[parent] = None
            where, input_fp = locate_input(path, f"{dump}/{path.name}", cache, folders[parent])
            dumps.append(dump)
            wheres.append(where)
            input_fps.append(input_fp)
        fps = fingerprints_of_one(self, settings, input_fps)
        self._cache = cache

        def units() -> list[Unit]:
            return [Unit(self.name, key, dump, [InputRef(where, ifp)], out_path=f"extract/{key}.parquet",
                         rejects_path=f"rejects/extract/{key}.parquet", fingerprint=fp)
                    for key, dump, where, ifp, fp in zip(keys, dumps, wheres, input_fps, fps)]
        return PlannedUnits(keys, fps, units)

    def persist_plan(self, output) -> None:
        cache = getattr(self, "_cache", None)
        if cache is not None and str(cache.output) == str(output):
            cache.save()

    def prepare(self, s: ExtractSettings, ctx) -> None:
        if s.prefilter:                          # fetch the model once, in the driver
            from curate.stages.langid.model import resolve_lid_model
            resolve_lid_model(s.prefilter_model_path)

    def unread_inputs(self, config) -> list[str]:
        if not config.input:
            return []
        listed = getattr(self, "_listed", None)
        if listed is not None and listed[0] == (config.input, config.dump):
            ignored = listed[1]         # the plan just listed the same folder
        else:
            try:
                _, ignored = list_inputs(config.input, config.dump)
            except InputError:
                return []
        root = str(config.input).rstrip("/") + "/"
        return [printable((e.location[len(root):] if e.location.startswith(root) else e.name)
                          + ("/" if e.is_dir else "")) for e in ignored]

    def process(self, unit: Unit, s: ExtractSettings, sink: UnitSink) -> None:
        sink.set_schema(DOC_SCHEMA)
        path = unit.inputs[0].path
        kind = input_kind(storage.basename(path))[0]
        if kind in (WET, JSONL, PARQUET):
            return self._process_documents(kind, unit, s, sink)
        warc_file = printable(f"{unit.dump}/{storage.basename(path)}")
        records = Counter()
        rows: list[dict] = []
        extract_seconds = prefilter_seconds = 0.0
        # a record over this is read past, never held: its body is over max_html_bytes
        # (raw bodies are no longer than decoded ones), a conversion's text over max_doc_chars
        max_block = max(s.max_html_bytes + HTTP_HEADER_SLACK, 4 * s.max_doc_chars)
        with storage.open_input(path) as fh:
            for ev in read_warc(fh, max_block=max_block):
                sink.report_progress(fh.tell())        # compressed bytes read so far
                if isinstance(ev, WarcDamage):
                    sink.report_damage(ev.describe(warc_file))
                    if ev.headers and ev.headers.get("warc-type") == "response":
                        # a response cut by the damage: counted and rejected, not lost
                        sink.count_in()
                        rid = ev.headers.get("warc-record-id", "")
                        source = f"{warc_file}@{ev.offset}"
                        sink.reject("extract:truncated_record", ev.message, doc_id(rid, source), unit.dump,
                                    target_uri(ev.headers.get("warc-target-uri")), source)
                    continue
                records[ev.type or "unknown"] += 1
                if ev.type == "conversion":     # WET text inside a WARC-named file: a document as is
                    rows += self._conversion_row(ev, unit, sink, warc_file, s.max_doc_chars)
                    continue
                if ev.type != "response":
                    continue
                sink.count_in()
                rid = ev.headers.get("warc-record-id", "")
                url = target_uri(ev.headers.get("warc-target-uri"))
                source = f"{warc_file}@{ev.offset}"
                did = doc_id(rid, source)

                def reject(reason, detail=None):
                    sink.reject(reason, detail, did, unit.dump, url, source)

                if ev.skipped:
                    reject("extract:too_large", f"record of {ev.skipped:,} bytes > extract.max_html_bytes "
                                                f"{s.max_html_bytes:,} (read past, not held)")
                    continue

                try:
                    resp = parse_response(ev.block, max_body=s.max_html_bytes)
                except BodyTooLarge as exc:
                    reject("extract:too_large", str(exc))
                    continue
                except HttpError as exc:
                    reject("extract:bad_http", str(exc))
                    continue
                if resp.status != 200:
                    reject("extract:http_status", str(resp.status))
                    continue
                if not is_html(resp):
                    reject("extract:not_html", resp.mime or "no content-type")
                    continue
                if len(resp.body) > s.max_html_bytes:
                    reject("extract:too_large", f"{len(resp.body)} bytes > {s.max_html_bytes}")
                    continue
                html, charset, _ = decode_body(resp.body, resp.headers.get("content-type", ""))
                if s.prefilter:
                    t0 = time.process_time()
                    verdict = judge(html, s.prefilter_languages, s.prefilter_threshold, s.prefilter_model_path)
                    prefilter_seconds += time.process_time() - t0
                    if verdict is not None:
                        reject(f"extract:prefilter_lang:{verdict[0]}", f"{verdict[0]} {verdict[1]:.3f} (page text "
                                                                       "before extraction)")
                        continue
                t0 = time.perf_counter()
                try:
                    with time_cap(s.timeout_s):
                        text = extract_text(html, url, s)
                except _Timeout:
                    reject("extract:timeout", f"> {s.timeout_s} s CPU")
                    continue
                except Exception as exc:        # a parser bug on one page must not stop the file
                    reject("extract:failed", f"{type(exc).__name__}: {exc}"[:300])
                    continue
                finally:
                    extract_seconds += time.perf_counter() - t0
                text = text.strip()
                if not text:
                    reject("extract:empty")
                    continue
                long = too_long(len(text), s.max_doc_chars)
                if long:
                    reject("extract:too_long", long)
                    continue
                rows.append({
                    "id": did, "dump": unit.dump, "url": url,
                    "date": parse_warc_date(ev.headers.get("warc-date")),
                    "text": text, "n_chars": len(text), "warc_file": warc_file,
                    "warc_record_id": rid, "warc_offset": ev.offset, "charset": charset,
                    "replaced_chars": text.count("\ufffd"),
                })
                if len(rows) >= BATCH_DOCS:
                    sink.add_docs(pa.Table.from_pylist(rows, schema=DOC_SCHEMA))
                    rows = []
        sink.add_docs(pa.Table.from_pylist(rows, schema=DOC_SCHEMA))
        sink.stats.update({"records": dict(sorted(records.items())),
                           "extract_seconds": round(extract_seconds, 3),
                           "prefilter_cpu_seconds": round(prefilter_seconds, 3)})

    @staticmethod
    def _conversion_row(ev, unit: Unit, sink: UnitSink, warc_file: str, max_chars: int) -> list[dict]:
        sink.count_in()
        doc = conversion_event(ev.headers, ev.block, ev.offset, max_chars, ev.skipped)
        source = f"{warc_file}@{ev.offset}"
        did = doc_id(doc.source_id or "", source)
        if isinstance(doc, Skip):
            sink.reject(doc.reason, doc.detail, did, unit.dump, target_uri(doc.url), source)
            return []
        return [{"id": did, "dump": unit.dump, "url": target_uri(doc.url), "date": doc.date, "text": doc.text,
                 "n_chars": len(doc.text), "warc_file": warc_file, "warc_record_id": doc.source_id,
                 "warc_offset": doc.offset, "charset": "utf-8", "replaced_chars": doc.text.count("\ufffd")}]

    def _process_documents(self, kind: str, unit: Unit, s: ExtractSettings, sink: UnitSink) -> None:
        """WET conversion records and JSONL/Parquet documents: text as given, no HTML
        extraction. Offsets are byte offsets (WET) or line/row numbers (JSONL/Parquet)."""
        path = unit.inputs[0].path
        source_file = printable(f"{unit.dump}/{storage.basename(path)}")
        sep = "@" if kind == WET else "#"
        if kind == WET:
            fh = storage.open_input(path)
            events = read_wet(fh, path.endswith(".gz"), s.max_doc_chars)
        else:
            fh = None
            fields = Fields(s.text_field, s.id_field, s.url_field, s.date_field, s.max_doc_chars)
            events = (read_jsonl if kind == JSONL else read_parquet)(path, fields)
        rows: list[dict] = []
        counts = Counter()
        try:
            for ev in events:
                if fh is not None:
                    sink.report_progress(fh.tell())
                if isinstance(ev, Damage):
                    sink.report_damage(f"{source_file} at {'byte' if kind == WET else 'record'} {ev.offset}: "
                                       f"{ev.message}")
                    continue
                counts[type(ev).__name__] += 1
                sink.count_in()
                source = f"{source_file}{sep}{ev.offset}"
                did = doc_id(ev.source_id or "", source)
                url = target_uri(ev.url)
                if isinstance(ev, Skip):
                    sink.reject(ev.reason, ev.detail, did, unit.dump, url, source)
                    continue
                rows.append({"id": did, "dump": unit.dump, "url": url, "date": ev.date, "text": ev.text,
                             "n_chars": len(ev.text), "warc_file": source_file, "warc_record_id": ev.source_id,
                             "warc_offset": ev.offset, "charset": "utf-8",
                             "replaced_chars": ev.text.count("\ufffd")})
                if len(rows) >= BATCH_DOCS:
                    sink.add_docs(pa.Table.from_pylist(rows, schema=DOC_SCHEMA))
                    rows = []
        finally:
            if fh is not None:
                fh.close()
        sink.add_docs(pa.Table.from_pylist(rows, schema=DOC_SCHEMA))
        sink.stats.update({"input_kind": kind, "records": {"documents": counts["Doc"], "rejected": counts["Skip"]}})
