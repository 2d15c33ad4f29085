"""Quantum agents (``quantum.sample``, ``quantum.estimate``) and the circuit I/O and
primitives adapter they, and other quantum agents, are built on."""
