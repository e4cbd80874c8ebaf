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
