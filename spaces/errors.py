"""Error types shared by every hwnas package (defined in :mod:`spaces.core.errors`)."""

from spaces.core.errors import (DamagedFile, HwnasError, Incompatible, Infeasible,
                                InvalidArchitecture, InvalidOption, NotFound, StepFailed,
                                UnknownName, Unavailable)

# A user's space builder (``file.py:function``) cannot be loaded or misbehaves.
BuilderError = InvalidOption

__all__ = ["BuilderError", "DamagedFile", "HwnasError", "Incompatible", "Infeasible", "InvalidArchitecture",
           "InvalidOption", "NotFound", "StepFailed", "UnknownName", "Unavailable"]
