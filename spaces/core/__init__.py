"""The foundation every hwnas package may import: files written atomically (and, as the
redesign proceeds, the one registry helper and the error root).

It lives under ``spaces`` because ``spaces`` is the bottom layer that ``devices``,
``latency`` and ``hwnas`` already import; it imports nothing heavier than the
standard library.
"""

from spaces.core.files import (MIN_FREE_BYTES, OutputError, atomic_append, atomic_write,
                               check_writable, free_bytes, os_error_sentence)

__all__ = ["MIN_FREE_BYTES", "OutputError", "atomic_append", "atomic_write", "check_writable",
           "free_bytes", "os_error_sentence"]
