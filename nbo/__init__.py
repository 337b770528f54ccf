"""nbo: next-best-offer for loyalty clubs."""

__version__ = "0.1.0"
