"""The ground floor: domain types, errors, settings and the agent registry.

Nothing in ``core`` imports another package of this project.
"""
