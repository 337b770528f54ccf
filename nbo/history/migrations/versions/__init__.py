"""Alembic revisions of the interaction history store, oldest first."""
