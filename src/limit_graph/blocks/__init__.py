"""Prefect blocks: backend targets and their credentials."""
