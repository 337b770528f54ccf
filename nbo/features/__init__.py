"""nbo.features."""
