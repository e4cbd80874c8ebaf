"""Supervisor: run one :mod:`runner.worker` job in a fresh child interpreter and follow it.

The parent keeps the lock, the logs and the exit code; the child runs the user's code. While
the child works the supervisor

* re-emits its records as runner events (``upgrade.revision_applied``, ...), and anything it
  prints (stdout, stderr, stdlib logging) as ``worker.output`` / ``worker.log`` events, never
  on the runner's stdout;
* checks the lock at least once a second (``watch``), and again before every commit: the child
  asks before each revision's transaction commits (``commit_requested``) and is told to abort
  when the lock is gone or the ``gate`` refuses (a replay that reached the real database). An
  upgrade's child that sees the runner's lock session still holding the lock
  (:func:`runner.lock.still_held`) commits without asking;
* stops the child when the lock is lost or a signal arrives: the running statements are
  cancelled on the server (the child reported its backend pid, and every connection it opens
  carries a tagged ``application_name``), the child is given a moment to roll back, then its
  sessions are terminated and it is killed.

A child that ends without its ``completed`` record failed, whatever its exit status:
:class:`WorkerFailed` carries what it reported. Raises whatever ``watch`` raises
(:class:`~runner.errors.LockLostError`) and :class:`~runner.errors.Interrupted`.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import ConnectionLostError
from runner.logs import get_logger

log = get_logger(__name__)

#: How often the lock is checked while a child works (seconds).
WATCH_INTERVAL_S = 0.5
#: How often a revision that is still running is reported (a long backfill is not a hang).
HEARTBEAT_S = 5.0
#: How long the watchdog waits for the workers' sessions to be terminated before exiting.
KILL_CANCEL_S = 0.3
#: How long the pipes are still read after the child exited.
DRAIN_S = 1.0
#: Where the ``runner`` package lives, for the worker's ``PYTHONPATH`` (it runs with ``-P``).
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
#: How long a stopped child gets to roll back before its sessions are terminated.
STOP_GRACE_S = 0.8

_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "error": "error"}


class WorkerFailed(Exception):
    """The child ended without its ``completed`` record."""

    def __init__(
        self, report: dict[str, Any], returncode: int | None, partial: JobResult | None = None
    ) -> None:
        self.report = report
        #: What the child reported before it failed (revisions it committed, ...).
        self.partial = partial or JobResult()
        self.returncode = returncode
        self.error = str(report.get("error") or f"the worker exited with status {returncode}")
        self.revision: str | None = report.get("revision")
        self.applied: list[str] = list(report.get("applied") or [])
        self.lock_timeout = bool(report.get("lock_timeout"))
        #: The database connection broke under the child (not the migration's fault).
        self.connection_lost = bool(report.get("connection_lost"))
        self.aborted = bool(report.get("aborted"))
        self.traceback: str | None = report.get("traceback")
        super().__init__(self.error)


@dataclass(slots=True)
class JobResult:
    """What a completed job reported."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    schemas: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    #: The schema each revision left (``reflect_each``), keyed by revision.
    revision_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``reflect_each``: how many revisions were told apart by DDL events, by digests.
    recorded_via: dict[str, int] = field(default_factory=dict)
    graph: list[dict[str, Any]] | None = None
    #: ``graph``: the script folder and every version location (absolute paths).
    locations: list[str] | None = None
    sql: str | None = None
    configured: dict[str, Any] | None = None


#: Cancels (``terminate=False``) or terminates the child's server sessions.
Canceller = Callable[[list[int], str, bool], None]


