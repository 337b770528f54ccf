"""nbo.decisioning."""
