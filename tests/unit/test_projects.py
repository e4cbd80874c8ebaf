"""The sample projects agree with tests/projects/__init__.py and with each other."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.projects import LABELED_HEADS, LINEAR_REVISIONS, PROJECTS, SampleProject


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _script(project: SampleProject) -> ScriptDirectory:
    return ScriptDirectory.from_config(Config(project.path / "alembic.ini"))


@pytest.mark.parametrize("copy", ["linear_stock", "linear_envurl"])
def test_linear_copies_are_byte_identical(copy: str) -> None:
    original = PROJECTS["linear"].path
    duplicate = PROJECTS[copy].path
    for relative in ("migrations/versions", "models.py", "migrations/script.py.mako"):
        left, right = original / relative, duplicate / relative
        if left.is_dir():
            assert _files(left) == _files(right), relative
        else:
            assert left.read_bytes() == right.read_bytes(), relative


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_revisions_and_heads_match_the_constants(name: str) -> None:
    project = PROJECTS[name]
    script = _script(project)
    walked = [revision.revision for revision in script.walk_revisions("base", "heads")]
    assert sorted(walked) == sorted(project.revisions)
    assert set(script.get_heads()) == project.heads
    # The listed order is an upgrade order: every parent comes before its child.
    for position, revision_id in enumerate(project.revisions):
        revision = script.get_revision(revision_id)
        assert revision is not None
        assert set(revision._all_down_revisions) <= set(project.revisions[:position])


def test_linear_is_a_single_line() -> None:
    script = _script(PROJECTS["linear"])
    walked = [revision.revision for revision in script.walk_revisions("base", "heads")]
    assert walked == list(reversed(LINEAR_REVISIONS))


def test_labeled_heads_carry_their_labels() -> None:
    script = _script(PROJECTS["labeled"])
    for label, head in LABELED_HEADS.items():
        assert script.get_revisions(f"{label}@head") == (script.get_revision(head),)
        assert script.get_revision(head).branch_labels == {label}


def test_env_py_shapes() -> None:
    def env(name: str) -> str:
        return (PROJECTS[name].path / "migrations" / "env.py").read_text()

    assert 'config.attributes.get("connection")' in env("linear")
    assert "attributes" not in env("linear_stock")
    assert "engine_from_config" in env("linear_stock")
    assert 'os.environ["DATABASE_URL"]' in env("linear_envurl")
    assert "get_main_option" not in env("linear_envurl")


def test_example_app_runs_the_linear_migrations() -> None:
    """The example app ships its own copy (the image needs it); it must not drift apart."""
    original = PROJECTS["linear"].path
    app = Path(__file__).resolve().parents[2] / "examples" / "app"
    assert _files(original / "migrations" / "versions") == _files(app / "migrations" / "versions")
    assert (original / "models.py").read_bytes() == (app / "models.py").read_bytes()
