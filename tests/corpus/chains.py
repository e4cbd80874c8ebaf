"""Real third-party Alembic chains, taken from pinned PyPI wheels at test time.

Nothing third-party is committed. ``Wheel.path()`` downloads one wheel (``pip download
--no-deps --only-binary=:all:``, exact pin) into a cache directory (``ALEMBIC_DEPLOY_CORPUS_CACHE``,
default ``~/.cache/alembic-deploy-corpus``) once; ``materialize()`` copies the chain's versions
folder(s) out of the wheel (a zip, never installed) into a temporary project and adds only:

- ``alembic.ini`` and the stock online ``env.py`` with the alembic-deploy connection hook
  (``target_metadata = None``), the same as ``tests/projects/stateful_revision``;
- ``stand_ins/``: stand-ins for the few application modules a revision file imports at module
  level (see ``tests/corpus/stand_ins.py``; each says what it stands in for).

Plain Alembic (the reference) runs in a subprocess (``alembic_upgrade``), so the stand-ins and
the revision modules never enter the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from tests.corpus import stand_ins
from tests.fixtures.cli import cli_environ

CACHE_ENV = "ALEMBIC_DEPLOY_CORPUS_CACHE"


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "alembic-deploy-corpus"


@dataclass(frozen=True)
class Wheel:
    """One distribution at an exact version; only its wheel is downloaded, never installed."""

    distribution: str
    version: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def _cached(self, folder: Path) -> Path | None:
        stem = self.distribution.replace("-", "_").lower()
        for candidate in sorted(folder.glob("*.whl")):
            name, _, rest = candidate.name.partition("-")
            if name.lower() == stem and rest.startswith(f"{self.version}-"):
                return candidate
        return None

    def path(self) -> Path:
        """The cached wheel, downloaded first if need be; skips the test when it cannot be."""
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        found = self._cached(folder)
        if found is not None:
            return found
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            self.requirement,
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=600, check=False
            )
        except subprocess.TimeoutExpired:
            pytest.skip(f"downloading the {self.requirement} wheel timed out (no network?)")
        found = self._cached(folder)
        if result.returncode != 0 or found is None:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            pytest.skip(f"cannot download the {self.requirement} wheel: {' '.join(tail)}")
        return found


@dataclass(frozen=True)
class Chain:
    """A versions folder in a wheel, the backends its application supports, and what it needs."""

    id: str
    wheel: Wheel
    #: Folder of revision files inside the wheel, per backend (per-dialect chains differ).
    versions: Mapping[str, str]
    #: Stand-in modules the revision files import (relative path -> source).
    stand_ins: Mapping[str, str] = field(default_factory=dict)
    #: pytest marks per (case, backend), for runner bugs this chain exposes (strict xfails).
    known: Mapping[str, str] = field(default_factory=dict)

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(self.versions)

    def __str__(self) -> str:
        return self.id


PLACEMENT = Wheel("openstack-placement", "16.0.0")
KEYSTONE = Wheel("keystone", "30.0.0")
OPTUNA = Wheel("optuna", "5.0.0")
AIM = Wheel("aim", "3.29.1")
PREFECT = Wheel("prefect", "3.8.0")

CHAINS: tuple[Chain, ...] = (
    Chain(
        "keystone",
        KEYSTONE,
        {
            "postgresql": "keystone/common/sql/migrations/versions",
            "sqlite": "keystone/common/sql/migrations/versions",
        },
        stand_ins=stand_ins.KEYSTONE,
    ),
    Chain(
        "prefect",
        PREFECT,
        {
            "postgresql": "prefect/server/database/_migrations/versions/postgresql",
            "sqlite": "prefect/server/database/_migrations/versions/sqlite",
        },
        stand_ins=stand_ins.PREFECT,
    ),
    Chain(
        "optuna",
        OPTUNA,
        {
            "postgresql": "optuna/storages/_rdb/alembic/versions",
            "sqlite": "optuna/storages/_rdb/alembic/versions",
        },
        stand_ins=stand_ins.OPTUNA,
    ),
    Chain(
        "placement",
        PLACEMENT,
        {
            "postgresql": "placement/db/sqlalchemy/alembic/versions",
            "sqlite": "placement/db/sqlalchemy/alembic/versions",
        },
    ),
    Chain("aim", AIM, {"sqlite": "aim/storage/migrations/versions"}),
)

CHAINS_BY_ID = {chain.id: chain for chain in CHAINS}

ENV_PY = '''\
"""Stock online env.py with the alembic-deploy connection hook (added by the corpus tests)."""

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection

config = context.config
target_metadata = None


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # alembic-deploy hook: use the connection the runner hands over, if any.
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        do_run_migrations(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

ALEMBIC_INI = """\
# Written by tests/corpus: revision files copied from the {requirement} wheel.
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = %(here)s/stand_ins
path_separator = os
version_locations = {locations}
sqlalchemy.url = sqlite:///%(here)s/unused.db
"""


def materialize(chain: Chain, backend: str, target: Path) -> Path:
    """Write the chain's temporary project for ``backend`` into ``target``; its alembic.ini."""
    prefix = PurePosixPath(chain.versions[backend])
    versions = target / "migrations" / "versions"
    folders: set[Path] = set()
    with zipfile.ZipFile(chain.wheel.path()) as wheel:
        for name in wheel.namelist():
            member = PurePosixPath(name)
            if member.suffix != ".py" or prefix not in member.parents:
                continue
            if member.name == "__init__.py":
                continue
            relative = member.relative_to(prefix)
            destination = versions / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(wheel.read(name))
            folders.add(destination.parent)
    if not folders:
        raise AssertionError(f"no revision files under {prefix} in {chain.wheel.requirement}")
    for relative, source in chain.stand_ins.items():
        path = target / "stand_ins" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (target / "stand_ins").mkdir(exist_ok=True)
    (target / "migrations" / "env.py").write_text(ENV_PY)
    locations = os.pathsep.join(str(folder) for folder in sorted(folders))
    ini = target / "alembic.ini"
    ini.write_text(ALEMBIC_INI.format(requirement=chain.wheel.requirement, locations=locations))
    return ini


