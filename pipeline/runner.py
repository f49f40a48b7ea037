"""The runner: plans every stage, skips fresh units, runs the rest as Ray tasks, records.

Only this module knows Ray. A unit is one Ray task (`execute_unit` in a worker); a task
whose worker dies is retried by Ray (`ray.max_retries`); a unit's own error comes back
as a `failed` manifest row and the run goes on with the other units.
"""
from __future__ import annotations

import collections
import contextlib
import datetime
import fcntl
import json
import logging
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from curate.manifests.atomic import sweep_temporaries, write_bytes_atomic
from curate.manifests.manifest import FAILED, FINISHED, ManifestRow, compact, printable, read_rows, utcnow, write_row
from curate.manifests.verify import damage, listed_sizes
from curate.pipeline.config import Config, ConfigError
from curate.pipeline.registry import STAGES
from curate.pipeline.storage import ObjectPath, check_output, create_exclusive, location, rmtree
from curate.pipeline.stage import (LOCK_FILE, ConservationError, DiskFullError, PlanContext, PrepareContext, Unit,
                            disk_full, execute_unit)

RUN_CONFIG = "run-config.json"

# unit states (what `curate status` shows)
DONE, PARTIAL, FAILED_STATE, STALE, MISSING = "done", "partial", "failed", "stale", "missing"


def unit_state(unit: Unit, row: ManifestRow | None) -> str:
    if row is None:
        return MISSING
    if row.fingerprint != unit.fingerprint:
        return STALE
    return row.status


def plan_pipeline(config: Config) -> dict[str, list[Unit]]:
    """Plan every stage of the order; a stage's plan uses the planned (not the recorded)
    fingerprints of the stage before it, so a change upstream shows as stale downstream."""
    output = location(config.output)
    planned: dict[str, list[Unit]] = {}
    previous = None
    for name in config.order:
        ctx = PlanContext(config=config, output=output, upstream=planned, previous=previous)
        planned[name] = STAGES[name].plan(ctx)
        previous = name
    return planned


@dataclass
class StageResult:
    stage: str
    planned: int = 0
    skipped: int = 0                # already done with the same fingerprint
    ran: int = 0
    blocked: int = 0                # waiting on an unfinished upstream unit
    rows: list[ManifestRow] = field(default_factory=list)
    seconds: float = 0.0
    prepare_cpu: float = 0.0        # CPU seconds of the stage's global step (its Ray tasks)
    prepare_seconds: float = 0.0
    prepare_peak_mb: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)


@dataclass
class RunResult:
    stages: list[StageResult] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)     # input files no reader knows

    @property
    def failed(self) -> int:
        return sum(r.count(FAILED) for r in self.stages)


class RunError(RuntimeError):
    """The run cannot start or go on (lock held, upstream missing, ...)."""


@contextlib.contextmanager
def output_lock(output, lease_s: float = 120.0):
    """One driver per output. Yields this run's id, written in the lock: workers check it
    before they publish (the fence), so a killed run's in-flight task cannot publish under
    the run that took the output over."""
    if isinstance(output, ObjectPath):
        with _object_lock(output, lease_s) as run_id:
            yield run_id
        return
    with _file_lock(output) as run_id:
        yield run_id


def _lock_text(run_id: str, since: str, lease_s: float | None = None) -> str:
    text = f"{run_id} pid {os.getpid()} on {socket.gethostname()} since {since}"
    if lease_s is not None:
        until = datetime.datetime.fromtimestamp(time.time() + lease_s, datetime.timezone.utc)
        text += f" lease_until {until.isoformat(timespec='seconds')}"
    return text + "\n"


