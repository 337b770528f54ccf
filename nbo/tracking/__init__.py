"""nbo.tracking."""
