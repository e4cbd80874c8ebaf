"""``heal.plan_repairs``: the order of additive repairs, from ``drift.diff`` findings.

Every repair must only need what earlier repairs created: enum types, missing enum labels,
tables, columns, indexes, unique and check constraints, and foreign keys last, so that
tables that reference each other (even in a cycle) can be re-created in any order. The SQL is
rendered offline for PostgreSQL; no database is used.
"""

from __future__ import annotations

import dataclasses

from runner.drift import Finding, FindingKind, diff
from runner.heal import HealPlan, Repair, plan_repairs, render_repairs
from runner.schema import (
    CheckConstraint,
    Column,
    Enum,
    ForeignKey,
    Index,
    PrimaryKey,
    Schema,
    Table,
    UniqueConstraint,
)

MOOD = Enum(None, "mood", ("sad", "ok", "happy"))
PLAN = Enum(None, "plan", ("free", "paid"))

USERS = Table(
    schema=None,
    name="users",
    columns=(
        Column("id", "INTEGER", False, identity="serial"),
        Column("email", "VARCHAR(255)", False),
        Column("mood", "ENUM(mood)", True),
        Column("nick", "TEXT", True),
    ),
    primary_key=PrimaryKey("users_pkey", ("id",)),
    indexes=(Index("ix_users_nick", ("nick",)),),
    uniques=(UniqueConstraint("uq_users_email", ("email",)),),
    checks=(CheckConstraint("ck_users_email", "email <> ''"),),
)
# "accounts" sorts before "users", the table it references.
ACCOUNTS = Table(
    schema=None,
    name="accounts",
    columns=(
        Column("id", "INTEGER", False),
        Column("owner_id", "INTEGER", True),
        Column("plan", "ENUM(plan)", False),
    ),
    primary_key=PrimaryKey("accounts_pkey", ("id",)),
    indexes=(Index("ix_accounts_owner_id", ("owner_id",)),),
    foreign_keys=(ForeignKey("fk_accounts_owner", ("owner_id",), None, "users", ("id",)),),
)
ZEBRAS = Table(
    schema=None,
    name="zebras",
    columns=(Column("id", "INTEGER", False), Column("user_id", "INTEGER", True)),
    primary_key=PrimaryKey("zebras_pkey", ("id",)),
    foreign_keys=(ForeignKey("fk_zebras_user", ("user_id",), None, "users", ("id",)),),
)


def schema(*tables: Table, enums: tuple[Enum, ...] = ()) -> Schema:
    return Schema(
        tables={table.key: table for table in tables}, enums={enum.key: enum for enum in enums}
    )


def plan(expected: Schema, actual: Schema, *, has_rows: bool = False) -> HealPlan:
    return plan_repairs(
        diff(expected, actual),
        expected,
        actual,
        has_rows=lambda _: has_rows,
        dialect="postgresql",
    )


def position(repairs: tuple[Repair, ...], kind: FindingKind, obj: str) -> int:
    matches = [i for i, r in enumerate(repairs) if r.kind == kind and r.object == obj]
    assert len(matches) == 1, (kind, obj, [r.describe() for r in repairs])
    return matches[0]


def kinds(repairs: tuple[Repair, ...]) -> list[str]:
    return [str(r.kind) for r in repairs]


def sql_of(repairs: tuple[Repair, ...]) -> list[str]:
    return render_repairs(repairs, "postgresql")


KIND_ORDER = [
    FindingKind.MISSING_ENUM,
    FindingKind.MISSING_ENUM_VALUE,
    FindingKind.MISSING_TABLE,
    FindingKind.MISSING_COLUMN,
    FindingKind.MISSING_INDEX,
    FindingKind.MISSING_UNIQUE,
    FindingKind.MISSING_CHECK,
    FindingKind.MISSING_FOREIGN_KEY,
]


def test_every_kind_of_repair_comes_in_dependency_order() -> None:
    expected = schema(USERS, ACCOUNTS, ZEBRAS, enums=(MOOD, PLAN))
    damaged_users = dataclasses.replace(
        USERS,
        columns=USERS.columns[:3],  # nick missing, and with it ix_users_nick
        indexes=(),
        uniques=(),
        checks=(),
    )
    actual = schema(
        damaged_users,
        dataclasses.replace(ZEBRAS, foreign_keys=()),
        enums=(Enum(None, "mood", ("sad", "happy")),),
    )
    result = plan(expected, actual)
    assert result.unhealable == ()
    # Diff order is not repair order: the findings start with the enum value, the plan
    # starts with the enum type.
    assert [f.kind for f in diff(expected, actual)][:2] == [
        FindingKind.MISSING_ENUM_VALUE,
        FindingKind.MISSING_ENUM,
    ]
    assert [r.describe() for r in result.repairs] == [
        "missing_enum plan",
        "missing_enum_value mood",
        "missing_table accounts.accounts",
        "missing_column users.nick",
        "missing_index users.ix_users_nick",
        "missing_unique users.uq_users_email",
        "missing_check users.ck_users_email",
        "missing_foreign_key zebras.fk_zebras_user",
        "missing_foreign_key accounts.fk_accounts_owner",
    ]
    ranks = [KIND_ORDER.index(FindingKind(kind)) for kind in kinds(result.repairs)]
    assert ranks == sorted(ranks)


