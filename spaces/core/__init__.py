"""The foundation every hwnas package may import: the error root and its few classes,
the one registry helper, files written atomically, stable ids and optional imports.

It lives under ``spaces`` because ``spaces`` is the bottom layer that ``devices``,
``latency`` and ``hwnas`` already import; it imports nothing heavier than the
standard library.
"""

from spaces.core.files import (MIN_FREE_BYTES, OutputError, atomic_append, atomic_write,
                               check_writable, free_bytes, os_error_sentence)
from spaces.core.ids import fingerprint_id
from spaces.core.imports import optional_import
from spaces.core.registry import Registry, resolve

__all__ = ["MIN_FREE_BYTES", "OutputError", "Registry", "atomic_append", "atomic_write",
           "check_writable", "fingerprint_id", "free_bytes", "optional_import",
           "os_error_sentence", "resolve"]
