"""Error types shared by every hwnas package (defined in :mod:`spaces.core.errors`)."""

from spaces.core.errors import (DamagedFile, HwnasError, Incompatible, Infeasible,
                                InvalidArchitecture, InvalidOption, NotFound, StepFailed,
                                UnknownName, Unavailable)

__all__ = ["DamagedFile", "HwnasError", "Incompatible", "Infeasible", "InvalidArchitecture",
           "InvalidOption", "NotFound", "StepFailed", "UnknownName", "Unavailable"]
