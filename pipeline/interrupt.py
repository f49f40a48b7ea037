"""Stopping a run on SIGINT (Ctrl-C), SIGTERM (a scheduler's kill) or a closed stdout.

The CLI turns the first two into `Interrupted` in the driver's main thread, so the runner's
`finally` blocks shut Ray down and release the output lock on the way out; the CLI then
names the stage that was stopped and exits 128 + the signal's number, as shells do. Ray's
own handlers (a traceback on SIGINT, a C++ stack dump on SIGTERM) are put back to ours
after `ray.init` (see `keep_handlers`).
"""
from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_BROKEN_PIPE = 128 + 13         # what a process killed by SIGPIPE reports


class Interrupted(BaseException):
    """The run was told to stop; nothing published is damaged, and a rerun finishes it.
    A BaseException, as KeyboardInterrupt is: libraries' `except Exception` retry loops
    (ray.init's GCS connect is one) must not swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


def _raise(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise `Interrupted` in the main thread."""
    with keep_handlers():           # the handlers before the block come back after it
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, _raise)
        yield


@contextlib.contextmanager
def keep_handlers():
    """Around `ray.init`: whatever handlers were in place stay in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in before.items():
            if handler is not None:
                signal.signal(s, handler)