@dataclass(slots=True)
class Supervisor:
    """How to follow one kind of job: its event namespace and what the parent checks."""

    #: Event namespace for revisions: ``upgrade`` (the real database) or ``shadow``.
    step: str = "upgrade"
    #: Checks the migration lock; raises when it is lost.
    watch: Callable[[], None] | None = None
    #: Given the identity of the database a commit would land on, a reason to refuse it.
    gate: Callable[[Mapping[str, Any]], str | None] | None = None
    #: Cancels/terminates server sessions of the child (by pid and application_name).
    cancel: Canceller | None = None
    #: The application_name tag the child's connections carry.
    tag: str = field(default_factory=lambda: f"alembic-deploy-worker-{uuid.uuid4().hex[:8]}")
    #: Told of each revision as soon as it committed (a failed run still reports it).
    on_applied: Callable[[dict[str, Any]], None] | None = None
    #: What the server says the child's statement is doing (pids, tag -> fields), for
    #: heartbeats.
    describe: Callable[[list[int], str], dict[str, Any]] | None = None
    #: Told what env.py configured (version table) before any revision runs; may raise to
    #: stop the child before it commits anything.
    on_configured: Callable[[dict[str, Any]], None] | None = None
    debug: bool = False

    def run(self, job: dict[str, Any], env: Mapping[str, str]) -> JobResult:
        """Run ``job`` in a child with environment ``env``; return its records."""
        return _Run(self, job, env).follow()


def _child_environ(env: Mapping[str, str], tag: str) -> dict[str, str]:
    return {
        **env,
        "PGAPPNAME": tag,
        # Unbuffered: what a long migration prints shows up while it runs.
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p),
    }


