"""nbo.serving."""
