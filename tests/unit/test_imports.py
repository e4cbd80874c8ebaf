"""The runner's processes leave Pygments unloaded when they import Alembic (runner.imports).

Each case runs in a fresh interpreter: this one has imported Mako already.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pygments") is None, reason="Pygments is not installed here"
)

_ALEMBIC = "import alembic.command, alembic.script, alembic.runtime.environment\n"


def _run(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_alembic_alone_loads_pygments_through_mako() -> None:
    """What the hook is for: without it, importing Alembic loads Pygments' lexers."""
    assert _run(f"import sys\n{_ALEMBIC}print('pygments' in sys.modules)") == ["True"]


def test_with_the_hook_pygments_stays_unloaded_and_can_still_be_imported() -> None:
    """Mako takes its own fallback; afterwards the plugin (and Pygments) import as usual,
    and the finder has left the import system."""
    found = _run(
        "import sys\n"
        "from runner.imports import _WithoutHighlighting, skip_template_highlighting\n"
        "skip_template_highlighting()\n"
        f"{_ALEMBIC}"
        "import mako.exceptions\n"
        "print('pygments' in sys.modules, mako.exceptions.pygments_html_formatter is None)\n"
        "print(any(isinstance(f, _WithoutHighlighting) for f in sys.meta_path))\n"
        "import mako.ext.pygmentplugin\n"
        "print('pygments' in sys.modules)\n"
    )
    assert found == ["False", "True", "False", "True"]


def test_the_hook_does_nothing_once_mako_is_loaded() -> None:
    """Imported before the hook, Mako keeps its highlighting, and no finder is installed."""
    found = _run(
        "import sys\n"
        "import mako.exceptions\n"
        "from runner.imports import _WithoutHighlighting, skip_template_highlighting\n"
        "skip_template_highlighting()\n"
        "print(any(isinstance(f, _WithoutHighlighting) for f in sys.meta_path))\n"
        "print(mako.exceptions.pygments_html_formatter is not None)\n"
    )
    assert found == ["False", "True"]


def test_collection_is_paused_for_the_imports_and_resumed_with_them_set_aside() -> None:
    """pause, imports, resume: collecting again, what was imported frozen out of its sight."""
    found = _run(
        "import gc\n"
        "from runner.imports import pause_collection, resume_collection\n"
        "pause_collection()\n"
        "print(gc.isenabled())\n"
        "import sqlalchemy\n"
        "resume_collection()\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10000)\n"
    )
    assert found == ["False", "True", "True"]


def test_a_collector_the_caller_paused_stays_paused() -> None:
    """Resuming only undoes this module's own pause (a test or an embedding program may run
    without the collector on purpose)."""
    found = _run(
        "import gc\n"
        "from runner.imports import pause_collection, resume_collection\n"
        "gc.disable()\n"
        "pause_collection()\n"
        "resume_collection()\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
    )
    assert found == ["False", "0"]


def test_the_command_line_runs_as_a_module_and_as_its_console_script() -> None:
    """``python -m runner`` and ``alembic-deploy`` both go through runner.__main__.main."""
    found = _run("import runner.__main__ as m\nprint(callable(m.main))\n")
    assert found == ["True"]
    module = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and module.stdout.strip(), module
