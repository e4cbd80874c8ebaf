"""The README documents every option, environment variable, command and exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.cli import build_parser
from runner.config import OPTIONS, Command
from runner.errors import ExitCode

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.flag)
def test_every_option_and_its_environment_twin_is_documented(option: object) -> None:
    assert f"`{option.flag}`" in README  # type: ignore[attr-defined]
    assert f"`{option.env}`" in README  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", list(Command))
def test_every_command_is_documented_and_has_help(command: Command) -> None:
    assert f"`{command.value}" in README
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command.value, "--help"])
    assert exited.value.code == 0


@pytest.mark.parametrize("code", list(ExitCode))
def test_every_exit_code_is_documented(code: ExitCode) -> None:
    assert f"| {int(code)} |" in README
