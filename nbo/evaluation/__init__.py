"""nbo.evaluation."""
