"""Error types with messages a user can act on; the CLI turns them into exit code 2."""

from __future__ import annotations

__all__ = [
    "DataContractError",
    "DatasetExistsError",
    "EvaluationError",
    "EventError",
    "HistoryError",
    "MappingError",
    "NboError",
    "PolicyError",
]


class NboError(Exception):
    """Base of every error nbo raises on purpose (bad input, bad configuration)."""


class DataContractError(NboError):
    """A dataset does not meet the club data contract (file, column and rows in the message)."""


class MappingError(NboError):
    """A column-mapping YAML for `nbo data import files` is invalid."""


class DatasetExistsError(NboError):
    """The output directory of an import already holds data and overwriting was not asked for."""


class PolicyError(NboError):
    """A decision policy (YAML) is invalid or asks for something the data cannot give."""


class HistoryError(NboError):
    """Rows given to the interaction history store cannot be recorded (column and row named)."""


class EventError(HistoryError):
    """An interaction event is invalid (its index in the batch and the bad field named).

    ``index`` and ``field`` say which, so an API can point at the offending item.
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.field = field


class EvaluationError(NboError):
    """An evaluation cannot run on what it was given (the field or input named)."""