_ALEMBIC_SCRIPT = """
import json, sys
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ini, action, url, target = sys.argv[1:5]
config = Config(ini)
if url:
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
if action == "upgrade":
    command.upgrade(config, target)
elif action == "graph":
    script = ScriptDirectory.from_config(config)
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    print(json.dumps({"revisions": revisions, "heads": sorted(script.get_heads())}))
"""


def _alembic(ini: Path, action: str, url: str = "", target: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-c", _ALEMBIC_SCRIPT, str(ini), action, url, target],
        env=cli_environ(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"plain alembic {action} {target} failed ({ini}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def alembic_upgrade(ini: Path, url: str, target: str = "heads") -> None:
    """``alembic upgrade TARGET`` with plain Alembic, in a subprocess (the reference)."""
    _alembic(ini, "upgrade", url, target)


@dataclass(frozen=True)
class Graph:
    revisions: tuple[str, ...]  # bases first (a topological order)
    heads: tuple[str, ...]

    def along(self) -> tuple[str, str, str]:
        """Three revisions along the chain (about a quarter, half and three quarters in)."""
        candidates = [r for r in self.revisions if r not in self.heads]
        n = len(candidates)
        picks = [candidates[min(n - 1, (n * k) // 4)] for k in (1, 2, 3)]
        assert len(set(picks)) == 3, f"chain too short for three positions: {self.revisions}"
        return picks[0], picks[1], picks[2]

    @property
    def mid(self) -> str:
        return self.along()[1]


def graph(ini: Path) -> Graph:
    document = json.loads(_alembic(ini, "graph").strip().splitlines()[-1])
    return Graph(tuple(document["revisions"]), tuple(document["heads"]))
