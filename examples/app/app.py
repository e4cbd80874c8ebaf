"""The example app: a tiny web service whose schema Alembic manages, run behind alembic-deploy.

Contract (the Dockerfile, the platform examples and the container tests rely on it):

- started as ``python3 app.py`` from this directory;
- listens on ``PORT`` (default 8000) on all interfaces;
- reads ``DATABASE_URL``, else ``sqlalchemy.url`` of ``alembic.ini`` beside this file (a SQLite
  file); a bare ``postgresql://`` or Heroku's ``postgres://`` uses psycopg2;
- ``GET /health`` answers 200 only when the database is at the script head(s), 503 otherwise
  (revisions pending, database ahead of the code, or unreachable);
- SIGTERM (``docker stop``) or SIGINT shuts the server down and exits 0. In a container the app
  is PID 1, which gets no default signal handling from the kernel, so the handler is required.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ALEMBIC_INI = HERE / "alembic.ini"


def log(event: str, **fields: Any) -> None:
    """One JSON line on stderr, like alembic-deploy's own events."""
    print(json.dumps({"event": event, **fields}), file=sys.stderr, flush=True)


def database_url(config: Config) -> sa.URL:
    """``DATABASE_URL`` or the config's ``sqlalchemy.url``, with the driver made explicit."""
    url = make_url(os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url"))
    # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; this app ships psycopg2.
    if url.drivername in ("postgres", "postgresql"):
        url = url.set(drivername="postgresql+psycopg2")
    return url


def create_engine(url: sa.URL) -> sa.Engine:
    connect_args = {"connect_timeout": 3} if url.get_backend_name() == "postgresql" else {}
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)


class App:
    """What a request handler needs: the engine and the script heads (fixed for a process)."""

    def __init__(self, engine: sa.Engine, script_heads: frozenset[str]) -> None:
        self.engine = engine
        self.script_heads = script_heads

    def health(self) -> tuple[HTTPStatus, dict[str, Any]]:
        body: dict[str, Any] = {"script_heads": sorted(self.script_heads)}
        try:
            with self.engine.connect() as conn:
                db_heads = frozenset(MigrationContext.configure(conn).get_current_heads())
        except sa.exc.SQLAlchemyError as exc:
            return HTTPStatus.SERVICE_UNAVAILABLE, {
                **body,
                "status": "database unavailable",
                "error": type(exc).__name__,
            }
        body["db_heads"] = sorted(db_heads)
        if db_heads != self.script_heads:
            return HTTPStatus.SERVICE_UNAVAILABLE, {**body, "status": "not at head"}
        return HTTPStatus.OK, {**body, "status": "ok"}

    def users(self) -> tuple[HTTPStatus, dict[str, Any]]:
        with self.engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
        return HTTPStatus.OK, {"users": count}


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        routes = {"/health": self.server.app.health, "/users": self.server.app.users}
        route = routes.get(self.path.split("?", 1)[0])
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, {"error": "not found", "routes": sorted(routes)})
            return
        try:
            status, body = route()
        except sa.exc.SQLAlchemyError as exc:
            status, body = HTTPStatus.SERVICE_UNAVAILABLE, {"error": type(exc).__name__}
        self._send(status, body)

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        # Health probes every few seconds would drown the log; errors still go through.
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, app: App) -> None:
        super().__init__(("", port), Handler)
        self.app = app


def main() -> int:
    config = Config(str(ALEMBIC_INI))
    url = database_url(config)
    script_heads = frozenset(ScriptDirectory.from_config(config).get_heads())
    engine = create_engine(url)
    port = int(os.environ.get("PORT", "8000"))
    server = Server(port, App(engine, script_heads))

    def stop(signum: int, _: FrameType | None) -> None:
        log("app.stopping", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return: never call it from that thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(
        "app.listening",
        port=port,
        pid=os.getpid(),
        database=url.render_as_string(hide_password=True),
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        engine.dispose()
    log("app.stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
