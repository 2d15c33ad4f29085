"""Work-pool templates and deployment helpers."""
