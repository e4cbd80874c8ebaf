"""Drift between the schema a revision expects and the schema a database has.

:func:`diff` is pure set arithmetic over :mod:`runner.schema` values, walked in sorted order
like Alembic's autogenerate compare: enums first, then tables by ``(schema, name)``, and in a
table its columns, primary key, indexes, unique, check and foreign key constraints, each by
name. It returns :class:`Finding` values and executes nothing; healing and reporting act on
them. Objects are matched by name; an unnamed one (SQLite reflects some constraints without
names) is matched by its definition. A missing table is one ``missing_table`` finding, never
one per column or index. Raises nothing.

Not reported: column order, a same-named index or constraint whose definition changed, enum
label order, deferrability, index sort order, method and INCLUDE columns, collations,
generation expressions, comments. Heal still re-creates a missing object with all of them,
from the server's own definition recorded in the expected schema.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from runner.schema import (
    CheckConstraint,
    Column,
    Enum,
    Exclusion,
    ForeignKey,
    Index,
    Schema,
    Table,
    TableKey,
    UniqueConstraint,
    qualified_name,
)
from runner.sqltext import comparable_default


class FindingKind(StrEnum):
    MISSING_TABLE = "missing_table"
    MISSING_COLUMN = "missing_column"
    MISSING_INDEX = "missing_index"
    MISSING_UNIQUE = "missing_unique"
    MISSING_CHECK = "missing_check"
    MISSING_FOREIGN_KEY = "missing_foreign_key"
    MISSING_EXCLUSION = "missing_exclusion"
    MISSING_PRIMARY_KEY = "missing_primary_key"
    MISSING_ENUM = "missing_enum"
    MISSING_ENUM_VALUE = "missing_enum_value"
    EXTRA_TABLE = "extra_table"
    EXTRA_COLUMN = "extra_column"
    EXTRA_INDEX = "extra_index"
    EXTRA_UNIQUE = "extra_unique"
    EXTRA_CHECK = "extra_check"
    EXTRA_FOREIGN_KEY = "extra_foreign_key"
    EXTRA_EXCLUSION = "extra_exclusion"
    EXTRA_ENUM = "extra_enum"
    EXTRA_ENUM_VALUE = "extra_enum_value"
    CHANGED_TYPE = "changed_type"
    CHANGED_NULLABLE = "changed_nullable"
    CHANGED_DEFAULT = "changed_default"
    CHANGED_INDEX = "changed_index"
    CHANGED_CONSTRAINT = "changed_constraint"
    INVALID_INDEX = "invalid_index"
    UNVALIDATED_CONSTRAINT = "unvalidated_constraint"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


_WARNINGS = frozenset(
    {
        FindingKind.CHANGED_NULLABLE,
        FindingKind.CHANGED_DEFAULT,
        FindingKind.CHANGED_INDEX,
        FindingKind.CHANGED_CONSTRAINT,
        FindingKind.UNVALIDATED_CONSTRAINT,
    }
)
# What the heal step may create. A missing NOT NULL column without a server default is
# included: whether the table has rows is for heal to find out.
_HEALABLE = frozenset(
    {
        FindingKind.MISSING_TABLE,
        FindingKind.MISSING_COLUMN,
        FindingKind.MISSING_INDEX,
        FindingKind.MISSING_UNIQUE,
        FindingKind.MISSING_CHECK,
        FindingKind.MISSING_FOREIGN_KEY,
        FindingKind.MISSING_EXCLUSION,
        FindingKind.MISSING_ENUM,
        FindingKind.MISSING_ENUM_VALUE,
    }
)


def severity_of(kind: FindingKind) -> Severity:
    """Error for missing objects, changed types and invalid indexes; warning otherwise."""
    if kind.startswith("extra_") or kind in _WARNINGS:
        return Severity.WARNING
    return Severity.ERROR


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference. ``table`` is the qualified table name (None for enums); ``object``
    the column, index, constraint or enum name (for an unnamed constraint, its definition).
    ``severity`` and ``healable`` follow from ``kind``."""

    kind: FindingKind
    table: str | None
    object: str | None
    detail: str
    severity: Severity = field(init=False)
    healable: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FindingKind(self.kind))
        object.__setattr__(self, "severity", severity_of(self.kind))
        object.__setattr__(self, "healable", self.kind in _HEALABLE)

    @property
    def target(self) -> str:
        """``table.object``, or whichever of the two there is."""
        return ".".join(part for part in (self.table, self.object) if part) or "-"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "severity": str(self.severity),
            "healable": self.healable,
            "table": self.table,
            "object": self.object,
            "detail": self.detail,
        }


