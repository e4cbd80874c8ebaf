"""Structured logging: one pipeline for the runner's events and for stdlib logging.

Events go to stderr (stdout stays free for ``status --json`` and ``plan``): JSON lines when
stderr is not a terminal (containers), the console renderer on a terminal; ``--log-format``
forces either. Every value of every event, exception text included, passes through
:func:`mask_secrets`, so no URL password reaches the output.

The runner's own events are written by structlog directly (not through stdlib ``logging``), so
an ``env.py`` that calls ``logging.config.fileConfig`` cannot silence them; stdlib records from
Alembic, SQLAlchemy and the app's env.py are routed through the same processors by a root
handler that :func:`reassert_stdlib_logging` puts back after ``fileConfig`` removed it.

Event names (``step.past_tense``; data in keys, units in key names) are a closed set:
:data:`runner.events.EVENTS` lists every one with its meaning, error events (the ``event``
attribute of each :class:`~runner.errors.DeployError` subclass) included; a name logged
anywhere in ``runner/`` must be added there (``tests/unit/test_events.py`` checks it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from runner.config import LogFormat, mask_text
from runner.events import HEADLINES

_HANDLER_NAME = "alembic-deploy"
_state: dict[str, Any] = {}


def mask_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask URL passwords and registered secrets in every string of the event."""
    return {key: _mask(value) for key, value in event_dict.items()}


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, MutableMapping):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, BaseException):
        return mask_text(f"{type(value).__name__}: {value}")
    return value


#: Keys every event carries (bound once per run): a terminal shows them on the first line only.
_CONTEXT_KEYS = ("run_id", "command", "database", "timestamp")


def _brief(_: WrappedLogger, level: str, event_dict: EventDict) -> EventDict:
    """Terminal output without ``--verbose``: the headline info events, every warning and
    error, without the per-run keys repeated on each line (``wait.connected`` and
    ``fastpath.taken`` name the database)."""
    event = event_dict.get("event")
    if level in ("info", "debug") and event not in HEADLINES:
        raise structlog.DropEvent
    for key in _CONTEXT_KEYS:
        if not (key == "database" and event in ("wait.connected", "fastpath.taken")):
            event_dict.pop(key, None)
    return event_dict


def _renderer(fmt: LogFormat, stream: TextIO) -> Processor:
    use_json = fmt is LogFormat.JSON or (fmt is LogFormat.AUTO and not stream.isatty())
    if use_json:
        return structlog.processors.JSONRenderer(sort_keys=False)
    return structlog.dev.ConsoleRenderer(colors=stream.isatty())


def configure_logging(
    fmt: LogFormat = LogFormat.AUTO,
    *,
    debug: bool = False,
    verbose: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging once, first thing in ``cli.main``.

    A terminal (the console format) gets the brief view unless ``verbose`` or ``debug``.
    """
    out = stream if stream is not None else sys.stderr
    renderer = _renderer(fmt, out)
    is_json = isinstance(renderer, structlog.processors.JSONRenderer)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        timestamper,
    ]
    # No local variables in tracebacks: they can hold secrets and drown the error.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    # The console renderer would format a traceback itself, after masking: render it to text
    # first, so that mask_secrets sees it too.
    tail: list[Processor] = [tracebacks] if is_json else [structlog.processors.format_exc_info]
    # The runner's own events only: stdlib records (env.py's, Alembic's) keep their levels.
    brief: list[Processor] = [] if is_json or verbose or debug else [_brief]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            *tail,
            *brief,
            mask_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if debug else logging.INFO
        ),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            mask_secrets,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    _state.update(handler=handler, debug=debug)
    reassert_stdlib_logging()


def reassert_stdlib_logging() -> None:
    """Put our root handler and levels back (``fileConfig`` in env.py replaces them).

    ``logging.config.fileConfig`` clears the root handlers and disables every logger that
    existed before it ran (alembic#714); call this after each run of env.py.
    """
    handler = _state.get("handler")
    if handler is None:
        return
    debug = bool(_state.get("debug"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    levels = {
        "alembic": logging.INFO,
        # We emit structured events for what the migration runner says ("Running upgrade").
        "alembic.runtime.migration": logging.DEBUG if debug else logging.WARNING,
        # Alembic 1.17+ announces each built-in plugin at INFO when it is imported.
        "alembic.runtime.plugins": logging.DEBUG if debug else logging.WARNING,
        "sqlalchemy": logging.WARNING,
        "sqlalchemy.engine": logging.INFO if debug else logging.WARNING,
    }
    for name, level in levels.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(level)
    for known in logging.root.manager.loggerDict.values():
        if isinstance(known, logging.Logger):
            known.disabled = False


def flush() -> None:
    """Flush the log stream (before ``exec`` replaces the process)."""
    handler = _state.get("handler")
    if handler is not None:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A module-level logger (a lazy proxy; configuration may come later)."""
    return structlog.get_logger(name)
