"""Optional dependencies (tensorrt, ray, pyarrow, optuna-dashboard): imported on use, and
a missing one is one sentence naming the extra that installs it, not an ImportError
traceback (the idea of Optuna's ``_imports.try_import``)."""

from __future__ import annotations

import importlib
from types import ModuleType

from spaces.core.errors import Unavailable


# An optional package hwnas needs for this feature is not installed.
MissingDependency = Unavailable


def optional_import(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or MissingDependency: ``feature needs module: pip install
    'hwnas[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependency(f"{feature} needs {module.split('.')[0]}, which is not installed "
                                f"(pip install 'hwnas[{extra}]'): {error}") from None
