"""Command line: parse arguments into ``Settings``, run the pipeline, map errors to exit codes.

The only module that decides the process's exit code. Expected failures are
:class:`~runner.errors.DeployError` (one error event naming the problem and the fix, a
traceback only with ``--debug``); anything else is a bug: exit 1 with the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import structlog

from runner import __version__
from runner.config import (
    OPTIONS,
    Command,
    LogFormat,
    OnDrift,
    Settings,
    build_settings,
    check_urls,
    parse_value,
)
from runner.errors import (
    ConfigError,
    DeployError,
    DriftError,
    ExitCode,
    Interrupted,
    PendingRevisionsError,
)
from runner.imports import resume_collection
from runner.launch import check_command, exec_app
from runner.logs import configure_logging, get_logger
from runner.report import DeployReport
from runner.signals import Signals

if TYPE_CHECKING:
    from runner.revisions import RevisionState

log = get_logger("runner.cli")

_COMMAND_HELP = {
    Command.RUN: "migrate, then exec the app given after `--` (required)",
    Command.MIGRATE: "wait, lock, check revisions, upgrade to head, verify; then exit",
    Command.STATUS: "show the database and script revisions (read-only)",
    Command.CHECK: "exit 0 when the database is at head; non-zero when not (read-only)",
    Command.PLAN: "print the SQL migrate would run: pending revisions (read-only)",
    Command.SNAPSHOT: "record the expected schema of every revision into a snapshot file "
    "(build time; --check to verify it is fresh)",
}


def _add_options(parser: argparse.ArgumentParser, *, listed: bool = True) -> None:
    """The global options; ``listed=False`` accepts them without repeating their help."""
    group = parser.add_argument_group("options (each also read from the environment)")
    for option in OPTIONS:
        helptext = f"{option.help} [env: {option.env}]" if listed else argparse.SUPPRESS
        if option.kind is bool:
            action = "store_false" if option.flag.startswith("--no-") else "store_true"
            group.add_argument(
                option.flag,
                dest=option.name,
                action=action,
                default=argparse.SUPPRESS,
                help=helptext,
            )
        else:
            choices = (
                [f.value for f in option.kind] if option.kind in (LogFormat, OnDrift) else None
            )
            group.add_argument(
                option.flag,
                dest=option.name,
                default=argparse.SUPPRESS,
                metavar=option.name.upper() if choices is None else None,
                choices=choices,
                help=helptext,
            )


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as :class:`ConfigError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help` for the usage")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="alembic-deploy",
        description="Deploy-time Alembic runner: wait for the database, take the migration "
        "lock, refuse a broken revision graph, upgrade to head, verify, then exec the app.",
    )
    parser.add_argument("--version", action="version", version=f"alembic-deploy {__version__}")
    _add_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in Command:
        sub = commands.add_parser(
            command.value,
            help=_COMMAND_HELP[command],
            description=_COMMAND_HELP[command],
            epilog="Every global option (--database-url, --wait-timeout, --on-drift, ...) is "
            "accepted here too; `alembic-deploy --help` lists them.",
        )
        _add_options(sub, listed=False)
        if command in (Command.STATUS, Command.CHECK):
            sub.add_argument(
                "--json", action="store_true", default=False, help="print a JSON document on stdout"
            )
        if command is Command.SNAPSHOT:
            sub.add_argument(
                "--output",
                default=None,
                metavar="PATH",
                help="where to write the snapshot (default: --snapshot)",
            )
            sub.add_argument(
                "--check",
                dest="check_only",
                action="store_true",
                default=False,
                help="do not write: exit 7 when the snapshot is stale",
            )
        if command is Command.RUN:
            sub.add_argument(
                "app_command",
                nargs=argparse.REMAINDER,
                metavar="-- CMD ARGS",
                help="the app to exec once the schema is at head",
            )
    return parser


def parse_settings(argv: Sequence[str], environ: dict[str, str]) -> Settings:
    parser = build_parser()
    namespace = parser.parse_args(list(argv))
    command = Command(namespace.command)
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if not hasattr(namespace, option.name):
            continue
        raw = getattr(namespace, option.name)
        values[option.name] = raw if option.kind is bool else parse_value(option, raw, option.flag)
    app_command = list(getattr(namespace, "app_command", []) or [])
    if app_command and app_command[0] == "--":
        app_command = app_command[1:]
    if command is Command.RUN and not app_command:
        # A container whose CMD is empty must not "succeed" without starting anything.
        raise ConfigError(
            "run needs the app's command after `--`",
            hint="alembic-deploy run -- gunicorn app:wsgi (or set the image's CMD); "
            "use `alembic-deploy migrate` to migrate without starting an app",
        )
    return build_settings(
        values,
        environ,
        command=command,
        json=bool(getattr(namespace, "json", False)),
        app_command=app_command,
        output=getattr(namespace, "output", None),
        check_only=bool(getattr(namespace, "check_only", False)),
        parse_urls=False,  # _dispatch parses them, after the fast path (no SQLAlchemy there)
    )


def _summary(settings: Settings, report: DeployReport, code: int, started: float) -> None:
    log.info(
        "deploy.summary",
        outcome="ok" if code == ExitCode.OK else "failed",
        exit_code=int(code),
        db_heads_before=list(report.db_heads_before),
        db_heads_after=list(report.db_heads_after),
        script_heads=list(report.script_heads),
        applied=[a.revision for a in report.applied],
        skipped_operations=report.skipped_operations,
        expected_source=report.expected_source,
        drift_found=len(report.drift_before),
        repairs=report.repairs,
        steps_ms=report.steps_ms,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _print_status(
    settings: Settings, state: RevisionState, report: DeployReport, out: TextIO
) -> None:
    from runner.drift import summarize

    drift = [finding.to_dict() for finding in report.drift_before]
    document = {
        "database": report.database,
        "url_source": report.url_source,
        "db_revisions": list(state.db_heads),
        "script_heads": list(state.script_heads),
        "pending": list(state.pending),
        "unknown_revisions": list(state.unknown),
        "version_table_exists": state.version_table_exists,
        "at_head": state.at_head,
        "expected_source": report.expected_source,
        "drift": drift,
        "closest_revision": report.closest,
        "refused": state.refusal.message if state.refusal else None,
    }
    if settings.json:
        print(json.dumps(document, indent=2, sort_keys=True), file=out)
        return
    lines = [
        f"database:             {report.database} (from {report.url_source})",
        f"database revision(s): {', '.join(state.db_heads) or '(none)'}",
        f"script head(s):       {', '.join(state.script_heads)}",
    ]
    if state.unknown:
        lines.append(
            f"unknown revision(s):  {', '.join(state.unknown)} (database ahead of this code)"
        )
    pending = f" ({', '.join(state.pending)})" if state.pending else ""
    lines.append(f"pending:              {len(state.pending)}{pending}")
    lines.append(f"expected schema from: {report.expected_source}")
    lines.append(f"drift:                {summarize(report.drift_before)}")
    if report.closest:
        lines.append(f"stamped {', '.join(state.db_heads)}, physically closest to {report.closest}")
    if state.refusal is not None:
        lines.append(f"refused:              {state.refusal.message}")
    print("\n".join(lines), file=out)


def _fast(settings: Settings) -> bool:
    """Whether to try the no-op fast path: the commands whose no-op answer needs no report."""
    if settings.dry_run or settings.json or settings.adopt:
        return False
    if settings.command in (Command.MIGRATE, Command.RUN, Command.CHECK):
        return settings.fast_path
    return False


def _dispatch(settings: Settings, report: DeployReport, started: float, out: TextIO) -> int:
    fast = _fast(settings)
    if settings.command is Command.SNAPSHOT and not settings.check_only:
        # A build replays the chain in a worker: it imports Alembic and SQLAlchemy while this
        # process imports the pipeline and starts or connects to the server.
        from runner import supervise

        supervise.prestart()
    if not fast:
        check_urls(settings)
    if settings.command is Command.RUN:
        check_command(settings.app_command)
    if fast:
        # Imported only now: a fast start never loads the pipeline (or Alembic).
        from runner import fastpath

        fast_started = time.perf_counter()
        outcome = fastpath.attempt(settings, report)
        report.steps_ms["fastpath"] = round((time.perf_counter() - fast_started) * 1000, 1)
        if outcome is fastpath.Outcome.TAKEN:
            if settings.command is Command.RUN:
                _summary(settings, report, ExitCode.OK, started)
                _exec(settings)
            return ExitCode.OK
        if outcome is fastpath.Outcome.BEHIND and settings.command is not Command.CHECK:
            # Revisions are pending: the upgrade's worker imports Alembic and SQLAlchemy while
            # this process imports the pipeline, waits, locks and verifies.
            from runner import supervise

            supervise.prestart()
        check_urls(settings)
    from runner.pipeline import deploy, inspect_database, plan_sql, write_snapshot

    resume_collection()  # the libraries are in: from here on, the runner's work makes garbage

    if settings.command is Command.SNAPSHOT:
        write_snapshot(settings)
        return ExitCode.OK
    # Dry-run is one decision: every command that would change something prints its plan.
    if settings.command is Command.PLAN or settings.dry_run:
        print(plan_sql(settings, report), end="", file=out)
        return ExitCode.OK
    if settings.command in (Command.STATUS, Command.CHECK):
        state = inspect_database(settings, report, explain=settings.command is Command.STATUS)
        if settings.command is Command.STATUS or settings.json:
            _print_status(settings, state, report, out)
        if settings.command is Command.CHECK:
            if state.refusal is not None:
                raise state.refusal
            errors = [f for f in report.drift_before if f.severity == "error"]
            if errors:
                raise DriftError(
                    f"the schema differs from revision {', '.join(state.db_heads)}",
                    findings=errors,
                    hint="`alembic-deploy migrate` repairs missing objects; `status` lists "
                    "every finding",
                )
            if state.pending:
                raise PendingRevisionsError(
                    f"{len(state.pending)} revision(s) pending: {', '.join(state.pending)}",
                    hint="run alembic-deploy migrate",
                )
        return ExitCode.OK
    deploy(settings, report)
    if settings.command is Command.RUN and settings.app_command:
        _summary(settings, report, ExitCode.OK, started)
        _exec(settings)
    return ExitCode.OK


def _exec(settings: Settings) -> NoReturn:
    """Replace this process with the app (a prestarted worker no job took goes first)."""
    if "runner.supervise" in sys.modules:
        sys.modules["runner.supervise"].discard_prestarted()
    exec_app(settings.app_command)


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Entry point of ``alembic-deploy`` and ``python -m runner``.

    ``argv``, ``environ`` and the streams default to the process's own; tests pass their own
    to run a command in-process (the user's code always runs in a worker, never here).
    """
    started = time.perf_counter()
    args = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if environ is None else environ)
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    structlog.contextvars.clear_contextvars()
    try:
        settings = parse_settings(args, env)
    except ConfigError as exc:
        requested = env.get("ALEMBIC_DEPLOY_LOG_FORMAT", "").strip().lower()
        fmt = LogFormat(requested) if requested in set(LogFormat) else LogFormat.AUTO
        configure_logging(fmt, stream=err)
        log.error(exc.event, error=exc.message, hint=exc.hint, exit_code=int(exc.exit_code))
        return ExitCode.USAGE
    configure_logging(
        settings.log_format, debug=settings.debug, verbose=settings.verbose, stream=err
    )
    structlog.contextvars.bind_contextvars(
        run_id=uuid.uuid4().hex[:12], command=settings.command.value
    )
    signals = Signals.install()
    report = DeployReport()
    code: int = ExitCode.OK
    failure: Callable[[], None] | None = None  # logged last: the error ends the output
    try:
        code = _dispatch(settings, report, started, out)
    except DeployError as exc:
        code = exc.exit_code
        trace = getattr(exc, "traceback", None)
        failure = partial(
            log.error,
            exc.event,
            error=exc.message,
            hint=exc.hint,
            exit_code=int(code),
            exc_info=exc if settings.debug else False,
            **({"worker_traceback": trace} if trace and settings.debug else {}),
        )
    except Interrupted as exc:
        code = ExitCode.INTERRUPTED
        failure = partial(
            log.error, exc.event, error=exc.message, hint=exc.hint, exit_code=int(code)
        )
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
        failure = partial(log.error, "deploy.interrupted", exit_code=int(code))
    except Exception as exc:
        code = ExitCode.UNEXPECTED
        failure = partial(
            log.error,
            "deploy.crashed",
            exit_code=int(code),
            hint="this is a bug in alembic-deploy; please report it with this traceback",
            exc_info=exc,
        )
    try:
        # A summary for the commands that change something; read-only ones say it all.
        if settings.command in (Command.MIGRATE, Command.RUN, Command.SNAPSHOT):
            _summary(settings, report, code, started)
        if failure is not None:
            failure()
    finally:
        signals.restore()
        if "runner.supervise" in sys.modules:
            sys.modules["runner.supervise"].discard_prestarted()
    return int(code)


def entry() -> NoReturn:
    """The console script and ``python -m runner``: :func:`main`, then the process ends at once.

    Tearing the interpreter down (the modules of SQLAlchemy and Alembic) costs ~0.1 s, on every
    container start, for nothing: the worker has ended, the locks are released, the engines'
    connections hold no transaction, and the runner registers no ``atexit`` hook. The output
    is flushed first.
    """
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)