def test_enum_type_is_created_before_the_table_whose_column_uses_it() -> None:
    expected = schema(USERS, ACCOUNTS, enums=(MOOD, PLAN))
    actual = schema(USERS, enums=(MOOD,))
    repairs = plan(expected, actual).repairs
    assert position(repairs, FindingKind.MISSING_ENUM, "plan") < position(
        repairs, FindingKind.MISSING_TABLE, "accounts"
    )
    sql = sql_of(repairs)
    assert sql[0].startswith("CREATE TYPE plan AS ENUM ('free', 'paid')")
    assert "plan plan NOT NULL" in sql[1]


def test_a_missing_enum_label_is_added_at_its_expected_position() -> None:
    expected = schema(USERS, enums=(MOOD,))
    actual = schema(USERS, enums=(Enum(None, "mood", ("sad", "happy")),))
    repairs = plan(expected, actual).repairs
    assert kinds(repairs) == ["missing_enum_value"]
    assert sql_of(repairs) == ["ALTER TYPE mood ADD VALUE 'ok' BEFORE 'happy';"]


def test_a_column_comes_before_the_index_and_unique_constraint_on_it() -> None:
    expected = schema(USERS, enums=(MOOD,))
    actual = schema(
        dataclasses.replace(
            USERS,
            columns=tuple(c for c in USERS.columns if c.name not in ("email", "nick")),
            indexes=(),
            uniques=(),
            checks=(),
        ),
        enums=(MOOD,),
    )
    repairs = plan(expected, actual).repairs
    email = position(repairs, FindingKind.MISSING_COLUMN, "email")
    nick = position(repairs, FindingKind.MISSING_COLUMN, "nick")
    index = position(repairs, FindingKind.MISSING_INDEX, "ix_users_nick")
    unique = position(repairs, FindingKind.MISSING_UNIQUE, "uq_users_email")
    check = position(repairs, FindingKind.MISSING_CHECK, "ck_users_email")
    assert max(email, nick) < index < unique < check


def test_foreign_keys_come_after_every_table_even_when_the_referrer_sorts_first() -> None:
    expected = schema(USERS, ACCOUNTS, enums=(MOOD, PLAN))
    actual = schema(enums=(MOOD, PLAN))
    repairs = plan(expected, actual).repairs
    assert kinds(repairs) == ["missing_table", "missing_table", "missing_foreign_key"]
    accounts = position(repairs, FindingKind.MISSING_TABLE, "accounts")
    users = position(repairs, FindingKind.MISSING_TABLE, "users")
    fk = position(repairs, FindingKind.MISSING_FOREIGN_KEY, "fk_accounts_owner")
    assert fk > max(accounts, users)
    sql = sql_of(repairs)
    # The referencing table is created without its foreign key, so the order of the two
    # CREATE TABLEs does not matter; the constraint is added once both exist.
    assert "REFERENCES" not in sql[accounts]
    assert "CREATE INDEX ix_accounts_owner_id ON accounts (owner_id)" in sql[accounts]
    assert sql[fk] == (
        "ALTER TABLE accounts ADD CONSTRAINT fk_accounts_owner FOREIGN KEY(owner_id) "
        "REFERENCES users (id);"
    )


def test_every_foreign_key_follows_every_table_it_refers_to() -> None:
    expected = schema(USERS, ACCOUNTS, ZEBRAS, enums=(MOOD, PLAN))
    actual = schema(enums=(MOOD, PLAN))
    repairs = plan(expected, actual).repairs
    tables = {r.object: i for i, r in enumerate(repairs) if r.kind == FindingKind.MISSING_TABLE}
    assert set(tables) == {"accounts", "users", "zebras"}
    fks = [(i, r) for i, r in enumerate(repairs) if r.kind == FindingKind.MISSING_FOREIGN_KEY]
    assert {r.object for _, r in fks} == {"fk_accounts_owner", "fk_zebras_user"}
    for i, _ in fks:
        assert i > max(tables.values())


