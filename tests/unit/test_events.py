"""Events are a closed set: what the code logs, ``runner.events.EVENTS`` and the README agree."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.events import EVENTS, markdown_table

ROOT = Path(__file__).parents[2]
SOURCES = sorted((ROOT / "runner").glob("*.py"))
README = (ROOT / "README.md").read_text()

LEVELS = {"info", "warning", "error", "debug", "exception", "critical"}

#: Event names built by f-strings, by their template (``ast.unparse`` of the first argument):
#: ``supervise._Run`` logs the revision records of the ``upgrade`` and ``shadow`` steps.
DYNAMIC: dict[str, tuple[str, ...]] = {
    "f'{self.s.step}.revision_started'": ("upgrade.revision_started", "shadow.revision_started"),
    "f'{self.s.step}.revision_applied'": ("upgrade.revision_applied", "shadow.revision_applied"),
}

NAME = re.compile(r"^[a-z]+(_[a-z]+)*\.[a-z]+(_[a-z]+)*$")


@dataclass(frozen=True)
class Use:
    """One place that names an event: a log call's first argument or an ``event`` attribute."""

    where: str
    node: ast.expr

    @property
    def literal(self) -> str | None:
        if isinstance(self.node, ast.Constant) and isinstance(self.node.value, str):
            return self.node.value
        return None


def _is_deferred_log_call(call: ast.Call) -> bool:
    func, args = call.func, call.args
    return (
        isinstance(func, ast.Name)
        and func.id == "partial"
        and len(args) >= 2
        and isinstance(args[0], ast.Attribute)
        and args[0].attr in LEVELS
        and isinstance(args[0].value, ast.Name)
        and args[0].value.id == "log"
    )


def _is_log_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in LEVELS:
        return isinstance(func.value, ast.Name) and func.value.id == "log"
    if isinstance(func, ast.Name) and func.id == "emit":  # ``emit = log.info if ... else ...``
        return True
    # ``getattr(log, level)(...)``
    return (
        isinstance(func, ast.Call)
        and isinstance(func.func, ast.Name)
        and func.func.id == "getattr"
        and bool(func.args)
        and isinstance(func.args[0], ast.Name)
        and func.args[0].id == "log"
    )


def _uses() -> Iterator[Use]:
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and node.args and _is_log_call(node):
                yield Use(where, node.args[0])
            elif isinstance(node, ast.Call) and _is_deferred_log_call(node):
                yield Use(where, node.args[1])  # ``partial(log.error, EVENT, ...)``
            elif isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if isinstance(statement, ast.Assign):
                        targets, value = statement.targets, statement.value
                    elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                        targets, value = [statement.target], statement.value
                    else:
                        continue
                    if any(isinstance(t, ast.Name) and t.id == "event" for t in targets):
                        yield Use(f"{path.relative_to(ROOT)}:{statement.lineno}", value)


USES = list(_uses())


def _is_error_event_lookup(node: ast.expr) -> bool:
    """``log.error(exc.event, ...)``: the names are the classes' ``event`` attributes."""
    return isinstance(node, ast.Attribute) and node.attr == "event"


def used_names() -> set[str]:
    names = {use.literal for use in USES if use.literal is not None}
    for use in USES:
        if isinstance(use.node, ast.JoinedStr):
            names.update(DYNAMIC.get(ast.unparse(use.node), ()))
    return names


def test_the_scan_finds_the_runner_events() -> None:
    """Guards the scanner itself: a refactor of it must still see every kind of use."""
    literals = {use.literal for use in USES}
    assert {"deploy.summary", "worker.log", "lock.lost", "deploy.failed"} <= literals
    assert {ast.unparse(use.node) for use in USES} >= set(DYNAMIC)


@pytest.mark.parametrize(
    "use", [u for u in USES if u.literal is not None], ids=lambda u: f"{u.literal}@{u.where}"
)
def test_every_logged_event_is_in_the_closed_set(use: Use) -> None:
    assert use.literal in EVENTS, f"{use.where}: add {use.literal!r} to runner/events.py"


def test_every_computed_event_name_is_known() -> None:
    unknown = [
        f"{use.where}: {ast.unparse(use.node)}"
        for use in USES
        if use.literal is None
        and not _is_error_event_lookup(use.node)
        and ast.unparse(use.node) not in DYNAMIC
    ]
    assert not unknown, "event names the test cannot resolve (list them in DYNAMIC):\n" + "\n".join(
        unknown
    )


@pytest.mark.parametrize("template", sorted(DYNAMIC))
def test_every_f_string_expansion_is_in_the_closed_set(template: str) -> None:
    missing = [name for name in DYNAMIC[template] if name not in EVENTS]
    assert not missing, f"{template}: add {missing} to runner/events.py"


def test_no_stale_event_names() -> None:
    stale = sorted(set(EVENTS) - used_names())
    assert not stale, f"runner/events.py lists events no code logs: {stale}"


@pytest.mark.parametrize("name", list(EVENTS))
def test_event_names_and_descriptions_are_well_formed(name: str) -> None:
    assert NAME.match(name), f"{name!r} is not step.past_tense"
    meaning = EVENTS[name]
    assert meaning.strip() and "\n" not in meaning and "|" not in meaning


def _readme_section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


@pytest.mark.parametrize("name", list(EVENTS))
def test_every_event_is_in_the_readme(name: str) -> None:
    assert f"| `{name}` | {EVENTS[name]} |" in _readme_section("Events")


def test_the_readme_events_table_is_generated_from_events() -> None:
    assert markdown_table() in _readme_section("Events"), (
        "regenerate the README table: python -c "
        "'from runner.events import markdown_table; print(markdown_table())'"
    )


def test_every_headline_is_a_known_info_event() -> None:
    from runner.events import EVENTS, HEADLINES

    assert set(EVENTS) >= HEADLINES
