"""The stage protocol: how a stage plans its units of work and processes one unit.

A stage never touches Ray, manifests or temporary files: it plans `Unit`s (pure, from
the config and the upstream plan) and, for one unit, reads its inputs and hands
documents and rejects to a `UnitSink`. `execute_unit` wraps that with everything
the record needs: atomic shard writes, conservation check, checksum, manifest row.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import warnings
import resource
import socket
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Callable, ClassVar, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import __version__ as CURATE_VERSION
from curate.manifests.atomic import publish, sha256_file, temp_path_for
from curate.manifests.manifest import DONE, FAILED, PARTIAL, ManifestRow, utcnow, write_row
from curate.pipeline.schema import REJECT_SCHEMA
from curate.pipeline.storage import location

ROW_GROUP_DOCS = 2000


@dataclass(frozen=True)
class InputRef:
    path: str           # a source file (absolute) or an upstream shard (relative to output)
    fingerprint: str


@dataclass
class Unit:
    stage: str
    key: str                    # stable name, e.g. "CC-MAIN-2024-10/CC-MAIN-2024-10-00000"
    dump: str | None
    inputs: list[InputRef]
    out_path: str               # relative to the output folder
    rejects_path: str
    lang: str | None = None
    fingerprint: str = ""


class PlannedUnits(Sequence):
    """A stage's plan kept as columns (unit keys and fingerprints), its Unit objects made
    on first use: `curate status` compares a dump's 90,000 keys and fingerprints with the
    record as columns and makes no Unit at all."""

    def __init__(self, keys: list[str], fingerprints: list[str], build: Callable[[], list[Unit]]):
        self.keys = keys
        self.fingerprints = fingerprints
        self._build = build
        self._units: list[Unit] | None = None

    def units(self) -> list[Unit]:
        if self._units is None:
            self._units = self._build()
            self._build = None
        return self._units

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i):
        return self.units()[i]

    def __iter__(self):
        return iter(self.units())


def fingerprint(stage: "Stage", settings: Any, inputs: Iterable[InputRef]) -> str:
    """Settings + input fingerprints + code version: equal fingerprints, equal outputs.
    The hash of json.dumps({"code", "inputs", "settings", "stage"}, sort_keys=True), with
    the parts that do not depend on the unit serialised once per stage and settings (a
    dump's 90,000 units would serialise the settings 90,000 times)."""
    return fingerprint_of(stage, settings, [i.fingerprint for i in inputs])


def fingerprint_of(stage: "Stage", settings: Any, fps: list[str]) -> str:
    """fingerprint() of inputs given by their fingerprints."""
    head, tail = _fingerprint_frame(stage, settings)
    if all(_PLAIN.fullmatch(f) for f in fps):        # what json.dumps would write, without its encoder
        listed = '["' + '", "'.join(fps) + '"]' if fps else "[]"
    else:
        listed = json.dumps(fps)
    blob = head + listed + tail
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def fingerprints_of_one(stage: "Stage", settings: Any, fps: list[str]) -> list[str]:
    """[fingerprint_of(stage, settings, [fp]) for fp in fps], the frame looked up once
    (a plan of a dump's 90,000 one-input units)."""
    head, tail = _fingerprint_frame(stage, settings)
    head, plain, sha = head + '["', _PLAIN.fullmatch, hashlib.sha256
    tail = '"]' + tail
    return [sha((head + fp + tail).encode()).hexdigest()[:24] if plain(fp)
            else fingerprint_of(stage, settings, [fp]) for fp in fps]


_FRAMES: dict = {}
_PLAIN = re.compile(r"[ -!#-\[\]-~]*")      # printable ASCII but '"' and '\\': json.dumps leaves it as it is


def _fingerprint_frame(stage: "Stage", settings: Any) -> tuple[str, str]:
    key = (id(stage), id(settings))
    frame = _FRAMES.get(key)
    if frame is None or frame[0] is not stage or frame[1] is not settings:
        code = json.dumps(f"{CURATE_VERSION}/{stage.code_version}")
        fixed = json.dumps(stage.fingerprint_settings(settings), sort_keys=True, default=str)
        frame = (stage, settings, f'{{"code": {code}, "inputs": ', f', "settings": {fixed}, "stage": '
                 f'{json.dumps(stage.name)}}}')
        if len(_FRAMES) > 64:
            _FRAMES.clear()
        _FRAMES[key] = frame
    return frame[2], frame[3]


@dataclass
class PlanContext:
    config: Any                                 # pipeline.config.Config
    output: Any                                 # Path, or storage.ObjectPath
    upstream: dict[str, list[Unit]] = field(default_factory=dict)   # planned units by stage
    previous: str | None = None                 # the stage before this one in the order


class Stage:
    name: ClassVar[str]
    code_version: ClassVar[str] = "1"           # bump when output changes for the same settings
    settings_cls: ClassVar[type]
    requires: ClassVar[tuple[str, ...]] = ()    # stages that must come earlier in the order
    summary: ClassVar[str] = ""

    def plan(self, ctx: PlanContext) -> list[Unit]:
        raise NotImplementedError

    def process(self, unit: Unit, settings: Any, sink: "UnitSink") -> None:
        raise NotImplementedError

    # True for a stage whose every unit depends on every input shard (dedup): it waits
    # until all upstream units are finished.
    needs_all_inputs: ClassVar[bool] = False
    # True for a stage whose units publish files besides shard and rejects
    # (UnitSink.extra_output, listed in the row's stats): status then reads the stats too
    extra_outputs: ClassVar[bool] = False

    def waits_for_all_inputs(self, settings: Any) -> bool:
        return self.needs_all_inputs

    def prepare(self, settings: Any, ctx: "PrepareContext") -> None:
        """Runs once in the driver before the units are submitted: fetch a model, or do a
        stage's global work (dedup) with ctx.map for parallel tasks."""

    def persist_plan(self, output: Any) -> None:
        """Save what planning learned for the next plan (extract: its input fingerprints).
        The runner calls it once it holds the output's lock."""

    def unread_inputs(self, config: Any) -> list[str]:
        """Input files the stage found but has no reader for (reported, never skipped silently)."""
        return []

    def fingerprint_settings(self, settings: Any) -> dict:
        """The settings that change outputs (all of them, unless a stage says otherwise)."""
        return asdict(settings)


@dataclass
class PrepareContext:
    output: Any                                 # Path, or storage.ObjectPath
    units: list["Unit"]                         # every planned unit of the stage
    map: Any                                    # map(fn, [args, ...]) -> [result, ...], in parallel
    log: Any


def plan_one_to_one(stage: Stage, ctx: PlanContext, scope=None) -> list[Unit]:
    """Plan a stage with one unit per shard of the previous stage, same key. A unit's
    fingerprint covers its own input or, where one document's fate depends on other
    shards too (dedup, a trained tokenizer, a global cut), the inputs of its group:
    `scope(up)` names the group (one key for all shards, or the shard's dump). A group's
    fingerprint is computed once: per unit it made planning quadratic (16 s at 4,000
    shards, hours at a Common Crawl dump's 90,000)."""
    settings = ctx.config.settings(stage.name)
    ups = ctx.upstream[ctx.previous]
    group_fingerprint: dict = {}
    if scope is not None:
        members: dict = {}
        for up in ups:
            members.setdefault(scope(up), []).append(InputRef(up.out_path, up.fingerprint))
        group_fingerprint = {key: fingerprint(stage, settings, refs) for key, refs in members.items()}
    units = []
    for up in ups:
        ref = InputRef(up.out_path, up.fingerprint)
        unit = Unit(stage.name, up.key, up.dump, [ref],
                    out_path=f"{stage.name}/{up.key}.parquet",
                    rejects_path=f"rejects/{stage.name}/{up.key}.parquet", lang=up.lang)
        unit.fingerprint = (fingerprint(stage, settings, [ref]) if scope is None
                            else group_fingerprint[scope(up)])
        units.append(unit)
    return units


class ConservationError(RuntimeError):
    pass


class UnitSink:
    """Where a stage puts one unit's results: streamed to temporary Parquet files (beside
    their final place, or on the local disk when the output is in object storage)."""

    def __init__(self, output, unit: Unit, progress=None):
        self.output = output = location(output)
        self.unit = unit
        self.docs_in = 0
        self.docs = 0
        self.chars = 0
        self.damage: list[str] = []
        self.stats: dict[str, Any] = {}
        self.tokens: int | None = None           # set by a stage that counts tokens
        self.repeats = 0                         # net extra copies a stage wrote (remix upsampling)
        self._schema: pa.Schema | None = None
        self._doc_path = output / unit.out_path
        self._rej_path = output / unit.rejects_path
        self._doc_tmp = temp_path_for(self._doc_path)
        self._rej_tmp = temp_path_for(self._rej_path)
        self._doc_writer: pq.ParquetWriter | None = None
        self._rej_writer: pq.ParquetWriter | None = None
        self._rej_buffer: list[dict] = []
        self._progress = progress                # callable(done_bytes, docs) from the runner, or None
        self._last_progress = time.monotonic()   # a unit shorter than the interval never reports
        self._done_bytes = 0
        self.published: dict[str, tuple[int, str]] = {}    # relative path -> (bytes, sha256)
        self._extra: dict[str, tuple[Path, Any]] = {}      # further outputs: rel -> (temporary, final)
        self.reasons: dict[str, int] = {}        # rejects per reason (the manifest row keeps them)

    @property
    def rejected(self) -> int:
        return sum(self.reasons.values())

    # -- what a stage calls -------------------------------------------------------------
    def set_schema(self, schema: pa.Schema) -> None:
        self._schema = schema

    def count_in(self, n: int = 1) -> None:
        self.docs_in += n
        if self._progress is not None and self.docs_in % 200 < n:
            self.report_progress(None)

    def report_progress(self, done_bytes: int | None) -> None:
        """Tell the driver how far the unit is (bytes of its input read); throttled."""
        if self._progress is None:
            return
        now = time.monotonic()
        if done_bytes is not None:
            self._done_bytes = done_bytes
        if now - self._last_progress >= 0.5:
            self._last_progress = now
            try:
                self._progress(self._done_bytes, self.docs_in)
            except Exception:
                self._progress = None      # progress is a nicety: never a reason to fail a unit

    def add_docs(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        table = table.select(self._schema.names).cast(self._schema)
        if self._doc_writer is None:
            self._doc_path.parent.mkdir(parents=True, exist_ok=True)
            self._doc_writer = pq.ParquetWriter(self._doc_tmp, self._schema, compression="zstd")
        self._doc_writer.write_table(table, row_group_size=ROW_GROUP_DOCS)
        self.docs += table.num_rows
        if "n_chars" in table.column_names:
            self.chars += pc.sum(table["n_chars"]).as_py() or 0

    def reject(self, reason: str, detail: str | None, doc_id: str | None, dump: str | None,
               url: str | None, source: str | None = None) -> None:
        self._rej_buffer.append({"stage": self.unit.stage, "reason": reason, "detail": detail,
                                 "id": doc_id, "dump": dump, "url": url, "source": source})
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self._rej_buffer) >= ROW_GROUP_DOCS:
            self._flush_rejects()

    def add_rejects(self, table: pa.Table) -> None:
        """Bulk rejects: a table with the REJECT_SCHEMA columns (stage is filled in)."""
        if table.num_rows == 0:
            return
        if "stage" not in table.column_names:
            table = table.append_column("stage", pa.array([self.unit.stage] * table.num_rows))
        self._flush_rejects()
        self._write_rejects(table.select(REJECT_SCHEMA.names).cast(REJECT_SCHEMA))
        for item in pc.value_counts(table.column("reason")).to_pylist():
            self.reasons[item["values"]] = self.reasons.get(item["values"], 0) + item["counts"]

    def extra_output(self, rel: str) -> Path:
        """A further file this unit publishes beside its shard and rejects (tokenize's token
        shards): a local temporary path to write. It is published with the shard, and
        its size and sha256 go into the manifest row (stats `files`), so that damage
        checks, `verify` and reruns cover it like the shard."""
        final = self.output / rel
        final.parent.mkdir(parents=True, exist_ok=True)       # a no-op in object storage
        tmp = temp_path_for(final)
        self._extra[rel] = (tmp, final)
        return tmp

    def report_damage(self, message: str) -> None:
        """The input is damaged: what was read is kept, the unit is marked partial."""
        self.damage.append(message)

    # -- what execute_unit calls --------------------------------------------------------
    def _flush_rejects(self) -> None:
        if self._rej_buffer:
            self._write_rejects(pa.Table.from_pylist(self._rej_buffer, schema=REJECT_SCHEMA))
            self._rej_buffer = []

    def _write_rejects(self, table: pa.Table) -> None:
        if self._rej_writer is None:
            self._rej_path.parent.mkdir(parents=True, exist_ok=True)
            self._rej_writer = pq.ParquetWriter(self._rej_tmp, REJECT_SCHEMA, compression="zstd")
        self._rej_writer.write_table(table)

    def finish(self) -> None:
        """Close files and move them into place: documents first, then rejects."""
        if self._schema is None:
            raise RuntimeError(f"stage {self.unit.stage} never set its output schema")
        self._flush_rejects()
        if self._doc_writer is None:
            self._doc_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(self._schema.empty_table(), self._doc_tmp, compression="zstd")
        else:
            self._doc_writer.close()
        if self._rej_writer is None:
            self._rej_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(REJECT_SCHEMA.empty_table(), self._rej_tmp, compression="zstd")
        else:
            self._rej_writer.close()
        # size and checksum of what is published, read from the local temporary files
        for rel, tmp in ((self.unit.out_path, self._doc_tmp), (self.unit.rejects_path, self._rej_tmp),
                         *((rel, tmp) for rel, (tmp, _) in self._extra.items())):
            self.published[rel] = (tmp.stat().st_size, sha256_file(tmp))
        if self._extra:
            self.stats["files"] = {rel: list(self.published[rel]) for rel in sorted(self._extra)}
        for tmp, final in self._extra.values():       # before the shard: the row comes last anyway
            publish(tmp, final)
        publish(self._doc_tmp, self._doc_path)
        publish(self._rej_tmp, self._rej_path)

    def abandon(self) -> None:
        for writer in (self._doc_writer, self._rej_writer):
            if writer is not None:
                try:
                    writer.close()
                except Exception:
                    pass
        # only this unit's own temporary files: its final names may hold what another run
        # published meanwhile (a fenced worker of a paused driver deleted the new owner's
        # shards); a final file without a manifest row does not exist, and is overwritten
        for p in (self._doc_tmp, self._rej_tmp, *(tmp for tmp, _ in self._extra.values())):
            p.unlink(missing_ok=True)


@contextlib.contextmanager
def _collected_warnings():
    """Warnings and WARNING log records raised while a unit runs, for its manifest row."""
    caught: list[str] = []
    handler = _WarningCollector(caught)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("default")
            yield caught
        caught += [f"{w.category.__name__}: {w.message}" for w in warned]
    finally:
        root.removeHandler(handler)


class _WarningCollector(logging.Handler):
    """Library warnings logged while a unit runs, kept for its manifest row."""

    def __init__(self, into: list[str]):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.into) < 200:
            self.into.append(f"{record.name}: {record.getMessage()}"[:300])


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _one_line(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


LOCK_FILE = ".curate.lock"


class FencedError(RuntimeError):
    """Another run owns the output folder now: this unit's results must not be published."""


def check_fence(output, run_id: str | None) -> None:
    """Raise unless the run that owns the output (the id in its lock file) is `run_id`."""
    if run_id is None:
        return
    try:
        owner = (location(output) / LOCK_FILE).read_text().split(" ", 1)[0].strip()
    except OSError:
        owner = ""
    if owner != run_id:
        raise FencedError(f"the output is now owned by run {owner or '(none)'}, not {run_id}")


def execute_unit(stage: Stage, settings: Any, unit: Unit, output: str | Path,
                 run_id: str | None = None, progress=None) -> ManifestRow:
    """Run one unit to completion and record it. Never raises for a unit's own error:
    the error becomes a `failed` manifest row (and no shard), so the run goes on.
    With a run id, publication is fenced: if another run took the output folder over
    (this unit's driver was killed), nothing is published and no row is written."""
    output = location(output)
    started = utcnow()
    cpu0 = time.process_time()
    row = ManifestRow(stage=unit.stage, unit=unit.key, fingerprint=unit.fingerprint,
                      status=FAILED, dump=unit.dump, lang=unit.lang,
                      inputs=[i.path for i in unit.inputs],
                      code_version=f"{CURATE_VERSION}/{stage.code_version}",
                      started_at=started, worker=_worker_name())
    sink = UnitSink(output, unit, progress)
    try:
        with _collected_warnings() as caught:
            stage.process(unit, settings, sink)
        if sink.docs_in + sink.repeats != sink.docs + sink.rejected:
            raise ConservationError(
                f"{unit.stage} {unit.key}: {sink.docs_in} documents in (+ {sink.repeats} repeats), but "
                f"{sink.docs} out + {sink.rejected} rejected = {sink.docs + sink.rejected}")
        if sink.repeats:
            sink.stats["repeats"] = sink.repeats
        if sink.reasons:    # the run summary counts reasons from the rows, reading no rejects file
            sink.stats["reasons"] = dict(sorted(sink.reasons.items()))
        check_fence(output, run_id)
        sink.finish()
    except FencedError as exc:
        sink.abandon()
        row.error = f"not published: {exc}"
        row.finished_at = utcnow()
        return row
    except Exception as exc:
        sink.abandon()
        if disk_full(exc):
            raise
        row.error = _one_line(exc)
        row.finished_at = utcnow()
        if _fenced(output, run_id) is None:
            write_row(output, row)
        return row
    if caught:          # the driver logs them with the unit (workers' own logs are not shown)
        sink.stats["warnings"] = list(dict.fromkeys(caught))[:20]
        sink.stats["warning_count"] = len(caught)
    row.status = PARTIAL if sink.damage else DONE
    row.error = "; ".join(sink.damage) or None
    row.path = unit.out_path
    row.rejects_path = unit.rejects_path
    row.docs, row.docs_in, row.rejected, row.chars = sink.docs, sink.docs_in, sink.rejected, sink.chars
    row.tokens = sink.tokens
    row.bytes, row.sha256 = sink.published[unit.out_path]
    row.rejects_bytes, row.rejects_sha256 = sink.published[unit.rejects_path]
    sink.stats["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    sink.stats["seconds"] = round((utcnow() - started).total_seconds(), 3)
    sink.stats["cpu_seconds"] = round(time.process_time() - cpu0, 3)    # this unit's, threads included
    row.stats = json.dumps(sink.stats, sort_keys=True)
    row.finished_at = utcnow()
    fenced = _fenced(output, run_id)
    if fenced is not None:          # taken over while publishing: the new run redoes it
        row.status, row.error = FAILED, f"not published: {fenced}"
        return row
    write_row(output, row)          # last: a shard without a manifest row does not exist
    return row


def _fenced(output, run_id: str | None) -> str | None:
    try:
        check_fence(output, run_id)
    except FencedError as exc:
        return str(exc)
    return None


def disk_full(exc: BaseException | None) -> bool:
    """Is this (or what caused it) a full disk? pyarrow's write errors carry the errno only
    in their text, and Ray wraps a task's exception in its own (`.cause`)."""
    import errno
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return False


class DiskFullError(RuntimeError):
    """No space left where the run writes: the run stops; a rerun after freeing space finishes."""
