"""Import hooks of the runner's own processes: a library part nobody here uses stays unloaded.

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
