"""LIMIT-Graph: a governed, provenance-tracked workflow platform on Prefect 3."""

import os as _os

# No usage analytics leave this platform: Prefect's and great-expectations' are off
# unless an operator turns them on explicitly.
_os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
_os.environ.setdefault("DO_NOT_TRACK", "1")
_os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

__version__ = "0.1.0"
__all__ = ["__version__"]
