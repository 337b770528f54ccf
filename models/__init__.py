"""nbo.models."""
