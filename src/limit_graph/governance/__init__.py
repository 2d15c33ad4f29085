"""Governance: who may do what (authentication, checks before every task)."""
