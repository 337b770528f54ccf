"""Error types with messages a user can act on; the CLI turns them into exit code 2."""

from __future__ import annotations

__all__ = ["DataContractError", "DatasetExistsError", "MappingError", "NboError"]


class NboError(Exception):
    """Base of every error nbo raises on purpose (bad input, bad configuration)."""


class DataContractError(NboError):
    """A dataset does not meet the club data contract (file, column and rows in the message)."""


class MappingError(NboError):
    """A column-mapping YAML for `nbo data import files` is invalid."""


class DatasetExistsError(NboError):
    """The output directory of an import already holds data and overwriting was not asked for."""
