"""Signals: SIGTERM and SIGINT stop a run promptly, whatever the runner is doing.

The Python-level handler raises :class:`~runner.errors.Interrupted` in the main thread: a
worker being followed is stopped (its statement cancelled on the server, its revision rolled
back), the lock is released, and the run exits 130. Python runs that handler only between
bytecodes, so a main thread blocked inside the database driver (a connect to a silent host, a
statement behind a lock) would not see it in time. A watchdog thread therefore also hears every
signal (``signal.set_wakeup_fd`` writes it at C level) and, if the run has not ended within
:data:`GRACE_S`, ends the workers' sessions, kills them and exits 130 itself; the server
releases the lock when the process's connections close. Raises nothing else.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from runner.errors import ExitCode, Interrupted
from runner.logs import flush, get_logger
from runner.supervise import kill_all

log = get_logger(__name__)

#: How long the main thread gets to stop cleanly before the watchdog ends the process.
GRACE_S = 1.6
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


_received: list[int] = []


def _raise_interrupted(signum: int, _: FrameType | None) -> None:
    # Once: a second SIGTERM must not interrupt the clean-up of the first (the watchdog
    # enforces the deadline).
    if _received:
        return
    _received.append(signum)
    name = signal.Signals(signum).name
    raise Interrupted(
        f"received {name}; stopping (the current revision is rolled back)",
        hint="run again to continue from the last committed revision",
    )


@dataclass(slots=True)
class Signals:
    """The installed handlers and watchdog; :meth:`restore` undoes them."""

    previous: dict[int, Any] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)
    wakeup: tuple[int, int] | None = None
    previous_fd: int = -1

    @classmethod
    def install(cls) -> Signals:
        installed = cls()
        if threading.current_thread() is not threading.main_thread():
            return installed  # in-process callers on other threads keep their handlers
        _received.clear()
        for signum in _SIGNALS:
            installed.previous[signum] = signal.signal(signum, _raise_interrupted)
        read, write = os.pipe()
        os.set_blocking(write, False)
        installed.wakeup = (read, write)
        installed.previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        threading.Thread(target=installed._watch, name="signal-watchdog", daemon=True).start()
        return installed

    def _watch(self) -> None:
        assert self.wakeup is not None
        try:
            data = os.read(self.wakeup[0], 16)
        except OSError:
            return
        if not data or self.done.is_set():
            return
        if self.done.wait(GRACE_S):
            return
        # The main thread is stuck in the driver: end what we started and leave.
        kill_all()
        log.error(
            "deploy.interrupted",
            signal=signal.Signals(data[0]).name,
            exit_code=int(ExitCode.INTERRUPTED),
            forced=True,
        )
        flush()
        os._exit(ExitCode.INTERRUPTED)

    def restore(self) -> None:
        self.done.set()
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.wakeup is not None:
            signal.set_wakeup_fd(self.previous_fd)
            os.close(self.wakeup[1])  # wakes the watchdog with EOF
            os.close(self.wakeup[0])
            self.wakeup = None
