"""nbo.pipelines."""
