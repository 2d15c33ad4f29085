"""Alembic migrations of the database backend; run on start by ``DatabaseStorage``."""
