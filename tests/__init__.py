"""Tests for alembic-deploy."""
