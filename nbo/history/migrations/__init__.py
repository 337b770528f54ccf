"""Alembic migrations of the interaction history store (run with ``nbo.history.migrate``)."""
