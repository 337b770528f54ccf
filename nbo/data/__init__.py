"""Club data: the contract, readers and writers, validation, importers and the synthetic club."""

from nbo.data.contract import CONTRACT_VERSION, TABLES, Column, ForeignKey, TableSpec
from nbo.data.io import ClubData

__all__ = ["CONTRACT_VERSION", "TABLES", "ClubData", "Column", "ForeignKey", "TableSpec"]
