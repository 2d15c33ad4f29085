"""Compliance checks: what an execution's content must satisfy before it runs.

=======================  ===========================================================
check                    what it refuses
=======================  ===========================================================
``circuit-limits``       circuits over a width, depth, two-qubit-gate, shot or gate-set
                         limit, or over the target's own (422, each breach listed)
``allowed-targets``      quantum work on a target the patterns do not name (403)
``data-classification``  ``pii``/``restricted`` inputs on a backend not cleared (403)
``data-quality``         a table that fails its great-expectations suite (422, each
                         failed expectation with its observed value)
=======================  ===========================================================

Declarations sit on agents, in a session's ``policies``, on workflow steps and in
``[governance] checks``; :class:`ComplianceChecks` parses each once and evaluates them.
"""

from limit_graph.governance.compliance.registry import (
    CHECK_KINDS,
    ComplianceChecks,
    parse_declarations,
)
from limit_graph.governance.compliance.types import ContentCheck, ContentContext, Declared

__all__ = [
    "CHECK_KINDS",
    "ComplianceChecks",
    "ContentCheck",
    "ContentContext",
    "Declared",
    "parse_declarations",
]
