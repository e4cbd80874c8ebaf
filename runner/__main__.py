"""``python -m runner`` and the ``alembic-deploy`` console script: :func:`runner.cli.entry`,
with the cyclic garbage collector paused while the command line imports its libraries
(:func:`runner.imports.pause_collection`; ``cli`` resumes it once they are in) and Alembic's
Mako set to load without Pygments (:func:`runner.imports.skip_template_highlighting`), as
every worker starts (``runner.worker.main``)."""

from typing import NoReturn


def main() -> NoReturn:
    from runner.imports import pause_collection, skip_template_highlighting

    pause_collection()
    skip_template_highlighting()
    from runner.cli import entry

    entry()


if __name__ == "__main__":
    main()
