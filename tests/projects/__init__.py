"""Sample Alembic projects, their revision ids, and a helper to copy one for a test.

Every path in a project is relative to its ``alembic.ini`` (``%(here)s``), so a copy in
``tmp_path`` works as is. Projects:

- ``linear``: a real-looking app, 7 revisions in a line (FKs, indexes, an enum, server defaults,
  a data migration); ``env.py`` is stock plus the alembic-deploy hook
  (``config.attributes["connection"]``).
- ``linear_stock``: the same versions; ``env.py`` purely stock, builds its own engine.
- ``linear_envurl``: the same versions; ``env.py`` reads ``DATABASE_URL`` (Heroku style) and
  ignores ``sqlalchemy.url``.
- ``branched``: two heads, no merge, no labels.
- ``labeled``: a shared root, then an ``expand`` and a ``contract`` branch (2 labelled heads).
- ``merged``: ``branched`` plus a merge revision (1 head).

Ids are listed in upgrade order (a topological order for branched graphs).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

PROJECTS_DIR = Path(__file__).parent

LINEAR_REVISIONS = (
    "aa0000000001",  # users
    "aa0000000002",  # files, enum file_status
    "aa0000000003",  # analyses
    "aa0000000004",  # health_metrics
    "aa0000000005",  # users.last_login_at
    "aa0000000006",  # file_status += 'failed' (autocommit_block on PostgreSQL)
    "aa0000000007",  # settings + bulk_insert
)
LINEAR_HEAD = LINEAR_REVISIONS[-1]
LINEAR_TABLES = frozenset({"users", "files", "analyses", "health_metrics", "settings"})

BRANCHED_REVISIONS = (
    "bb0000000001",  # accounts (root)
    "bb0000000002",  # invoices
    "bb0000000003",  # invoices.paid_at (head)
    "bb0000000004",  # audit_log, from the root (head)
)
BRANCHED_HEADS = frozenset({"bb0000000003", "bb0000000004"})
BRANCHED_TABLES = frozenset({"accounts", "invoices", "audit_log"})

LABELED_REVISIONS = (
    "cc0000000001",  # tenants (shared root, no label)
    "cc0000000002",  # expand: widgets
    "cc0000000003",  # expand: widgets.color (head of "expand")
    "cc0000000004",  # contract: drop tenants.legacy_plan (head of "contract")
)
LABELED_HEADS = {"expand": "cc0000000003", "contract": "cc0000000004"}
LABELED_TABLES = frozenset({"tenants", "widgets"})

MERGED_REVISIONS = (
    "dd0000000001",  # accounts (root)
    "dd0000000002",  # invoices
    "dd0000000003",  # invoices.paid_at
    "dd0000000004",  # audit_log, from the root
    "dd0000000005",  # merge of 0003 and 0004 (head)
)
MERGED_HEAD = MERGED_REVISIONS[-1]
MERGED_TABLES = BRANCHED_TABLES


@dataclass(frozen=True, slots=True)
class SampleProject:
    """One project under tests/projects: its revisions, heads, and tables at head."""

    name: str
    revisions: tuple[str, ...]
    heads: frozenset[str]
    tables: frozenset[str]
    # How env.py finds the database: "attributes" (hook, then sqlalchemy.url),
    # "sqlalchemy.url" (stock), or "DATABASE_URL" (environment only).
    url_source: str = "attributes"

    @property
    def path(self) -> Path:
        return PROJECTS_DIR / self.name


PROJECTS = {
    project.name: project
    for project in (
        SampleProject("linear", LINEAR_REVISIONS, frozenset({LINEAR_HEAD}), LINEAR_TABLES),
        SampleProject(
            "linear_stock",
            LINEAR_REVISIONS,
            frozenset({LINEAR_HEAD}),
            LINEAR_TABLES,
            url_source="sqlalchemy.url",
        ),
        SampleProject(
            "linear_envurl",
            LINEAR_REVISIONS,
            frozenset({LINEAR_HEAD}),
            LINEAR_TABLES,
            url_source="DATABASE_URL",
        ),
        SampleProject("branched", BRANCHED_REVISIONS, BRANCHED_HEADS, BRANCHED_TABLES),
        SampleProject(
            "labeled", LABELED_REVISIONS, frozenset(LABELED_HEADS.values()), LABELED_TABLES
        ),
        SampleProject("merged", MERGED_REVISIONS, frozenset({MERGED_HEAD}), MERGED_TABLES),
    )
}

_URL_LINE = re.compile(r"^sqlalchemy\.url = .*$", re.MULTILINE)


def copy_project(name: str, dest: Path, url: str | None = None) -> Path:
    """Copy project ``name`` to ``dest/name`` and return that directory.

    With ``url``, the copy's ``sqlalchemy.url`` is replaced (``%`` escaped for configparser).
    """
    target = dest / name
    shutil.copytree(
        PROJECTS_DIR / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.db")
    )
    if url is not None:
        ini = target / "alembic.ini"
        escaped = url.replace("%", "%%")
        text, count = _URL_LINE.subn(lambda _: f"sqlalchemy.url = {escaped}", ini.read_text())
        assert count == 1, f"{ini} has no single sqlalchemy.url line"
        ini.write_text(text)
    return target