def diff(expected: Schema, actual: Schema) -> list[Finding]:
    """What ``actual`` lacks, has in excess, or has differently from ``expected``.

    Findings come enums first, then tables in ``(schema, name)`` order; deterministic.
    """
    findings = _diff_enums(expected.enums, actual.enums)
    for key in _sorted_keys(expected.tables.keys() | actual.tables.keys()):
        wanted, found = expected.tables.get(key), actual.tables.get(key)
        name = qualified_name(*key)
        if found is None:
            assert wanted is not None
            findings.append(
                Finding(
                    FindingKind.MISSING_TABLE, name, None, f"expected {_describe_table(wanted)}"
                )
            )
        elif wanted is None:
            findings.append(
                Finding(FindingKind.EXTRA_TABLE, name, None, f"unexpected {_describe_table(found)}")
            )
        else:
            findings.extend(_diff_table(wanted, found))
    return findings


def summarize(findings: Sequence[Finding]) -> str:
    """One line per finding, for logs and the CLI; ``no drift`` when there is none."""
    if not findings:
        return "no drift"
    return "\n".join(
        f"{finding.severity:<7} {finding.kind:<22} {finding.target}"
        f"{' (healable)' if finding.healable else ''}: {finding.detail}"
        for finding in findings
    )


def _sorted_keys(keys: Iterable[TableKey]) -> list[TableKey]:
    return sorted(keys, key=lambda key: (key[0] is not None, key[0] or "", key[1]))


def _diff_enums(
    expected: Mapping[TableKey, Enum], actual: Mapping[TableKey, Enum]
) -> list[Finding]:
    findings: list[Finding] = []
    for key in _sorted_keys(expected.keys() | actual.keys()):
        wanted, found = expected.get(key), actual.get(key)
        name = qualified_name(*key)
        if found is None:
            assert wanted is not None
            findings.append(
                Finding(FindingKind.MISSING_ENUM, None, name, f"expected ENUM {_labels(wanted)}")
            )
        elif wanted is None:
            findings.append(
                Finding(FindingKind.EXTRA_ENUM, None, name, f"unexpected ENUM {_labels(found)}")
            )
        else:
            compared = f"expected {_labels(wanted)}, found {_labels(found)}"
            findings.extend(
                Finding(
                    FindingKind.MISSING_ENUM_VALUE, None, name, f"{value!r} missing: {compared}"
                )
                for value in wanted.values
                if value not in found.values
            )
            findings.extend(
                Finding(
                    FindingKind.EXTRA_ENUM_VALUE, None, name, f"{value!r} unexpected: {compared}"
                )
                for value in found.values
                if value not in wanted.values
            )
    return findings


def _labels(enum: Enum) -> str:
    return "(" + ", ".join(repr(value) for value in enum.values) + ")"


def _diff_table(expected: Table, actual: Table) -> list[Finding]:
    table = expected.qualified_name
    findings = _diff_columns(table, expected, actual)
    findings.extend(_diff_primary_key(table, expected, actual))
    findings.extend(_diff_indexes(table, expected.indexes, actual.indexes))
    for matcher in (_UNIQUES, _CHECKS, _FOREIGN_KEYS, _EXCLUSIONS):
        findings.extend(matcher.diff(table, expected, actual))
    return findings


def _diff_columns(table: str, expected: Table, actual: Table) -> list[Finding]:
    findings: list[Finding] = []
    wanted = {column.name: column for column in expected.columns}
    found = {column.name: column for column in actual.columns}
    for name in sorted(wanted.keys() | found.keys()):
        want, have = wanted.get(name), found.get(name)
        if have is None:
            assert want is not None
            detail = f"expected {_describe_column(want)}"
            findings.append(Finding(FindingKind.MISSING_COLUMN, table, name, detail))
        elif want is None:
            detail = f"unexpected {_describe_column(have)}"
            findings.append(Finding(FindingKind.EXTRA_COLUMN, table, name, detail))
        else:
            findings.extend(_diff_column(table, want, have))
    return findings


