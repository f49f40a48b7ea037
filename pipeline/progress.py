"""What the driver shows while a run goes: live bars on a terminal, plain lines in a batch
job, JSON lines for log collectors, or only errors with --quiet.

Workers report progress inside a unit (bytes of its input read, documents so far) to a
small Ray actor, `ProgressBoard`; the driver polls it between task completions, so a
1 GB WARC file shows movement long before its unit ends. The bars use `rich` (a
well-kept library that handles terminals, widths and refresh), only when the output is a
terminal; anywhere else the same events are plain or JSON lines.
"""
from __future__ import annotations

import json
import re
import sys
import time

_STAGE = re.compile(r"^\[([\w-]+)\] ?(.*)$", re.S)


class ProgressBoard:
    """A Ray actor: "<stage>/<unit key>" -> (bytes read, documents so far), written by workers."""

    def __init__(self):
        self.units: dict[str, tuple[int, int]] = {}

    def update(self, key: str, done_bytes: int, docs: int) -> None:
        self.units[key] = (done_bytes, docs)

    def snapshot(self, running: list[str] | None = None) -> dict[str, tuple[int, int]]:
        """What the running units reported; entries of units no longer running are
        dropped, so the board stays as small as the driver's window of tasks."""
        if running is not None:
            keep = set(running)
            self.units = {k: v for k, v in self.units.items() if k in keep}
        return dict(self.units)


class View:
    """Plain lines on stderr (the default when the output is not a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr

    def log(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self.log(message)

    def stage_start(self, stage: str, units: int, total_bytes: int) -> None:
        pass

    def stage_progress(self, stage: str, units_done: int, bytes_done: int, docs: int) -> None:
        pass

    def stage_end(self, stage: str) -> None:
        pass

    def close(self) -> None:
        pass


class QuietView(View):
    """Only warnings and errors (failed units, damage, conservation)."""

    def log(self, message: str) -> None:
        if any(w in message for w in ("FAILED", "PARTIAL", "error", "Error", "damaged", "missing", "not read",
                                      "warning")):
            super().log(message)


class JsonView(View):
    """One JSON object per event: {"time", "stage", "event", "message", ...}."""

    def _emit(self, **record) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
        print(json.dumps(record, ensure_ascii=False), file=self.stream, flush=True)

    def log(self, message: str) -> None:
        m = _STAGE.match(message)
        self._emit(event="log", stage=m.group(1) if m else None, message=m.group(2) if m else message)

    def stage_start(self, stage: str, units: int, total_bytes: int) -> None:
        self._emit(event="stage_start", stage=stage, units=units, input_bytes=total_bytes)

    def stage_end(self, stage: str) -> None:
        self._emit(event="stage_end", stage=stage)


class RichView(View):
    """Live bars per stage: units and input bytes, documents per second, time left."""

    def __init__(self, stream=None):
        super().__init__(stream)
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        self.console = Console(file=self.stream)
        self.progress = Progress(TextColumn("[bold]{task.description:<13}"), BarColumn(),
                                 TextColumn("{task.fields[units_done]}/{task.fields[units]} units"), DownloadColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.progress.start()
        self.tasks: dict[str, int] = {}
        self.started: dict[str, float] = {}

    def log(self, message: str) -> None:
        self.progress.console.print(message, markup=False, highlight=False)

    def stage_start(self, stage: str, units: int, total_bytes: int) -> None:
        # the bar measures input bytes (so a long unit moves it); units are shown beside
        self.tasks[stage] = self.progress.add_task(stage, total=max(total_bytes, 1), rate="", units=units,
                                                   units_done=0)
        self.started[stage] = time.perf_counter()

    def stage_progress(self, stage: str, units_done: int, bytes_done: int, docs: int) -> None:
        task = self.tasks.get(stage)
        if task is None:
            return
        elapsed = max(time.perf_counter() - self.started[stage], 1e-6)
        self.progress.update(task, completed=bytes_done, rate=f"{docs / elapsed:,.0f} docs/s",
                             units_done=units_done)

    def stage_end(self, stage: str) -> None:
        task = self.tasks.get(stage)
        if task is not None:
            total = next(t.total for t in self.progress.tasks if t.id == task)
            self.progress.update(task, completed=total)

    def close(self) -> None:
        self.progress.stop()


def make_view(log_format: str = "text", quiet: bool = False, stream=None) -> View:
    stream = stream or sys.stderr
    if log_format == "json":
        return JsonView(stream)
    if quiet:
        return QuietView(stream)
    if stream.isatty():
        try:
            return RichView(stream)
        except ImportError:
            pass
    return View(stream)

