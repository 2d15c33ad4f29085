"""Orchestration: sessions, executions and the archive, over storage and governance."""
