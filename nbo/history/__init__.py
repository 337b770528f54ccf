"""nbo.history."""
