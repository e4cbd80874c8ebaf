"""``drift.diff`` on hand-built schemas: every finding kind, order, and what is not reported."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from runner.drift import Finding, FindingKind, Severity, diff, summarize
from runner.schema import (
    CheckConstraint,
    Column,
    Enum,
    Exclusion,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)

USERS = Table(
    schema=None,
    name="users",
    columns=(
        Column("id", "INTEGER", False, identity="serial"),
        Column("email", "VARCHAR(255)", False),
        Column("name", "VARCHAR(255)", True),
        Column("created_at", "TIMESTAMP WITH TIME ZONE", False, default="now()"),
    ),
    primary_key=PrimaryKey("users_pkey", ("id",)),
    indexes=(Index("ix_users_name", ("name",)),),
    uniques=(UniqueConstraint("uq_users_email", ("email",)),),
    checks=(CheckConstraint("ck_users_email", "email <> ''"),),
)
FILES = Table(
    schema=None,
    name="files",
    columns=(
        Column("id", "INTEGER", False, identity="serial"),
        Column("user_id", "INTEGER", False),
        Column("status", "ENUM(file_status)", False),
    ),
    primary_key=PrimaryKey("files_pkey", ("id",)),
    indexes=(Index("ix_files_user_id", ("user_id",)),),
    foreign_keys=(
        ForeignKey(
            "fk_files_user_id_users", ("user_id",), None, "users", ("id",), ondelete="CASCADE"
        ),
    ),
    exclusions=(Exclusion("files_user_id_excl", "EXCLUDE USING btree (user_id WITH =)"),),
)
FILE_STATUS = Enum(None, "file_status", ("uploaded", "done", "failed"))


def schema(*tables: Table, enums: tuple[Enum, ...] = (FILE_STATUS,)) -> Schema:
    return Schema(
        tables={table.key: table for table in tables}, enums={enum.key: enum for enum in enums}
    )


EXPECTED = schema(USERS, FILES)


def replace_table(table: Table, **changes: object) -> Table:
    return dataclasses.replace(table, **changes)  # type: ignore[arg-type]


def replace_column(table: Table, name: str, **changes: object) -> Table:
    columns = tuple(
        dataclasses.replace(column, **changes) if column.name == name else column  # type: ignore[arg-type]
        for column in table.columns
    )
    return replace_table(table, columns=columns)


def kinds(findings: list[Finding]) -> list[FindingKind]:
    return [finding.kind for finding in findings]


def test_identical_schemas_have_no_drift() -> None:
    assert diff(EXPECTED, schema(USERS, FILES)) == []
    assert summarize([]) == "no drift"


# One case per kind: how to damage the expected schema, and the single finding it gives.
CASES: dict[FindingKind, tuple[Callable[[], Schema], str | None, str | None]] = {
    FindingKind.MISSING_TABLE: (lambda: schema(USERS), "files", None),
    FindingKind.EXTRA_TABLE: (
        lambda: schema(USERS, FILES, Table(None, "audit", (Column("id", "INTEGER", False),))),
        "audit",
        None,
    ),
    FindingKind.MISSING_COLUMN: (
        lambda: schema(replace_table(USERS, columns=USERS.columns[:3]), FILES),
        "users",
        "created_at",
    ),
    FindingKind.EXTRA_COLUMN: (
        lambda: schema(
            replace_table(USERS, columns=(*USERS.columns, Column("nick", "TEXT", True))), FILES
        ),
        "users",
        "nick",
    ),
    FindingKind.MISSING_INDEX: (
        lambda: schema(replace_table(USERS, indexes=()), FILES),
        "users",
        "ix_users_name",
    ),
    FindingKind.EXTRA_INDEX: (
        lambda: schema(
            replace_table(USERS, indexes=(*USERS.indexes, Index("ix_users_email", ("email",)))),
            FILES,
        ),
        "users",
        "ix_users_email",
    ),
    FindingKind.MISSING_UNIQUE: (
        lambda: schema(replace_table(USERS, uniques=()), FILES),
        "users",
        "uq_users_email",
    ),
    FindingKind.EXTRA_UNIQUE: (
        lambda: schema(
            replace_table(
                USERS, uniques=(*USERS.uniques, UniqueConstraint("uq_users_name", ("name",)))
            ),
            FILES,
        ),
        "users",
        "uq_users_name",
    ),
    FindingKind.MISSING_CHECK: (
        lambda: schema(replace_table(USERS, checks=()), FILES),
        "users",
        "ck_users_email",
    ),
    FindingKind.EXTRA_CHECK: (
        lambda: schema(
            replace_table(USERS, checks=(*USERS.checks, CheckConstraint("ck_name", "name <> ''"))),
            FILES,
        ),
        "users",
        "ck_name",
    ),
    FindingKind.MISSING_FOREIGN_KEY: (
        lambda: schema(USERS, replace_table(FILES, foreign_keys=())),
        "files",
        "fk_files_user_id_users",
    ),
    FindingKind.EXTRA_FOREIGN_KEY: (
        lambda: schema(
            USERS,
            replace_table(
                FILES,
                foreign_keys=(
                    *FILES.foreign_keys,
                    ForeignKey("fk_files_id_users", ("id",), None, "users", ("id",)),
                ),
            ),
        ),
        "files",
        "fk_files_id_users",
    ),
    FindingKind.MISSING_EXCLUSION: (
        lambda: schema(USERS, replace_table(FILES, exclusions=())),
        "files",
        "files_user_id_excl",
    ),
    FindingKind.EXTRA_EXCLUSION: (
        lambda: schema(
            USERS,
            replace_table(FILES, exclusions=(*FILES.exclusions, Exclusion("files_id_excl"))),
        ),
        "files",
        "files_id_excl",
    ),
    FindingKind.MISSING_PRIMARY_KEY: (
        lambda: schema(replace_table(USERS, primary_key=None), FILES),
        "users",
        "users_pkey",
    ),
    FindingKind.MISSING_ENUM: (lambda: schema(USERS, FILES, enums=()), None, "file_status"),
    FindingKind.EXTRA_ENUM: (
        lambda: schema(USERS, FILES, enums=(FILE_STATUS, Enum(None, "mood", ("sad",)))),
        None,
        "mood",
    ),
    FindingKind.MISSING_ENUM_VALUE: (
        lambda: schema(USERS, FILES, enums=(Enum(None, "file_status", ("uploaded", "done")),)),
        None,
        "file_status",
    ),
    FindingKind.EXTRA_ENUM_VALUE: (
        lambda: schema(
            USERS,
            FILES,
            enums=(Enum(None, "file_status", ("uploaded", "done", "failed", "lost")),),
        ),
        None,
        "file_status",
    ),
    FindingKind.CHANGED_TYPE: (
        lambda: schema(replace_column(USERS, "email", type="TEXT"), FILES),
        "users",
        "email",
    ),
    FindingKind.CHANGED_NULLABLE: (
        lambda: schema(replace_column(USERS, "email", nullable=True), FILES),
        "users",
        "email",
    ),
    FindingKind.CHANGED_DEFAULT: (
        lambda: schema(replace_column(USERS, "created_at", default=None), FILES),
        "users",
        "created_at",
    ),
    FindingKind.CHANGED_INDEX: (
        lambda: schema(
            replace_table(USERS, indexes=(Index("ix_users_name", ("name", "email")),)),
            FILES,
        ),
        "users",
        "ix_users_name",
    ),
    FindingKind.CHANGED_CONSTRAINT: (
        lambda: schema(
            USERS,
            replace_table(
                FILES,
                foreign_keys=(
                    ForeignKey("fk_files_user_id_users", ("user_id",), None, "users", ("id",)),
                ),
            ),
        ),
        "files",
        "fk_files_user_id_users",
    ),
    FindingKind.INVALID_INDEX: (
        lambda: schema(
            replace_table(USERS, indexes=(Index("ix_users_name", ("name",), valid=False),)),
            FILES,
        ),
        "users",
        "ix_users_name",
    ),
    FindingKind.UNVALIDATED_CONSTRAINT: (
        lambda: schema(
            USERS,
            replace_table(
                FILES,
                foreign_keys=(dataclasses.replace(FILES.foreign_keys[0], valid=False),),
            ),
        ),
        "files",
        "fk_files_user_id_users",
    ),
}


def test_every_kind_has_a_case() -> None:
    assert set(CASES) == set(FindingKind)


@pytest.mark.parametrize("kind", sorted(CASES), ids=str)
def test_each_kind_is_found_alone(kind: FindingKind) -> None:
    make_actual, table, name = CASES[kind]
    findings = diff(EXPECTED, make_actual())
    assert kinds(findings) == [kind], summarize(findings)
    assert (findings[0].table, findings[0].object) == (table, name)
    assert findings[0].detail


@pytest.mark.parametrize("kind", sorted(FindingKind), ids=str)
def test_severity_and_healable_follow_the_kind(kind: FindingKind) -> None:
    finding = Finding(kind, "t", "o", "d")
    is_warning = kind.startswith("extra_") or kind in {
        FindingKind.CHANGED_NULLABLE,
        FindingKind.CHANGED_DEFAULT,
        FindingKind.CHANGED_INDEX,
        FindingKind.CHANGED_CONSTRAINT,
        FindingKind.UNVALIDATED_CONSTRAINT,
    }
    assert finding.severity == (Severity.WARNING if is_warning else Severity.ERROR)
    healable = kind.startswith("missing_") and kind != FindingKind.MISSING_PRIMARY_KEY
    assert finding.healable is healable


def test_a_missing_table_is_one_finding_not_one_per_object() -> None:
    """The heal step creates the whole table; per-column findings would double the work."""
    findings = diff(EXPECTED, schema(enums=()))
    assert kinds(findings) == [
        FindingKind.MISSING_ENUM,
        FindingKind.MISSING_TABLE,
        FindingKind.MISSING_TABLE,
    ]
    assert [f.table for f in findings[1:]] == ["files", "users"]


def test_extra_objects_are_not_reported_as_missing() -> None:
    bigger = replace_table(
        USERS,
        columns=(*USERS.columns, Column("nick", "TEXT", True)),
        indexes=(*USERS.indexes, Index("ix_users_nick", ("nick",))),
        checks=(*USERS.checks, CheckConstraint("ck_nick", "nick <> ''")),
    )
    findings = diff(EXPECTED, schema(bigger, FILES))
    assert all(f.kind.startswith("extra_") for f in findings), summarize(findings)
    assert {f.object for f in findings} == {"nick", "ix_users_nick", "ck_nick"}


def test_changed_type_is_not_missing_plus_extra() -> None:
    findings = diff(EXPECTED, schema(replace_column(USERS, "name", type="VARCHAR(64)"), FILES))
    assert kinds(findings) == [FindingKind.CHANGED_TYPE]
    assert "VARCHAR(255)" in findings[0].detail and "VARCHAR(64)" in findings[0].detail


def test_one_column_can_change_in_several_ways() -> None:
    actual = replace_column(USERS, "name", type="TEXT", nullable=False, default="'x'")
    findings = diff(EXPECTED, schema(actual, FILES))
    assert kinds(findings) == [
        FindingKind.CHANGED_TYPE,
        FindingKind.CHANGED_NULLABLE,
        FindingKind.CHANGED_DEFAULT,
    ]


def test_equivalent_defaults_are_not_drift() -> None:
    """PostgreSQL reflects CURRENT_TIMESTAMP as written; it is now() all the same."""
    actual = replace_column(USERS, "created_at", default="current_timestamp")
    assert diff(EXPECTED, schema(actual, FILES)) == []


def test_serial_versus_identity_is_a_changed_default() -> None:
    actual = replace_column(USERS, "id", identity="by default")
    assert kinds(diff(EXPECTED, schema(actual, FILES))) == [FindingKind.CHANGED_DEFAULT]


def test_findings_are_walked_in_sorted_order() -> None:
    expected = schema(
        Table(None, "b", (Column("y", "INTEGER", True), Column("x", "INTEGER", True))),
        Table(None, "a", (Column("z", "INTEGER", True),)),
        Table("other", "a", (Column("z", "INTEGER", True),)),
        enums=(Enum(None, "zeta", ("1",)), Enum(None, "alpha", ("1",))),
    )
    findings = diff(expected, Schema(tables={(None, "b"): Table(None, "b", ())}))
    assert [(f.kind, f.table, f.object) for f in findings] == [
        (FindingKind.MISSING_ENUM, None, "alpha"),
        (FindingKind.MISSING_ENUM, None, "zeta"),
        (FindingKind.MISSING_TABLE, "a", None),
        (FindingKind.MISSING_COLUMN, "b", "x"),
        (FindingKind.MISSING_COLUMN, "b", "y"),
        (FindingKind.MISSING_TABLE, "other.a", None),
    ]


def test_findings_do_not_depend_on_insertion_order() -> None:
    actual = schema(USERS)
    reordered = Schema(
        tables={FILES.key: FILES, USERS.key: USERS}, enums={FILE_STATUS.key: FILE_STATUS}
    )
    assert diff(reordered, actual) == diff(EXPECTED, actual)


def test_unnamed_constraints_are_matched_by_definition() -> None:
    """SQLite reflects constraints declared without CONSTRAINT <name> as unnamed."""
    unnamed = replace_table(
        FILES,
        foreign_keys=(dataclasses.replace(FILES.foreign_keys[0], name=None),),
        uniques=(UniqueConstraint(None, ("user_id", "status")),),
    )
    named = replace_table(
        unnamed, uniques=(UniqueConstraint("uq_files_user_status", ("user_id", "status")),)
    )
    assert diff(schema(USERS, named), schema(USERS, unnamed)) == []
    assert diff(schema(USERS, unnamed), schema(USERS, named)) == []
    other = replace_table(unnamed, uniques=(UniqueConstraint(None, ("status",)),))
    findings = diff(schema(USERS, unnamed), schema(USERS, other))
    assert kinds(findings) == [FindingKind.EXTRA_UNIQUE, FindingKind.MISSING_UNIQUE]
    assert findings[1].object == "UNIQUE (user_id, status)"


def test_differently_named_constraints_are_not_matched_by_definition() -> None:
    renamed = replace_table(USERS, uniques=(UniqueConstraint("users_email_key", ("email",)),))
    assert kinds(diff(EXPECTED, schema(renamed, FILES))) == [
        FindingKind.MISSING_UNIQUE,
        FindingKind.EXTRA_UNIQUE,
    ]


def test_an_unexpected_invalid_index_is_reported_as_invalid() -> None:
    """A failed CREATE INDEX CONCURRENTLY leaves the name taken: a retry would skip it."""
    leftover = Index("ix_users_email", ("email",), unique=True, valid=False)
    actual = replace_table(USERS, indexes=(*USERS.indexes, leftover))
    findings = diff(EXPECTED, schema(actual, FILES))
    assert kinds(findings) == [FindingKind.INVALID_INDEX]
    assert findings[0].severity == Severity.ERROR


def test_missing_enum_values_are_one_finding_each() -> None:
    actual = schema(USERS, FILES, enums=(Enum(None, "file_status", ("uploaded",)),))
    findings = diff(EXPECTED, actual)
    assert kinds(findings) == [FindingKind.MISSING_ENUM_VALUE] * 2
    assert "'done'" in findings[0].detail and "'failed'" in findings[1].detail


def test_summarize_and_to_dict() -> None:
    findings = diff(EXPECTED, schema(replace_table(USERS, indexes=())))
    lines = summarize(findings).splitlines()
    assert len(lines) == len(findings) == 2
    assert lines[0].startswith("error") and "missing_table" in lines[0] and "files" in lines[0]
    assert "users.ix_users_name" in lines[1] and "(healable)" in lines[1]
    data = [finding.to_dict() for finding in findings]
    assert json.loads(json.dumps(data)) == data
    assert data[1] == {
        "kind": "missing_index",
        "severity": "error",
        "healable": True,
        "table": "users",
        "object": "ix_users_name",
        "detail": "expected INDEX (name)",
    }
