"""A local stand-in for IBM Cloud and the IBM Quantum Platform API (see :mod:`.server`)."""