def _diff_column(table: str, want: Column, have: Column) -> list[Finding]:
    findings: list[Finding] = []
    if want.type != have.type:
        detail = f"expected {want.type}, found {have.type}"
        findings.append(Finding(FindingKind.CHANGED_TYPE, table, want.name, detail))
    if want.nullable != have.nullable:
        detail = f"expected {_nullability(want)}, found {_nullability(have)}"
        findings.append(Finding(FindingKind.CHANGED_NULLABLE, table, want.name, detail))
    if (comparable_default(want.default), want.identity) != (
        comparable_default(have.default),
        have.identity,
    ):
        detail = f"expected {_default_text(want)}, found {_default_text(have)}"
        findings.append(Finding(FindingKind.CHANGED_DEFAULT, table, want.name, detail))
    return findings


def _diff_primary_key(table: str, expected: Table, actual: Table) -> list[Finding]:
    # Compared by columns: the name is the database's choice more often than the author's.
    want, have = expected.primary_key, actual.primary_key
    if want is None or (have is not None and have.columns == want.columns):
        return []
    found = "none" if have is None else f"PRIMARY KEY ({', '.join(have.columns)})"
    detail = f"expected PRIMARY KEY ({', '.join(want.columns)}), found {found}"
    return [Finding(FindingKind.MISSING_PRIMARY_KEY, table, want.name, detail)]


_T = TypeVar("_T", Index, UniqueConstraint, CheckConstraint, ForeignKey, Exclusion)


def _match(
    expected: Sequence[_T], actual: Sequence[_T], definition: Callable[[_T], Hashable]
) -> tuple[list[tuple[_T, _T]], list[_T], list[_T]]:
    """Pair objects by name, then unnamed ones by definition: (pairs, missing, extra)."""
    by_name = {item.name: item for item in actual if item.name is not None}
    pairs: list[tuple[_T, _T]] = []
    unmatched: list[_T] = []
    for want in expected:
        have = by_name.pop(want.name, None) if want.name is not None else None
        if have is None:
            unmatched.append(want)
        else:
            pairs.append((want, have))
    paired = {id(have) for _, have in pairs}
    leftover = [item for item in actual if id(item) not in paired]
    missing: list[_T] = []
    for want in unmatched:
        have = next(
            (
                candidate
                for candidate in leftover
                if (want.name is None or candidate.name is None)
                and definition(candidate) == definition(want)
            ),
            None,
        )
        if have is None:
            missing.append(want)
        else:
            pairs.append((want, have))
            leftover.remove(have)
    return pairs, missing, leftover


def _label(item: Index | UniqueConstraint | CheckConstraint | ForeignKey | Exclusion) -> str:
    return item.name if item.name is not None else _describe(item)


def _by_label(findings: list[Finding]) -> list[Finding]:
    # Stable: the kinds found for one object keep their order.
    return sorted(findings, key=lambda finding: finding.object or "")


def _diff_indexes(table: str, expected: Sequence[Index], actual: Sequence[Index]) -> list[Finding]:
    pairs, missing, extra = _match(
        expected, actual, lambda index: (index.columns, index.unique, index.predicate)
    )
    findings = [
        Finding(FindingKind.MISSING_INDEX, table, _label(index), f"expected {_describe(index)}")
        for index in missing
    ]
    for want, have in pairs:
        if _describe(want) != _describe(have):
            detail = f"expected {_describe(want)}, found {_describe(have)}"
            findings.append(Finding(FindingKind.CHANGED_INDEX, table, _label(have), detail))
        if want.valid and not have.valid:
            detail = f"{_describe(have)} is INVALID (a failed CREATE INDEX CONCURRENTLY?)"
            findings.append(Finding(FindingKind.INVALID_INDEX, table, _label(have), detail))
    for index in extra:
        # An invalid index is reported as such even when unexpected: a retried
        # CREATE INDEX CONCURRENTLY would otherwise find the name taken and skip it.
        if index.valid:
            kind, detail = FindingKind.EXTRA_INDEX, f"unexpected {_describe(index)}"
        else:
            kind = FindingKind.INVALID_INDEX
            detail = (
                f"unexpected {_describe(index)} is INVALID (a failed CREATE INDEX CONCURRENTLY?)"
            )
        findings.append(Finding(kind, table, _label(index), detail))
    return _by_label(findings)


