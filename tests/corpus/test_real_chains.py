"""Real third-party chains: alembic-deploy against what plain Alembic does with them.

Five chains of different shapes, copied at test time out of pinned PyPI wheels (nothing
third-party is committed; see ``tests/corpus/chains.py``), each on every backend its application
supports. For each: a fresh ``migrate`` equals ``alembic upgrade heads`` (``physical()``, the raw
catalog and, on SQLite, ``sqlite_master`` clauses); no false drift at the mid revision with a
shadow replay, and at three revisions along the chain and at head with the snapshot;
``snapshot`` builds and ``snapshot --check`` passes; a table, a column, an index, a foreign key
and a unique constraint dropped by hand at the mid revision and at head each converge to a clean
upgrade (``tests/corpus/catalog.py`` picks the object whose repair is hardest to get exactly
right). Cases that fail because of the runner are strict xfails (``KNOWN_BUGS``).

What each chain taught:

- keystone 30.0.0 (10 revisions; PostgreSQL, SQLite). A 1,000-line initial revision (about 50
  tables, a native enum, PL/pgSQL functions on PostgreSQL only, a dialect-specific batch FK on
  SQLite, and a data row: the root domain project), then ``expand`` and ``contract`` branches
  (``branch_labels``) from that root: two heads. A database at one branch's revision upgrades
  both; every kind of repair is byte-identical to Alembic's catalog on PostgreSQL. Its initial
  revision imports oslo_log, oslo_utils and four keystone modules only for two column types, two
  enums' values and a config default (stand-ins). Tables with rows make a dropped NOT NULL
  column without a default unhealable, so the column picked has a default or is nullable.
- prefect 3.8.0 (per-dialect version folders: 115 PostgreSQL and 111 SQLite revisions, distinct
  ids): ``CREATE INDEX CONCURRENTLY`` in ``autocommit_block``, the pg_trgm extension, GIN, partial
  and expression indexes, data migrations. Pinned before 3.8.8: from there two PostgreSQL
  revisions (c8d5f2a71b3e, d4a7e1c93f52) pass ``format('%I...')`` to ``exec_driver_sql`` without
  parameters, which only asyncpg (prefect's driver) accepts; psycopg2 fails with "immutabledict
  is not a sequence" under plain Alembic too. Taught two runner bugs: expression indexes are
  invisible on SQLite, and an operator expression index is re-created without parentheses on
  PostgreSQL. SQLite keeps a default's text as written and a repair writes it in its own
  spelling (``CURRENT_TIMESTAMP`` -> ``current_timestamp``), so the SQLite catalog compares
  defaults up to case, spaces and outer parentheses.
- optuna 5.0.0 (10 revisions, linear; PostgreSQL, SQLite): ``batch_alter_table`` everywhere,
  enum types altered through batch, ORM models declared inside revision files for data
  migrations, numpy imported for two float32 limits (stand-in). On SQLite, batch "move and copy"
  writes a rebuilt table's constraints in Python set order: two plain Alembic runs give different
  ``CREATE TABLE`` texts, so the texts are compared as sets of clauses.
- openstack-placement 16.0.0 (5 revisions; PostgreSQL, SQLite): "blocker" revisions that only
  SELECT and raise while online data migrations are pending, a batch add of an FK column, and a
  revision that drops indexes the initial one created. Imports nothing but SQLAlchemy/Alembic.
- aim 3.29.1, the structured-storage chain (6 revisions; SQLite only, as aim): batch
  ``create_foreign_key`` (move and copy), and ``UniqueConstraint('name')`` declared twice on two
  tables: SQLite keeps both clauses while reflection shows one, so that constraint is not picked
  (dropping one of the two would change nothing visible).

SQLite taught the runner's main gap: its foreign keys are written inline and unnamed, and the
heal adds a missing FK (also a re-created table's FKs) through batch ``create_foreign_key(None,
...)``, which Alembic refuses: 4 of 5 SQLite chains cannot heal a dropped table or FK.

Rejected: jupyterhub (its application creates the tables with ``create_all`` and stamps, the
root revision is empty, and 99a28a4418e1 passes a plain string to ``Connection.execute``, which
SQLAlchemy 2 refuses, in every version from 4.1.6 to 6.1.1; 5.x-6.x also call
``datetime._replace``), buildbot (an empty placeholder root over a schema made by
``create_all``), dagster (every revision guarded by ``has_table`` on tables made by
``create_all``: from empty it builds nothing), mlflow (revisions import the application's ORM
models; the first assumes tables from ``initial_models.create_all``).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from runner.errors import ExitCode
from runner.schema import without_server_text
from tests.corpus import catalog
from tests.corpus.chains import CHAINS, Chain, Graph, alembic_upgrade, graph, materialize
from tests.e2e.helpers import db_revisions, physical
from tests.fixtures.cli import CliResult, run_cli
from tests.fixtures.postgres import PostgresServer

pytestmark = pytest.mark.slow

HEAD = "heads"
HEAL_WHERE = ("mid", "head")


@dataclass
class HealRun:
    url: str
    target: catalog.Target | None
    result: CliResult | None = None


@dataclass
class Setup:
    """One chain on one backend: its temporary project and pristine databases (templates)."""

    chain: Chain
    backend: str
    ini: Path
    graph: Graph
    folder: Path
    pristine: dict[str, str] = field(default_factory=dict)  # revision (or HEAD) -> url
    snapshot: Path | None = None
    snapshot_built: CliResult | None = None
    heal_runs: dict[tuple[str, str], HealRun] = field(default_factory=dict)

    def position(self, where: str) -> str:
        """``along1..3``, ``mid`` or ``head`` -> a revision id (or HEAD)."""
        if where == "head":
            return HEAD
        if where == "mid":
            return self.graph.mid
        return self.graph.along()[int(where.removeprefix("along")) - 1]

    def expected_heads(self) -> list[str]:
        return sorted(self.graph.heads)


class Corpus:
    """Session-wide: projects and pristine databases per (chain, backend), cloned per test."""

    def __init__(self, server: PostgresServer | None, root: Path) -> None:
        self._server = server
        self._root = root
        self._setups: dict[tuple[str, str], Setup] = {}
        self._databases: list[str] = []

    def setup(self, chain: Chain, backend: str) -> Setup:
        key = (chain.id, backend)
        if key not in self._setups:
            folder = self._root / f"{chain.id}-{backend}"
            ini = materialize(chain, backend, folder / "project")
            self._setups[key] = Setup(chain, backend, ini, graph(ini), folder)
        return self._setups[key]

    def new_database(self, setup: Setup, template: str | None = None) -> str:
        name = f"corpus_{setup.chain.id}_{uuid.uuid4().hex[:10]}"
        if setup.backend == "sqlite":
            path = setup.folder / f"{name}.db"
            if template is not None:
                shutil.copyfile(sa.make_url(template).database or "", path)
            return f"sqlite:///{path}"
        assert self._server is not None
        if template is None:
            self._server.create_database(name)
        else:
            source = sa.make_url(template).database
            admin = sa.create_engine(
                self._server.url("postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
            try:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
            finally:
                admin.dispose()
        self._databases.append(name)
        return self._server.url(name)

    def pristine(self, setup: Setup, revision: str) -> str:
        """A database brought to ``revision`` by plain Alembic; never handed to a test."""
        if revision not in setup.pristine:
            url = self.new_database(setup)
            alembic_upgrade(setup.ini, url, revision)
            setup.pristine[revision] = url
        return setup.pristine[revision]

    def clone(self, setup: Setup, revision: str) -> str:
        """A test's own copy of the pristine database at ``revision``."""
        return self.new_database(setup, template=self.pristine(setup, revision))

    def build_snapshot(self, setup: Setup) -> CliResult:
        """``alembic-deploy snapshot`` of the chain, once (PostgreSQL: on a scratch database)."""
        if setup.snapshot_built is None:
            output = setup.folder / "alembic-deploy-snapshot.json"
            if setup.backend == "sqlite":
                url: str | None = f"sqlite:///{setup.folder}/snapshot-build.db"
                args: tuple[str, ...] = ()
            else:
                url, args = None, ("--shadow-url", self.new_database(setup))
            setup.snapshot_built = _cli(setup, "snapshot", "--output", str(output), *args, url=url)
            if setup.snapshot_built.returncode == ExitCode.OK:
                setup.snapshot = output
        return setup.snapshot_built

    def heal_run(self, setup: Setup, where: str, kind: str) -> HealRun:
        """Drop one object of ``kind`` at ``where`` and run ``migrate``.

        The first call for a chain and backend prepares every (where, kind) database and runs
        their migrates two at a time (the machine has two cores); the tests then only assert.
        """
        if not setup.heal_runs:
            # The expected schemas come from the chain's snapshot (built once) when it builds.
            self.build_snapshot(setup)
            source = ("--snapshot", str(setup.snapshot)) if setup.snapshot else ()
            for place, what in itertools.product(HEAL_WHERE, catalog.KINDS):
                url = self.clone(setup, setup.position(place))
                target = catalog.pick(url, what)
                if target is not None:
                    catalog.drop(url, target)
                setup.heal_runs[(place, what)] = HealRun(url, target)
            runs = [run for run in setup.heal_runs.values() if run.target is not None]
            with ThreadPoolExecutor(max_workers=2) as pool:
                results = pool.map(lambda run: _cli(setup, "migrate", *source, url=run.url), runs)
                for run, result in zip(runs, results, strict=True):
                    run.result = result
        return setup.heal_runs[(where, kind)]

    def close(self) -> None:
        if self._server is not None:
            for name in self._databases:
                self._server.drop_database(name)