def test_a_foreign_key_cycle_between_two_missing_tables_still_plans() -> None:
    authors = Table(
        None,
        "authors",
        (Column("id", "INTEGER", False), Column("best_book_id", "INTEGER", True)),
        primary_key=PrimaryKey("authors_pkey", ("id",)),
        foreign_keys=(
            ForeignKey("fk_authors_best_book", ("best_book_id",), None, "books", ("id",)),
        ),
    )
    books = Table(
        None,
        "books",
        (Column("id", "INTEGER", False), Column("author_id", "INTEGER", False)),
        primary_key=PrimaryKey("books_pkey", ("id",)),
        foreign_keys=(ForeignKey("fk_books_author", ("author_id",), None, "authors", ("id",)),),
    )
    expected = schema(authors, books)
    findings = diff(expected, schema())
    assert [(f.kind, f.table) for f in findings] == [
        (FindingKind.MISSING_TABLE, "authors"),
        (FindingKind.MISSING_TABLE, "books"),
    ]
    result = plan_repairs(
        findings, expected, schema(), has_rows=lambda _: False, dialect="postgresql"
    )
    assert result.unhealable == ()
    assert [r.describe() for r in result.repairs] == [
        "missing_table authors.authors",
        "missing_table books.books",
        "missing_foreign_key authors.fk_authors_best_book",
        "missing_foreign_key books.fk_books_author",
    ]
    sql = sql_of(result.repairs)
    assert sql[0].startswith("CREATE TABLE authors") and "REFERENCES" not in sql[0]
    assert sql[1].startswith("CREATE TABLE books") and "REFERENCES" not in sql[1]
    assert "REFERENCES books (id)" in sql[2]
    assert "REFERENCES authors (id)" in sql[3]


def test_a_missing_foreign_key_on_an_existing_table_waits_for_a_missing_referred_table() -> None:
    # zebras exists without its FK; users (which it refers to) is missing entirely.
    expected = schema(USERS, ZEBRAS, enums=(MOOD,))
    actual = schema(dataclasses.replace(ZEBRAS, foreign_keys=()), enums=(MOOD,))
    repairs = plan(expected, actual).repairs
    assert kinds(repairs) == ["missing_table", "missing_foreign_key"]
    assert position(repairs, FindingKind.MISSING_TABLE, "users") < position(
        repairs, FindingKind.MISSING_FOREIGN_KEY, "fk_zebras_user"
    )


def test_reported_only_findings_are_not_repaired_and_not_unhealable() -> None:
    expected = schema(USERS, enums=(MOOD,))
    extra = Table(None, "audit", (Column("id", "INTEGER", False),))
    changed = dataclasses.replace(
        USERS,
        columns=tuple(
            dataclasses.replace(c, type="TEXT") if c.name == "email" else c for c in USERS.columns
        ),
    )
    findings = diff(expected, schema(changed, extra, enums=(MOOD,)))
    assert {f.kind for f in findings} == {FindingKind.CHANGED_TYPE, FindingKind.EXTRA_TABLE}
    result = plan_repairs(
        findings, expected, schema(changed, extra), has_rows=lambda _: True, dialect="postgresql"
    )
    assert result.repairs == ()
    assert result.unhealable == ()


def test_a_missing_primary_key_is_unhealable() -> None:
    expected = schema(USERS, enums=(MOOD,))
    actual = schema(dataclasses.replace(USERS, primary_key=None), enums=(MOOD,))
    result = plan(expected, actual)
    assert result.repairs == ()
    assert [f.kind for f in result.unhealable] == [FindingKind.MISSING_PRIMARY_KEY]


def test_a_not_null_column_without_default_is_unhealable_only_when_the_table_has_rows() -> None:
    expected = schema(USERS, enums=(MOOD,))
    without_email = dataclasses.replace(
        USERS, columns=tuple(c for c in USERS.columns if c.name != "email"), uniques=()
    )
    actual = schema(without_email, enums=(MOOD,))
    empty = plan(expected, actual, has_rows=False)
    assert "missing_column users.email" in [r.describe() for r in empty.repairs]
    assert empty.unhealable == ()
    full = plan(expected, actual, has_rows=True)
    assert "missing_column users.email" not in [r.describe() for r in full.repairs]
    assert [(f.kind, f.object) for f in full.unhealable] == [(FindingKind.MISSING_COLUMN, "email")]


def test_findings_in_any_order_give_the_same_plan() -> None:
    expected = schema(USERS, ACCOUNTS, ZEBRAS, enums=(MOOD, PLAN))
    actual = schema(
        dataclasses.replace(USERS, columns=USERS.columns[:3], indexes=(), checks=()),
        enums=(Enum(None, "mood", ("sad",)),),
    )
    findings: list[Finding] = diff(expected, actual)
    forward = plan_repairs(
        findings, expected, actual, has_rows=lambda _: False, dialect="postgresql"
    )
    backward = plan_repairs(
        findings[::-1], expected, actual, has_rows=lambda _: False, dialect="postgresql"
    )
    assert [r.describe() for r in forward.repairs] == [r.describe() for r in backward.repairs]
    assert len(forward.repairs) >= 8
