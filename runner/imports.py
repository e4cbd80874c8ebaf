"""How the runner's own processes import their libraries: with the cyclic garbage collector
paused, and without a library part nobody here uses.

A process that starts imports its libraries (SQLAlchemy, Alembic, psycopg2, structlog: some
300,000 objects) before it does anything: none of that is garbage, yet the cyclic collector
runs hundreds of times over it meanwhile, about a tenth of the import time.
:func:`pause_collection` pauses it while the imports run; :func:`resume_collection` moves
what they made out of the collector's sight for good (``gc.freeze``: module-level objects
live as long as the process) and resumes it, before any of the runner's work or the user's
code runs. The command line pauses it first thing (``runner.__main__``), every worker too.

Alembic imports Mako (for the templates of ``alembic revision``), and ``mako.exceptions``, when
it is first imported, loads Mako's Pygments plugin whenever Pygments is installed, for
syntax-highlighted HTML error pages. Pygments is in many production images (FastAPI's CLI,
Typer and Rich bring it) and in every environment with pytest. The plugin imports about a
hundred lexer modules, 30-50 ms of every interpreter that imports Alembic: the runner's parent
on its full path, and every worker (a fresh deploy waits for both).

:func:`skip_template_highlighting` has Mako's exceptions module load as if Pygments were not
installed: Mako then uses the fallback it ships for that case, for its HTML error pages only.
Nothing of Alembic's upgrade path renders one. Only that one import, only while Mako sets
itself up, is refused: env.py, the app and the revisions import Pygments (and the plugin) as
usual. Raises nothing.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType

#: The module that Mako's exceptions module imports Pygments through.
_PLUGIN = "mako.ext.pygmentplugin"
_EXCEPTIONS = "mako.exceptions"


class _WithoutHighlighting:
    """A meta path finder (imports nothing until it acts: the no-op start pays nothing):
    finds ``mako.exceptions`` as the other finders would, and runs it with the plugin
    unavailable (``None`` in ``sys.modules``: its import raises ``ImportError``)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname != _EXCEPTIONS:
            return None
        import importlib.util

        sys.meta_path.remove(self)  # once, and the real finders locate the module
        spec = importlib.util.find_spec(fullname)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            refused = _PLUGIN not in sys.modules
            if refused:
                sys.modules[_PLUGIN] = None  # type: ignore[assignment]
            try:
                run(module)
            finally:
                if refused and _PLUGIN in sys.modules and sys.modules[_PLUGIN] is None:
                    del sys.modules[_PLUGIN]

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def skip_template_highlighting() -> None:
    """From now on, the first import of ``mako.exceptions`` leaves Pygments unloaded."""
    if _EXCEPTIONS in sys.modules:
        return
    if not any(isinstance(finder, _WithoutHighlighting) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WithoutHighlighting())


#: Whether :func:`pause_collection` paused the collector (a caller may have its own reasons
#: to run without it: it is then left as it was).
_paused = False


def pause_collection() -> None:
    """Pause the cyclic garbage collector while the process imports its libraries."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collection() -> None:
    """Resume what :func:`pause_collection` paused, everything alive now set aside for good."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()
