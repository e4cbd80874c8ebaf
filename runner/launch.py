"""Launch step: replace this process with the app (``os.execvp``).

The app keeps the runner's PID, so in a container it is PID 1 and receives ``docker stop``'s
SIGTERM directly. ``exec`` skips ``finally`` blocks and ``atexit``, so the pipeline has already
released the lock and disposed the engine; here we flush the logs and put back the signal
dispositions Python changed at start-up (it ignores SIGPIPE and SIGXFSZ, and an ignored signal
stays ignored across ``exec``).

Raises :class:`ConfigError` (exit 2) when the command cannot be found; :func:`check_command`
runs that check before anything touches the database.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Sequence
from typing import NoReturn

from runner.errors import ConfigError
from runner.logs import flush, get_logger

log = get_logger(__name__)


def check_command(command: Sequence[str]) -> None:
    """Fail early, before migrating, when the app command is not executable."""
    if not command:
        return
    program = command[0]
    found = (
        shutil.which(program)
        if os.sep not in program
        else (program if os.access(program, os.X_OK) else None)
    )
    if found is None:
        raise ConfigError(
            f"app command not found or not executable: {program!r}",
            hint="give the app after `--`, e.g. alembic-deploy run -- gunicorn app:wsgi",
        )


def exec_app(command: Sequence[str]) -> NoReturn:
    """Replace the current process with ``command``; never returns."""
    log.info("launch.exec", argv=list(command), pid=os.getpid())
    flush()
    for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execvp(command[0], list(command))
    except OSError as exc:
        raise ConfigError(
            f"cannot start the app {command[0]!r}: {exc.strerror}",
            hint="check the command after `--`",
        ) from exc
