"""alembic-deploy: make the database schema true, then start the app."""

__version__ = "0.1.0"