@contextlib.contextmanager
def _file_lock(output: Path):
    """flock is released by the OS when a driver dies, so a killed run never leaves a
    stale lock behind."""
    output.mkdir(parents=True, exist_ok=True)
    fh = open(output / LOCK_FILE, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise RunError(f"{output} is in use by another curate run ({holder}); "
                       "wait for it or use another --output") from None
    run_id = uuid.uuid4().hex
    fh.seek(0)
    fh.truncate()
    fh.write(_lock_text(run_id, utcnow().isoformat(timespec="seconds")))
    fh.flush()
    os.fsync(fh.fileno())
    try:
        yield run_id
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


_LOST: dict[str, str] = {}          # run id -> why its lease on the output was lost
_LEASES: dict[str, tuple] = {}      # run id -> (lock object, lease seconds, last renewal)


def _owner(lock) -> str | None:
    """The run id in the lock object ('' when there is none), None when the store did not answer."""
    try:
        return lock.read_text().split(" ", 1)[0].strip()
    except FileNotFoundError:
        return ""
    except Exception:
        return None


def _lose(run_id: str, owner: str) -> None:
    _LOST[run_id] = (f"another run ({owner or 'none now: the lock object is gone'}) took the output over "
                     "while this one's lease had lapsed")


def lease_lost(run_id: str | None) -> str | None:
    """Why this run no longer holds its output (object storage), or None. Past the lease
    since the last renewal (the driver was paused, say), the lock is read again now
    rather than trusting the renewing thread to have woken first."""
    if not run_id:
        return None
    if run_id not in _LOST and run_id in _LEASES:
        lock, lease_s, renewed = _LEASES[run_id]
        if time.time() - renewed > lease_s:
            owner = _owner(lock)
            if owner is not None and owner != run_id:
                _lose(run_id, owner)
    return _LOST.get(run_id)


def _lease_end(holder: str) -> float | None:
    parts = holder.split()
    if "lease_until" in parts[:-1]:
        try:
            return datetime.datetime.fromisoformat(parts[parts.index("lease_until") + 1]).timestamp()
        except ValueError:
            return None
    return None


@contextlib.contextmanager
def _object_lock(output: ObjectPath, lease_s: float):
    """A lock object holding the run id and a lease end, renewed by the driver every third
    of the lease. Taken with a conditional write (If-None-Match, S3 and stores like it),
    so two drivers cannot both create it; a store without conditional writes gets
    write-then-read-back, which narrows the race to the read-back delay (documented). A
    driver that dies leaves a lock whose lease ends: the next run takes it over then."""
    import threading
    lock = output / LOCK_FILE
    run_id = uuid.uuid4().hex
    since = utcnow().isoformat(timespec="seconds")
    for _ in range(3):
        made = create_exclusive(lock, _lock_text(run_id, since, lease_s).encode())
        if made:
            break
        try:
            holder = lock.read_text().strip()
        except FileNotFoundError:
            continue                                # released meanwhile: try again
        end = _lease_end(holder)
        if holder and (end is None or end > time.time()):
            raise RunError(f"{output} is in use by another curate run ({holder}); wait for it (a killed "
                           f"run's lease ends at the time shown) or use another --output")
        if made is None:                            # no conditional writes: write, then read back
            lock.write_bytes(_lock_text(run_id, since, lease_s).encode())
            time.sleep(0.5)
            if lock.read_text().split(" ", 1)[0] == run_id:
                break
            continue
        lock.unlink(missing_ok=True)                # the holder's lease ended: take over
    else:
        raise RunError(f"{output}: could not take the output lock ({lock}); another run is starting")
    stop = threading.Event()

    _LEASES[run_id] = (lock, lease_s, time.time())

    def renew():
        while not stop.wait(min(1.0, lease_s / 3)):
            renewed = _LEASES[run_id][2]
            if time.time() - renewed < lease_s / 3:
                continue
            owner = _owner(lock)
            if owner == run_id:
                with contextlib.suppress(Exception):
                    lock.write_bytes(_lock_text(run_id, since, lease_s).encode())
                    _LEASES[run_id] = (lock, lease_s, time.time())
            elif owner is not None:
                _lose(run_id, owner)
                return
            if time.time() - _LEASES[run_id][2] > lease_s and run_id not in _LOST:
                _LOST[run_id] = f"its lease could not be renewed for {time.time() - renewed:.0f} s"
                return
    keeper = threading.Thread(target=renew, name="curate-lock-lease", daemon=True)
    keeper.start()
    try:
        yield run_id
    finally:
        stop.set()
        keeper.join(timeout=5)
        _LEASES.pop(run_id, None)
        with contextlib.suppress(Exception):
            if lock.read_text().split(" ", 1)[0] == run_id:
                lock.unlink(missing_ok=True)


def ensure_ray(config: Config, address: str | None = None) -> bool:
    """Start or join Ray unless this process already has it; True when this call did."""
    import ray

    if ray.is_initialized():
        return False
    addr = address or config.ray.address or os.environ.get("RAY_ADDRESS")
    common = dict(logging_level=logging.WARNING, log_to_driver=False,
                  configure_logging=True)
    from curate.pipeline.storage import configure
    env = configure(config.storage.endpoint_url, config.storage.region, config.storage.profile)
    if env:                 # the config's storage overrides reach every worker too
        common["runtime_env"] = {"env_vars": env}
    _quiet_token_notice()
    from curate.pipeline.interrupt import keep_handlers
    with keep_handlers(), _no_ray_sigterm_handler():
        if addr:
            ray.init(address=addr, **common)
        else:
            # "local": always a fresh embedded Ray; never silently join a cluster that
            # `ray start` left on this machine (ray.init's default would).
            ray.init(address="local", num_cpus=config.ray.num_cpus or os.cpu_count(),
                     include_dashboard=False, **common)
    return True


@contextlib.contextmanager
def _no_ray_sigterm_handler():
    """ray.init sets a SIGTERM handler that calls sys.exit(15) from wherever the driver
    is; a SIGTERM during ray.init must reach the CLI's clean stop instead."""
    try:
        import ray._private.utils as ray_utils
        saved = ray_utils.set_sigterm_handler
    except (ImportError, AttributeError):
        yield
        return
    ray_utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        ray_utils.set_sigterm_handler = saved


def _quiet_token_notice() -> None:
    """Ray 2.60 logs a WARNING at every local start that token authentication is on (its
    default, which curate keeps): news once, noise on every run, even with --quiet."""
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(getattr(f, "curate", False) for f in notice.filters):
        drop = logging.Filter()
        drop.filter = lambda record: "Token authentication is enabled" not in record.getMessage()
        drop.curate = True
        notice.addFilter(drop)


def stop_ray() -> None:
    """Disconnect from Ray (an embedded Ray is shut down with it)."""
    import sys
    if "ray" in sys.modules:
        import ray
        if ray.is_initialized():
            ray.shutdown()


def _remote_unit(stage_name: str, settings, unit: Unit, output: str, run_id: str, board=None) -> ManifestRow:
    from curate.pipeline.registry import resolve
    progress = None
    if board is not None:
        def progress(done_bytes: int, docs: int) -> None:
            board.update.remote(f"{stage_name}/{unit.key}", done_bytes, docs)     # fire and forget
    return execute_unit(resolve(stage_name), settings, unit, output, run_id=run_id, progress=progress)


def _measured(fn, *args):
    """Run fn in a Ray task and return (result, CPU seconds, peak RSS MB of the worker)."""
    import resource
    t0 = time.process_time()
    out = fn(*args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if isinstance(out, dict):       # a step's counts: where it ran and its worker's peak, for the benchmarks
        import ray
        out.setdefault("peak_mb", round(peak, 1))
        out.setdefault("node", ray.get_runtime_context().get_node_id()[:12])
    return out, time.process_time() - t0, peak


def unit_input_bytes(output, unit: Unit, upstream: dict[str, int] | None = None) -> int:
    """Bytes a unit reads: its source files, or its upstream shards (their sizes from the
    upstream manifest rows when given)."""
    from curate.pipeline import storage
    total = 0
    for ref in unit.inputs:
        if upstream and ref.path in upstream:
            total += upstream[ref.path]
            continue
        try:
            if storage.is_uri(ref.path) or os.path.isabs(ref.path):
                total += storage.size(ref.path)
            else:
                total += (output / ref.path).stat().st_size
        except OSError:
            pass
    return total


def input_identity(where) -> str | None:
    """The input as one string that names it from anywhere: an absolute local path, or the
    URI without a trailing slash."""
    if not where:
        return None
    from curate.pipeline import storage
    if storage.is_uri(where):
        return str(where).rstrip("/")
    return os.path.realpath(os.path.expanduser(str(where)))


def _exists(output, path: str) -> bool:
    from curate.pipeline import storage
    try:
        if storage.is_uri(path) or os.path.isabs(path):
            return storage.is_file(path)
        return (output / path).exists()
    except OSError:
        return False


@dataclass
class _Done:
    """What the finished units of a stage add up to, for its progress line."""
    bytes: int = 0
    docs_in: int = 0


class _RowMerger:
    """Merges finished units' loose manifest parts into a compacted file every `every`
    units or `seconds`, so that a long stage (a dump's 90,000 units) never has more than
    that many small files in its record, also when it is killed."""

    def __init__(self, output, stage: str, warn, every: int = 2000, seconds: float = 60.0):
        self.output, self.stage, self.warn = output, stage, warn
        self.every, self.seconds = every, seconds
        self.batch: list[str] = []
        self.last = time.monotonic()

    def finished(self, unit: str) -> None:
        self.batch.append(unit)

    def maybe(self) -> None:
        if len(self.batch) >= self.every or (self.batch and time.monotonic() - self.last >= self.seconds):
            compact(self.output, self.stage, units=self.batch, warn=self.warn)
            self.batch, self.last = [], time.monotonic()


class Runner:
    def __init__(self, config: Config, log: Callable[[str], None] | None = None,
                 address: str | None = None, view=None):
        from curate.pipeline.progress import View
        self.config = config
        self.output = location(config.output)
        self.view = view or View()
        self.log = log or self.view.log
        self.address = address
        self._board = None
        self._current: StageResult | None = None
        self._cpus, self._window_at = 1, -1e9     # cluster CPUs for the task window, and when read
        self.stage_now: str | None = None         # the stage running, for an interruption's message
        self.started_ray = False                  # this runner started (or joined) Ray: it may stop it

    # -- planning -----------------------------------------------------------------------
    def select(self, only: list[str] | None, until: str | None) -> list[str]:
        order = self.config.order
        for name in (only or []) + ([until] if until else []):
            if name not in order:
                raise ConfigError(f"stage '{name}' is not in the order {order}")
        names = order[: order.index(until) + 1] if until else list(order)
        if only:
            names = [n for n in names if n in only]
        return names

    # -- running ------------------------------------------------------------------------
    def run(self, only: list[str] | None = None, until: str | None = None,
            force: bool = False, replace: bool = False) -> RunResult:
        """`replace`: empty the output folder first (the lock held), for another input."""
        names = self.select(only, until)
        plans = plan_pipeline(self.config)  # a bad input or config fails here, before any work
        result = RunResult(unread=[f for n in self.config.order for f in STAGES[n].unread_inputs(self.config)])
        if result.unread:
            self.log(f"[plan] {len(result.unread)} input files have no reader and are not read: "
                     + ", ".join(result.unread[:10]) + (" ..." if len(result.unread) > 10 else ""))
        check_output(self.output)       # a bad URI, credentials or bucket: before any work
        with output_lock(self.output, self.config.storage.lock_lease_s) as self.run_id:
            if replace:
                self._start_over()
            else:
                self._check_same_input()    # before anything is deleted
            for name in self.config.order:
                STAGES[name].persist_plan(self.output)
            recorded = self.config.to_dict()
            recorded["input"] = input_identity(self.config.input)
            write_bytes_atomic(json.dumps(recorded, indent=2).encode(), self.output / RUN_CONFIG)
            for name in names:
                self._check_lease()
                self.stage_now = name
                idx = self.config.order.index(name)
                previous = self.config.order[idx - 1] if idx else None
                if previous:
                    # planned again, on the plans of the stages before it, now that they
                    # have run: remix sizes its output shards from its input
                    ctx = PlanContext(config=self.config, output=self.output, upstream=plans,
                                      previous=previous)
                    plans[name] = STAGES[name].plan(ctx)
                # the rows the stage before just produced, when it ran in this run: read once
                known = {r.unit: r for r in result.stages[-1].rows} if (
                    result.stages and result.stages[-1].stage == previous and not result.stages[-1].blocked) else None
                res = self._run_stage(name, plans[name], previous, force, plans.get(previous, []), known)
                result.stages.append(res)
                if only and res.blocked and previous:
                    # asked for this stage alone while its input is unfinished: say what to run
                    raise RunError(f"{name}: {res.blocked} of {res.planned} units wait on {previous} units that are "
                                   f"not finished or stale; run `curate run --stage {previous}` (or the stages "
                                   f"before it, or the whole pipeline) first")
            self._check_lease()         # the last units' results came in after a lapse, say
        self.stage_now = None
        return result

    def _run_stage(self, name: str, units: list[Unit], previous: str | None,
                   force: bool, upstream_units: list[Unit],
                   upstream_rows: dict[str, ManifestRow] | None = None) -> StageResult:
        """One stage: take stock of what is recorded, then run what is not done."""
        stage = STAGES[name]
        settings = self.config.settings(name)
        units = list(units)             # a plan kept as columns (PlannedUnits): its Units, made once
        res = StageResult(name, planned=len(units))
        t0 = time.perf_counter()
        self._sweep(name)
        rows = self._recorded(name)
        if upstream_rows is None:
            upstream_rows = read_rows(self.output, previous) if previous else {}
        self._refuse_empty_plan(name, units, rows, previous, upstream_rows)
        dropped = self._drop_orphans(name, units, rows)
        compact(self.output, name, drop=dropped, warn=self._stage_log(name))
        if previous and stage.waits_for_all_inputs(settings) and self._wait_for_all(
                name, units, previous, upstream_units, upstream_rows, res):
            res.seconds = time.perf_counter() - t0
            return res
        todo = self._to_run(name, units, rows, previous, stage.waits_for_all_inputs(settings),
                            force, upstream_rows, res)
        if todo:
            self.started_ray = ensure_ray(self.config, self.address) or self.started_ray
            self._current = res
            if self._prepare(name, stage, settings, units, todo, res):
                self._dispatch(name, settings, todo, upstream_rows, res, t0)
            compact(self.output, name, warn=self._stage_log(name))   # the stage is one file
        res.seconds = time.perf_counter() - t0
        if res.ran:
            self._record_stage(res)
        if res.ran or not todo:
            self._check_conservation(name, res, previous, upstream_rows)
        return res

    def _stage_log(self, name: str):
        return lambda message: self.log(f"[{name}] {message}")

    def _sweep(self, name: str) -> None:
        """Temporary files an interrupted run left (never a published one)."""
        swept = sum(sweep_temporaries(self.output / sub)
                    for sub in (name, f"rejects/{name}", f"manifests/{name}", f"_work/{name}"))
        if swept:
            self.log(f"[{name}] removed {swept} temporary files left by an interrupted run")

    def _recorded(self, name: str) -> dict[str, ManifestRow]:
        """The stage's rows whose files are whole: a unit whose shard, rejects or further
        files are missing or of another size than its row says is left out (redone).
        Sizes come from one listing per folder, not a request (or stat call) per file."""
        rows = read_rows(self.output, name, warn=self._stage_log(name))
        if not rows:
            return rows
        listed = listed_sizes(self.output, name, rows.values())
        for key, row in list(rows.items()):
            problem = damage(self.output, row, sizes=listed)
            if problem:
                self.log(f"[{name}] {key}: {problem}; redoing the unit")
                del rows[key]
        return rows

    @staticmethod
    def _refuse_empty_plan(name: str, units: list[Unit], rows: dict, previous: str | None,
                           upstream_rows: dict[str, ManifestRow]) -> None:
        """A stage that plans nothing while its input holds documents would delete its
        outputs and drop every document unflagged: stop before touching anything."""
        if units or not rows or not previous:
            return
        held = sum(r.docs for r in upstream_rows.values() if r.status in FINISHED)
        if held:
            raise ConservationError(
                f"[{name}] plans no units although {previous} holds {held} documents; "
                f"its {len(rows)} recorded outputs are left as they are")

    def _wait_for_all(self, name: str, units: list[Unit], previous: str, upstream_units: list[Unit],
                      upstream_rows: dict[str, ManifestRow], res: StageResult) -> bool:
        """A stage that reads every upstream shard (dedup) waits until all are finished."""
        unfinished = [u.key for u in upstream_units
                      if unit_state(u, upstream_rows.get(u.key)) not in FINISHED]
        if not unfinished:
            return False
        self.log(f"[{name}] needs every {previous} unit finished; waiting on "
                 f"{len(unfinished)} (see `curate status`)")
        res.blocked = len(units)
        return True

    def _to_run(self, name: str, units: list[Unit], rows: dict[str, ManifestRow], previous: str | None,
                waits_for_all: bool, force: bool, upstream_rows: dict[str, ManifestRow],
                res: StageResult) -> list[Unit]:
        """The units to run: not finished with this fingerprint (or all, with force), whose
        input is finished. Counts the skipped and the blocked into `res`."""
        todo = []
        for unit in units:
            row = rows.get(unit.key)
            if not force and row is not None and row.fingerprint == unit.fingerprint and row.status in FINISHED:
                res.skipped += 1
                res.rows.append(row)
                continue
            if previous and not waits_for_all:
                up = upstream_rows.get(unit.key)
                if up is None or up.status not in FINISHED or up.fingerprint != unit.inputs[0].fingerprint:
                    res.blocked += 1
                    continue
            todo.append(unit)
        if res.blocked:
            self.log(f"[{name}] {res.blocked} units wait on {previous} units that are not "
                     f"finished (run `curate status` to see which)")
        self.log(f"[{name}] {len(units)} units: {res.skipped} already done, {len(todo)} to run")
        return todo

    def _prepare(self, name: str, stage, settings, units: list[Unit], todo: list[Unit],
                 res: StageResult) -> bool:
        """The stage's global step; if it fails, every unit to run gets a failed row."""
        t_prep = time.perf_counter()
        try:
            stage.prepare(settings, PrepareContext(self.output, units, self._map, self.log))
            res.prepare_seconds = time.perf_counter() - t_prep
            return True
        except Exception as exc:
            error = f"{name} preparation failed: {type(exc).__name__}: {str(exc)[:500]}"
            self.log(f"[{name}] {error}")
            for unit in todo:
                row = ManifestRow(stage=name, unit=unit.key, fingerprint=unit.fingerprint, status=FAILED,
                                  dump=unit.dump, inputs=[i.path for i in unit.inputs], error=error,
                                  finished_at=utcnow())
                write_row(self.output, row)
                res.rows.append(row)
            return False

    def _dispatch(self, name: str, settings, todo: list[Unit], upstream_rows: dict[str, ManifestRow],
                  res: StageResult, t0: float) -> None:
        """Run the units as Ray tasks, a window of them in flight (ray.wait costs
        O(pending): 20 ms at 40,000 refs, so submitting a dump's 90,000 units at once
        would make the driver quadratic; the window follows the cluster's CPUs as nodes
        come and go), with live progress, and merge finished units' rows as they come."""
        import ray
        from curate.pipeline.registry import stage_ref
        remote = ray.remote(_remote_unit).options(
            num_cpus=1, max_retries=self.config.ray.max_retries, retry_exceptions=False, **self._memory())
        board = self._progress_board()
        shard_bytes = {r.path: r.bytes for r in upstream_rows.values() if r.path}
        sizes = {u.key: unit_input_bytes(self.output, u, shard_bytes) for u in todo}
        queue = collections.deque(todo)
        pending: dict = {}
        out_uri = str(self.output.resolve())
        merger = _RowMerger(self.output, name, self._stage_log(name))

        def refill() -> None:
            limit = self._window()
            while queue and len(pending) < limit:
                u = queue.popleft()
                pending[remote.remote(stage_ref(name), settings, u, out_uri, self.run_id, board)] = u
        refill()
        done = _Done()
        inside: dict[str, tuple[int, int]] = {}     # running unit -> (bytes, docs) it last reported
        self.view.stage_start(name, len(todo), sum(sizes.values()))
        while pending:
            self._check_lease()
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if not ready:               # progress inside the units still running
                running = {f"{name}/{pending[r].key}": pending[r].key for r in pending}
                live = self._board_snapshot(board, list(running))
                inside = {running[k]: (min(b, sizes[running[k]]), d) for k, (b, d) in live.items() if k in running}
                self.view.stage_progress(name, res.ran, done.bytes + sum(b for b, _ in inside.values()),
                                         done.docs_in + sum(d for _, d in inside.values()))
                merger.maybe()
                continue
            ref = ready[0]
            unit = pending.pop(ref)
            inside.pop(unit.key, None)      # its bytes now count as done; the others' stay counted
            done.bytes += sizes[unit.key]
            row = self._result(name, unit, ref)
            res.ran += 1
            res.rows.append(row)
            merger.finished(unit.key)
            done.docs_in += row.docs_in
            self._log_unit(name, unit, row, res.ran, len(todo), done.docs_in / max(time.perf_counter() - t0, 1e-9))
            self.view.stage_progress(name, res.ran, done.bytes + sum(b for b, _ in inside.values()),
                                     done.docs_in + sum(d for _, d in inside.values()))
            merger.maybe()
            refill()
        self.view.stage_end(name)

    def _result(self, name: str, unit: Unit, ref) -> ManifestRow:
        """A finished task's row; a worker lost on every retry gets a failed row."""
        import ray
        try:
            return ray.get(ref)
        except Exception as exc:
            if disk_full(exc):
                raise DiskFullError(f"no space left on device while writing {name} unit {unit.key} "
                                    f"under {self.output}; what is published is consistent: free "
                                    "space and rerun to finish") from None
            row = ManifestRow(stage=name, unit=unit.key, fingerprint=unit.fingerprint,
                              status=FAILED, dump=unit.dump, inputs=[i.path for i in unit.inputs],
                              error=f"worker lost: {type(exc).__name__}: {str(exc)[:300]}",
                              finished_at=utcnow())
            write_row(self.output, row)
            return row

    def _log_unit(self, name: str, unit: Unit, row: ManifestRow, ran: int, total: int, rate: float) -> None:
        note = "" if row.status == "done" else f"  {row.status.upper()}: {row.error}"
        self.log(f"[{name}] {ran}/{total} {unit.key}: {row.docs_in} in, {row.docs} out, "
                 f"{row.rejected} rejected ({rate:.0f} docs/s){note}")
        if not row.stats or '"warning' not in row.stats:
            return
        stats = row.stats_dict
        warned = stats.get("warnings", [])
        for warning in warned[:2]:
            self.view.warn(f"[{name}] {unit.key}: warning: {warning}")
        more = stats.get("warning_count", len(warned)) - min(2, len(warned))
        if more > 0:
            self.view.warn(f"[{name}] {unit.key}: {more} more warnings (the unit's manifest stats keep 20)")

    def _check_lease(self) -> None:
        """Stop once another run took the output over (this driver was paused or cut off
        past its lease): its workers are fenced; the driver must not go on either."""
        why = lease_lost(getattr(self, "run_id", None))
        if why:
            raise RunError(f"{self.output}: this run no longer owns the output: {why}. It stops here; the run "
                           "that holds the output now finishes the work (nothing of its is touched)")

    def _memory(self) -> dict:
        """A task's memory request (Ray schedules no more tasks on a node than its memory holds)."""
        mb = self.config.ray.task_memory_mb
        return {"memory": mb * 1024 * 1024} if mb else {}

    def _window(self) -> int:
        """Tasks to keep in flight: twice the cluster's CPUs (re-read every 10 s), at least 16."""
        import ray
        now = time.monotonic()
        if now - self._window_at > 10:
            try:
                cpus = int(ray.cluster_resources().get("CPU", 1))
            except Exception:           # the GCS is briefly unreachable: keep the last value
                cpus = self._cpus
            self._cpus, self._window_at = max(cpus, 1), now
        return max(16, 2 * self._cpus)

    def _record_stage(self, res: StageResult) -> None:
        """OUT/reports/stages/<stage>.json: the stage's global step and wall time, for estimates."""
        rec = {"stage": res.stage, "units_ran": res.ran, "wall_s": round(res.seconds, 3),
               "prepare_cpu_s": round(res.prepare_cpu, 3), "prepare_wall_s": round(res.prepare_seconds, 3),
               "prepare_peak_mb": round(res.prepare_peak_mb, 1), "finished_at": utcnow().isoformat()}
        write_bytes_atomic(json.dumps(rec).encode(), self.output / "reports" / "stages" / f"{res.stage}.json")

    def _progress_board(self):
        """One small actor per run that workers report progress to (None if it cannot start)."""
        if self._board is None:
            import ray
            from curate.pipeline.progress import ProgressBoard
            try:
                # on the driver's node: a lost worker node must not take the board with it
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
                here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
                self._board = ray.remote(ProgressBoard).options(num_cpus=0, scheduling_strategy=here).remote()
            except Exception:          # progress is a nicety: never a reason to fail the run
                self._board = False
        return self._board or None

    def _board_snapshot(self, board, running: list[str] | None = None) -> dict:
        """What the running units reported; {} when there is no board or it was lost."""
        if board is None or self._board is False:
            return {}
        import ray
        try:
            return ray.get(board.snapshot.remote(running), timeout=10)
        except Exception as exc:       # progress is a nicety: go on without it
            self.log(f"[progress] live progress lost ({type(exc).__name__}); units go on")
            self._board = False
            return {}

    def _map(self, fn, arg_tuples: list[tuple]) -> list:
        """Run fn(*args) for every args as Ray tasks (retried when a worker dies); their CPU
        time and peak memory are added to the stage's record (`curate estimate` reads it)."""
        import ray
        self._check_lease()
        # spread over the nodes: a global step's tasks are its share of every node's cores
        remote = ray.remote(_measured).options(num_cpus=1, max_retries=self.config.ray.max_retries,
                                               scheduling_strategy="SPREAD", **self._memory())
        results = ray.get([remote.remote(fn, *args) for args in arg_tuples])
        self._check_lease()
        if self._current is not None:
            self._current.prepare_cpu += sum(r[1] for r in results)
            self._current.prepare_peak_mb = max([self._current.prepare_peak_mb] + [r[2] for r in results])
        return [r[0] for r in results]

    def _check_same_input(self) -> None:
        """An output belongs to the input it was made from: a run over another input would
        drop every unit of the first as an orphan and overwrite the rest under the same
        names (a whole corpus gone, exit 0). Stop first, naming both and the ways on."""
        saved = self.output / RUN_CONFIG
        if not self.config.input or not saved.exists():
            return
        try:
            before = json.loads(saved.read_text())
        except (OSError, ValueError):
            return
        was = (input_identity(before.get("input")), before.get("dump"))
        now = (input_identity(self.config.input), self.config.dump)
        if was[0] and was != now:
            def show(ident):
                return ident[0] + (f" (as dump {ident[1]})" if ident[1] else "")
            raise RunError(f"{self.output} holds the output of input {show(was)}, not of {show(now)}: a run "
                           f"here would remove or overwrite that corpus. Give another --output, or --replace "
                           f"to start {self.output} over from {show(now)}")

    def _start_over(self) -> None:
        from curate.pipeline.stage import LOCK_FILE as lock_name
        if not self.output.exists():
            return
        gone = 0
        for entry in list(self.output.iterdir()):
            if entry.name == lock_name:
                continue
            rmtree(entry) if entry.is_dir() else entry.unlink(missing_ok=True)
            gone += 1
        self.log(f"[run] --replace: emptied {self.output} ({gone} entries) to start it over")

    def _drop_orphans(self, name: str, units: list[Unit], rows: dict[str, ManifestRow]) -> set[str]:
        """Outputs of units that are no longer planned: their input went away, or (remix)
        the plan now has fewer output shards. The message says which. Returns their keys:
        the compaction that follows drops their rows."""
        keys = {u.key for u in units}
        dropped = set()
        planned_inputs = {printable(i.path) for u in units for i in u.inputs}
        for key, row in rows.items():
            if key in keys:
                continue
            gone = [p for p in row.inputs if p not in planned_inputs]
            if gone:
                why = (f"its input {gone[0]} is no longer there" if not _exists(self.output, gone[0]) else
                       f"its input {gone[0]} is no longer read by this run (still there, not planned)")
            else:
                why = f"the stage's plan no longer has this unit ({len(units)} units now, same inputs)"
            from curate.manifests.verify import extra_files
            for rel in (row.path, row.rejects_path, *extra_files(row)):
                if rel:
                    (self.output / rel).unlink(missing_ok=True)
            dropped.add(key)
            self.log(f"[{name}] removed outputs of {key}: {why}")
        return dropped

    def _check_conservation(self, name: str, res: StageResult, previous: str | None,
                            upstream_rows: dict[str, ManifestRow]) -> None:
        problems = []
        for row in res.rows:
            if row.status not in FINISHED:
                continue
            repeats = row.stats_dict.get("repeats", 0) if row.stats and '"repeats"' in row.stats else 0
            if row.docs_in + repeats != row.docs + row.rejected:
                problems.append(f"{row.unit}: {row.docs_in} in (+ {repeats} repeats) != "
                                f"{row.docs} out + {row.rejected} rejected")
            up = upstream_rows.get(row.unit)
            if up is not None and row.docs_in != up.docs:
                problems.append(f"{row.unit}: read {row.docs_in} documents, but the "
                                f"upstream shard holds {up.docs}")
        # across stages, whatever the number of units (none included): every document the
        # stage before wrote was read by exactly one unit of this stage
        finished = [r for r in res.rows if r.status in FINISHED]
        if previous is not None and len(finished) == res.planned and not res.blocked:
            into = sum(r.docs_in for r in finished)
            upstream = sum(r.docs for r in upstream_rows.values() if r.status in FINISHED)
            if into != upstream:
                problems.append(f"the stage read {into} documents, {previous} wrote {upstream}")
        if problems:
            raise ConservationError(f"[{name}] documents in != out + rejected:\n  " + "\n  ".join(problems))