@dataclass(frozen=True, slots=True)
class _ConstraintDiff:
    """How one kind of table constraint is read from a table, matched and reported."""

    collection: Callable[[Table], Sequence[Any]]
    definition: Callable[[Any], Hashable]
    missing: FindingKind
    extra: FindingKind

    def diff(self, table: str, expected: Table, actual: Table) -> list[Finding]:
        pairs, missing, extra = _match(
            self.collection(expected), self.collection(actual), self.definition
        )
        findings = [
            Finding(self.missing, table, _label(item), f"expected {_describe(item)}")
            for item in missing
        ]
        # Same name, other definition (e.g. ON DELETE CASCADE lost, CHECK rewritten).
        findings.extend(
            Finding(
                FindingKind.CHANGED_CONSTRAINT,
                table,
                _label(have),
                f"expected {_describe(want)}, found {_describe(have)}",
            )
            for want, have in pairs
            if _describe(want) != _describe(have)
        )
        findings.extend(
            Finding(
                FindingKind.UNVALIDATED_CONSTRAINT,
                table,
                _label(have),
                f"{_describe(have)} was added NOT VALID and never validated",
            )
            for want, have in pairs
            if getattr(want, "valid", True) and not getattr(have, "valid", True)
        )
        findings.extend(
            Finding(self.extra, table, _label(item), f"unexpected {_describe(item)}")
            for item in extra
        )
        return _by_label(findings)


_UNIQUES = _ConstraintDiff(
    lambda table: table.uniques,
    lambda unique: unique.columns,
    FindingKind.MISSING_UNIQUE,
    FindingKind.EXTRA_UNIQUE,
)
_CHECKS = _ConstraintDiff(
    lambda table: table.checks,
    lambda check: check.sqltext,
    FindingKind.MISSING_CHECK,
    FindingKind.EXTRA_CHECK,
)
_FOREIGN_KEYS = _ConstraintDiff(
    lambda table: table.foreign_keys,
    lambda fk: (fk.columns, fk.referred_schema, fk.referred_table, fk.referred_columns),
    FindingKind.MISSING_FOREIGN_KEY,
    FindingKind.EXTRA_FOREIGN_KEY,
)
# Exclusion constraints (PostgreSQL) are matched by name only: metadata cannot spell the
# server's definition, so a changed one is not reported.
_EXCLUSIONS = _ConstraintDiff(
    lambda table: table.exclusions,
    lambda exclusion: exclusion.name,
    FindingKind.MISSING_EXCLUSION,
    FindingKind.EXTRA_EXCLUSION,
)


# Human text ---------------------------------------------------------------------------------


def _describe_table(table: Table) -> str:
    return f"table {table.qualified_name} ({', '.join(c.name for c in table.columns)})"


def _nullability(column: Column) -> str:
    return "NULL" if column.nullable else "NOT NULL"


def _default_text(column: Column) -> str:
    if column.identity is not None:
        return "SERIAL" if column.identity == "serial" else f"IDENTITY {column.identity.upper()}"
    return "no default" if column.default is None else f"DEFAULT {column.default}"


def _describe_column(column: Column) -> str:
    parts = [column.type, _nullability(column)]
    if column.default is not None or column.identity is not None:
        parts.append(_default_text(column))
    return " ".join(parts)


def _describe(item: Index | UniqueConstraint | CheckConstraint | ForeignKey | Exclusion) -> str:
    match item:
        case Index():
            text = f"{'UNIQUE ' if item.unique else ''}INDEX ({', '.join(item.columns)})"
            if item.predicate is not None:
                text += f" WHERE {item.predicate}"
        case UniqueConstraint():
            text = f"UNIQUE ({', '.join(item.columns)})"
        case CheckConstraint():
            text = f"CHECK ({item.sqltext})"
        case ForeignKey():
            referred = qualified_name(item.referred_schema, item.referred_table)
            text = (
                f"FOREIGN KEY ({', '.join(item.columns)}) REFERENCES {referred}"
                f" ({', '.join(item.referred_columns)})"
            )
            if item.ondelete:
                text += f" ON DELETE {item.ondelete}"
            if item.onupdate:
                text += f" ON UPDATE {item.onupdate}"
        case Exclusion():
            text = "EXCLUDE constraint"
    return text
