"""``python -m runner`` and the ``alembic-deploy`` console script: :func:`runner.cli.entry`,
with the cyclic garbage collector paused while the command line imports its libraries
(:func:`runner.imports.pause_collection`; ``cli`` resumes it once they are in)."""

from typing import NoReturn


def main() -> NoReturn:
    from runner.imports import pause_collection

    pause_collection()
    from runner.cli import entry

    entry()


if __name__ == "__main__":
    main()