@pytest.fixture(scope="session")
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    server = None
    if any(backend == "postgresql" for chain in CHAINS for backend in chain.backends):
        try:
            server = request.getfixturevalue("pg_cluster")
        except pytest.skip.Exception:
            server = None
    made = Corpus(server, tmp_path_factory.mktemp("corpus"))
    try:
        yield made
    finally:
        made.close()


def _params(*axes: tuple[str, ...]) -> list[object]:
    """(chain, backend, *axes) for every backend a chain supports; known runner bugs xfail."""
    params = []
    for chain in CHAINS:
        for backend in chain.backends:
            for extra in itertools.product(*axes):
                case = "-".join((chain.id, backend, *extra))
                marks = [
                    pytest.mark.xfail(strict=True, reason=reason)
                    for pattern, reason in KNOWN_BUGS.items()
                    if fnmatch.fnmatchcase(case, pattern)
                ]
                params.append(pytest.param(chain, backend, *extra, id=case, marks=marks))
    return params


@pytest.fixture
def setup(corpus: Corpus, chain: Chain, backend: str) -> Setup:
    if backend == "postgresql" and corpus._server is None:
        pytest.skip("no PostgreSQL server for the corpus")
    return corpus.setup(chain, backend)


def _cli(setup: Setup, *args: str, url: str | None, timeout: float = 600) -> CliResult:
    env = {} if url is None else {"DATABASE_URL": url}
    return run_cli(*args, "--config", str(setup.ini), env=env, timeout=timeout)


