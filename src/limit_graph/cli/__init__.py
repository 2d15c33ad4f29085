"""The ``limit`` command."""