@dataclass
class _Child:
    """A worker interpreter and the parent's ends of its two pipes."""

    proc: subprocess.Popen[bytes]
    records: int
    control: Any

    @classmethod
    def spawn(cls, environ: Mapping[str, str]) -> _Child:
        records_r, records_w = os.pipe()
        control_r, control_w = os.pipe()
        try:
            proc = subprocess.Popen(
                # -P: the working directory does not shadow our packages (a project's own
                # `alembic/` or `runner/` folder), as with the `alembic` command itself; the
                # Alembic config's prepend_sys_path still applies.
                [sys.executable, "-P", "-m", "runner.worker", str(records_w), str(control_r)],
                pass_fds=(records_w, control_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(environ),
            )
        except BaseException:
            os.close(records_r)
            os.close(control_w)
            raise
        finally:
            os.close(records_w)
            os.close(control_r)
        return cls(proc, records_r, os.fdopen(control_w, "wb", buffering=0))

    def discard(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.records)
        self.control.close()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


#: A worker started ahead of its job (:func:`prestart`), waiting for it; the next job takes it.
_prestarted: _Child | None = None


def prestart() -> None:
    """Start a worker now, to import Alembic and SQLAlchemy while the runner waits, locks and
    verifies: a fresh deploy's upgrade then starts that much sooner. Harmless when unused
    (:func:`discard_prestarted`, and it dies with the runner)."""
    global _prestarted
    if _prestarted is None:
        _prestarted = _Child.spawn(_child_environ(os.environ, "alembic-deploy"))
        log.info("worker.prestarted", pid=_prestarted.proc.pid)


def _take_prestarted() -> _Child | None:
    global _prestarted
    child, _prestarted = _prestarted, None
    if child is not None and child.proc.poll() is not None:
        child.discard()  # it died waiting (killed from outside): start a fresh one
        return None
    return child


def discard_prestarted() -> None:
    """Kill a prestarted worker that no job took (before exiting or exec'ing the app)."""
    child = _take_prestarted()
    if child is not None:
        child.discard()


class _Run:
    def __init__(self, supervisor: Supervisor, job: dict[str, Any], env: Mapping[str, str]):
        self.s = supervisor
        self.result = JobResult()
        #: ``reflect_each``: the tables after the latest revision, by (schema, name).
        self._tables: dict[tuple[Any, str], dict[str, Any]] = {}
        self.failed: dict[str, Any] | None = None
        self.completed = False
        self.pids: list[int] = []
        self.current: str | None = None
        self.started_at = 0.0
        self.heartbeat = 0.0
        environ = _child_environ(env, supervisor.tag)
        child = _take_prestarted() or _Child.spawn(environ)
        self.proc, self.records, self.control = child.proc, child.records, child.control
        with _active_lock:
            _ACTIVE.add(self)
        # The job carries the environment: a prestarted child applies it before any of the
        # user's code runs (it was started with the runner's own).
        self._send({**job, "environ": environ})

    def _send(self, message: Mapping[str, Any]) -> None:
        # BrokenPipe: the child is gone, and its records tell why.
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.control.write((json.dumps(message) + "\n").encode())

    def follow(self) -> JobResult:
        try:
            self._loop()
        except BaseException:
            self.stop()
            raise
        finally:
            with _active_lock:
                _ACTIVE.discard(self)
            self._close()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()
        if not self.completed:
            report = self.failed or {
                # Killed (OOM, a signal) or exited without a word: say where it was.
                "error": _ended(self.proc.returncode),
                "revision": self.current,
                "applied": [r["revision"] for r in self.result.applied],
            }
            raise WorkerFailed(report, self.proc.returncode, self.result)
        return self.result

    def _loop(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        selector = selectors.DefaultSelector()
        streams = {
            self.records: "records",
            self.proc.stdout.fileno(): "stdout",
            self.proc.stderr.fileno(): "stderr",
        }
        pending = {fd: b"" for fd in streams}
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        last_watch = time.monotonic()
        exited_at: float | None = None
        try:
            while selector.get_map():
                for key, _ in selector.select(timeout=WATCH_INTERVAL_S):
                    fd = int(key.fd)
                    data = os.read(fd, 65536)
                    if not data:
                        selector.unregister(fd)
                        if pending[fd]:
                            self._line(streams[fd], pending[fd])
                        continue
                    *lines, pending[fd] = (pending[fd] + data).split(b"\n")
                    for line in lines:
                        self._line(streams[fd], line)
                now = time.monotonic()
                if exited_at is None and self.proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at > DRAIN_S:
                    break  # a process the job started holds its pipes open: stop listening
                if self.s.watch is not None and now - last_watch >= WATCH_INTERVAL_S:
                    self._watch()
                    last_watch = now
                if self.current and now - self.heartbeat >= HEARTBEAT_S:
                    self.heartbeat = now
                    if self.s.step == "upgrade":  # a long revision is not a hang
                        log.info(
                            "upgrade.still_running",
                            revision=self.current,
                            elapsed_s=round(now - self.started_at, 1),
                            **self._server_status(),
                        )
        finally:
            selector.close()
        self.proc.wait()

    def _line(self, stream: str, raw: bytes) -> None:
        text = raw.decode(errors="replace").rstrip("\r")
        if stream != "records":
            if text.strip():
                log.info("worker.output", stream=stream, line=text, revision=self.current)
            return
        try:
            record: dict[str, Any] = json.loads(text)
            handler = getattr(self, f"_on_{record.pop('record')}")
        except (ValueError, KeyError, AttributeError, TypeError):
            # Not one of ours (something wrote to the pipe): shown, never trusted.
            log.warning("worker.output", stream="records", line=text[:2000])
            return
        handler(record)

    # --- records ------------------------------------------------------------------------

    def _on_graph(self, record: dict[str, Any]) -> None:
        self.result.graph = record["revisions"]
        self.result.locations = record.get("locations")

    def _on_configured(self, record: dict[str, Any]) -> None:
        self.result.configured = record
        if self.s.on_configured is not None:
            self.s.on_configured(record)

    def _on_connected(self, record: dict[str, Any]) -> None:
        if record.get("backend_pid") is not None:
            self.pids.append(int(record["backend_pid"]))

    def _on_revision_started(self, record: dict[str, Any]) -> None:
        self.current = record["revision"]
        self.started_at = self.heartbeat = time.monotonic()
        emit = log.info if self.s.step == "upgrade" else log.debug
        emit(f"{self.s.step}.revision_started", revision=self.current)

    def _server_status(self) -> dict[str, Any]:
        if self.s.describe is None:
            return {}
        try:
            return self.s.describe(self.pids, self.s.tag)
        except Exception as exc:  # a heartbeat never fails the run
            return {"status_unavailable": " ".join(str(exc).split())[:200]}

    def _watch(self) -> None:
        assert self.s.watch is not None
        try:
            self.s.watch()
        except ConnectionLostError as lost:
            if lost.revision is not None or self.current is None:
                raise
            # The server went away under a running revision: say which one.
            raise ConnectionLostError(
                f"the database connection was lost during revision {self.current}: "
                f"{lost.message.split(': ', 1)[-1]}",
                revision=self.current,
                applied=[a["revision"] for a in self.result.applied],
                hint=lost.hint,
            ) from None

    def _on_commit_requested(self, record: dict[str, Any]) -> None:
        reason: str | None = None
        if self.s.watch is not None:
            self._watch()  # raises when the lock is gone: the child is stopped
        if self.s.gate is not None:
            reason = self.s.gate(record.get("identity") or {})
        if reason:
            self._send({"answer": "abort", "reason": reason})
        else:
            self._send({"answer": "commit"})

    def _on_revision_applied(self, record: dict[str, Any]) -> None:
        self.result.applied.append(record)
        if self.s.on_applied is not None:
            self.s.on_applied(record)
        self.current = None
        emit = log.info if self.s.step == "upgrade" else log.debug
        emit(
            f"{self.s.step}.revision_applied",
            revision=record["revision"],
            from_revisions=record["down_revisions"],
            duration_ms=record["duration_ms"],
        )

    def _on_operation_skipped(self, record: dict[str, Any]) -> None:
        self.result.skipped.append(record)
        if self.s.step == "upgrade":
            log.warning("upgrade.operation_skipped", **record)
        else:  # a replay skips what the deploy would: same rules, quieter
            log.debug("shadow.operation_skipped", **record)

    def _on_log(self, record: dict[str, Any]) -> None:
        level = _LEVELS.get(record.get("level", "info"), "info")
        getattr(log, level)(
            "worker.log", logger=record.get("logger"), message=record.get("message")
        )

    def _on_schema(self, record: dict[str, Any]) -> None:
        if "delta" in record:
            # Only what the revision changed: applied to the previous revision's tables, whose
            # dicts are shared (not copied) between the revisions that did not change them.
            delta = record["delta"]
            how, counts = delta.get("via", "digests"), self.result.recorded_via
            counts[how] = counts.get(how, 0) + 1
            tables = self._tables
            for key in delta["removed"]:
                tables.pop((key[0], key[1]), None)
            for table in delta["tables"]:
                tables[(table["schema"], table["name"])] = table
            self.result.revision_schemas[record["revision"]] = {
                "tables": list(tables.values()),
                "enums": delta["enums"],
                "schemas": delta["schemas"],
            }
        elif record.get("revision"):
            self.result.revision_schemas[record["revision"]] = record["schema"]
        else:
            self.result.schemas[int(record["index"])] = record["schema"]

    def _on_sql(self, record: dict[str, Any]) -> None:
        self.result.sql = record["text"]

    def _on_failed(self, record: dict[str, Any]) -> None:
        self.failed = record

    def _on_completed(self, record: dict[str, Any]) -> None:
        self.completed = True

    # --- stopping -----------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel the child's statements, let it roll back, then end it for sure."""
        if self.proc.poll() is not None:
            return
        # First the control pipe: a child between statements sees it closed before its next
        # commit (it asks, reads EOF and aborts), even one that checks the lock itself.
        self._close()
        self._cancel(terminate=False)
        try:
            self.proc.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            pass
        self._cancel(terminate=True)
        self.proc.kill()
        self.proc.wait()

    def _cancel(self, *, terminate: bool) -> None:
        if self.s.cancel is None:
            return
        try:
            self.s.cancel(list(self.pids), self.s.tag, terminate)
        except Exception as exc:  # best effort: killing the child still ends its sessions
            log.warning("worker.cancel_failed", error=str(exc), terminate=terminate)

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.close()
        if self.records >= 0:
            os.close(self.records)
            self.records = -1


def _ended(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in set(signal.Signals) else ""
        return f"the worker was killed by signal {name or -returncode} before it finished"
    return f"the worker exited with status {returncode} before it finished"


_ACTIVE: set[_Run] = set()
_active_lock = threading.Lock()


def kill_all() -> None:
    """Kill every running child and end its sessions (the signal watchdog's last resort)."""
    if _prestarted is not None:
        _prestarted.proc.kill()
    with _active_lock:
        runs = list(_ACTIVE)
    for run in runs:
        run.proc.kill()

    def end_sessions() -> None:
        for run in runs:
            run._cancel(terminate=True)

    # Bounded: a server that does not answer must not keep the process from exiting.
    ender = threading.Thread(target=end_sessions, name="end-sessions", daemon=True)
    ender.start()
    ender.join(KILL_CANCEL_S)