def _shape(url: str) -> dict[str, object]:
    """``physical()`` as plain data, columns by name: a repair appends a column at the end."""
    with catalog.quiet_sqlite_reflection():
        schema = physical(url)
    shape: dict[str, object] = {}
    for table in schema.tables.values():
        entry = without_server_text(table.to_dict())
        entry["columns"] = sorted(entry["columns"], key=lambda column: column["name"])
        shape[table.qualified_name] = entry
    for key, enum in schema.enums.items():
        shape[f"enum {key}"] = enum.to_dict()
    return shape


def _same_as_reference(url: str, reference: str, *, strict: bool = False) -> None:
    """Equal by ``physical()`` and by the raw catalog; ``strict``: column order and SQL text."""
    if strict:
        with catalog.quiet_sqlite_reflection():
            assert physical(url) == physical(reference)
    got, want = _shape(url), _shape(reference)
    differing = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
    assert not differing, "\n".join(
        f"{k}:\n  here:      {got.get(k)}\n  reference: {want.get(k)}" for k in differing
    )
    raw, raw_want = catalog.catalog(url), catalog.catalog(reference)
    for kind in raw_want:
        assert raw[kind] == raw_want[kind], (
            f"{kind}: only here {sorted(raw[kind] - raw_want[kind], key=str)}, "
            f"only in the reference {sorted(raw_want[kind] - raw[kind], key=str)}"
        )
    if strict and url.startswith("sqlite"):
        assert catalog.sqlite_master_sql(url) == catalog.sqlite_master_sql(reference)


