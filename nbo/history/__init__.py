"""Interaction history store: decisions made and events seen (SQLite by default, PostgreSQL).

>>> from nbo.history import InteractionStore
>>> store = InteractionStore("sqlite:///history.db")  # doctest: +SKIP
"""

from nbo.history.contact import ContactState
from nbo.history.events import EventReceipt
from nbo.history.migrate import migrate
from nbo.history.schema import EVENT_TYPES
from nbo.history.store import InteractionStore

__all__ = ["EVENT_TYPES", "ContactState", "EventReceipt", "InteractionStore", "migrate"]
