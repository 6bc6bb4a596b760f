"""What can be searched: decisions, sampling, mutation, string forms, networks, costs.

``spaces`` imports none of hwnas's other packages (devices, latency, hwnas).
"""

from spaces.arch import Arch, Decision
from spaces.base import Cost, Space, as_rng
from spaces.errors import HwnasError, InvalidArchitecture, InvalidOption, UnknownName
from spaces.registry import get, names, register

__all__ = [
    "Arch", "Cost", "Decision", "HwnasError", "InvalidArchitecture", "InvalidOption", "Space",
    "UnknownName", "as_rng", "get", "names", "register",
]