#: Cases that fail because of the runner (case id patterns; strict, so a fix turns them red).
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(("chain", "backend"), _params())
def test_fresh_migrate_equals_alembic_upgrade(corpus: Corpus, setup: Setup) -> None:
    url = corpus.new_database(setup)
    result = _cli(setup, "migrate", url=url)
    assert result.returncode == ExitCode.OK, result
    assert result.named("upgrade.operation_skipped") == [], result
    assert db_revisions(url) == setup.expected_heads()
    _same_as_reference(url, corpus.pristine(setup, HEAD), strict=True)


@pytest.mark.parametrize(("chain", "backend", "where"), _params(("mid",)))
def test_no_false_drift_with_a_shadow_replay(corpus: Corpus, setup: Setup, where: str) -> None:
    url = corpus.clone(setup, setup.position(where))
    before = db_revisions(url)
    result = _cli(setup, "check", "--json", url=url)
    expected = ExitCode.OK if where == "head" else ExitCode.PENDING
    assert result.returncode == expected, result
    document = json.loads(result.stdout)
    assert document["expected_source"] == "shadow", result
    assert document["drift"] == [], result
    assert db_revisions(url) == before


@pytest.mark.parametrize(("chain", "backend"), _params())
def test_snapshot_builds_check_passes_and_no_false_drift_along_the_chain(
    corpus: Corpus, setup: Setup
) -> None:
    built = corpus.build_snapshot(setup)
    assert built.returncode == ExitCode.OK, built
    assert setup.snapshot is not None
    fresh = _cli(setup, "snapshot", "--check", "--output", str(setup.snapshot), url=None)
    assert fresh.returncode == ExitCode.OK, fresh
    fresh.one("snapshot.fresh")
    # The recorded schemas are what plain Alembic builds, at three revisions and at head.
    for where in ("along1", "along2", "along3", "head"):
        url = corpus.clone(setup, setup.position(where))
        status = _cli(setup, "status", "--json", "--snapshot", str(setup.snapshot), url=url)
        assert status.returncode == ExitCode.OK, status
        document = json.loads(status.stdout)
        assert (where, document["expected_source"]) == (where, "snapshot"), status
        assert (where, document["drift"]) == (where, []), status


@pytest.mark.parametrize(("chain", "backend", "where", "kind"), _params(HEAL_WHERE, catalog.KINDS))
def test_dropped_object_converges_to_a_clean_upgrade(
    corpus: Corpus, setup: Setup, where: str, kind: str
) -> None:
    run = corpus.heal_run(setup, where, kind)
    if run.target is None:
        pytest.skip(f"{setup.chain.id} has no {kind} at {where}")
    url, target, result = run.url, run.target, run.result
    assert result is not None
    assert result.returncode == ExitCode.OK, f"{target}: {result}"
    assert result.named("heal.repair_applied"), f"{target}: nothing healed\n{result}"
    assert db_revisions(url) == setup.expected_heads()
    _same_as_reference(url, corpus.pristine(setup, HEAD))


@pytest.mark.parametrize(("chain", "backend", "case"), _params(("expression",)))
def test_dropped_expression_index_is_found_and_healed(
    corpus: Corpus, setup: Setup, case: str
) -> None:
    url = corpus.clone(setup, HEAD)
    target = catalog.expression_index(url)
    if target is None:
        pytest.skip(f"{setup.chain.id} has no index on an expression")
    catalog.drop(url, target)
    corpus.build_snapshot(setup)
    source = ("--snapshot", str(setup.snapshot)) if setup.snapshot else ()
    checked = _cli(setup, "check", *source, url=url)
    assert checked.returncode == ExitCode.DRIFT, f"{target}: {checked}"
    result = _cli(setup, "migrate", *source, url=url)
    assert result.returncode == ExitCode.OK, f"{target}: {result}"
    _same_as_reference(url, corpus.pristine(setup, HEAD))
