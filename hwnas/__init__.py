"""hwnas: hardware-aware, multi-objective neural architecture search.

Kept import-light (no torch at import time) so the CLI starts quickly.
"""

__version__ = "0.1.0"
