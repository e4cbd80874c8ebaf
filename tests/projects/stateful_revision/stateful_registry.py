"""Module-level state a revision consumes: the second upgrade() in one interpreter fails."""

PENDING = {"gauges": "gauges"}
