"""The foundation every hwnas package may import: files written atomically (and, as the
redesign proceeds, the one registry helper and the error root).

It lives under ``spaces`` because ``spaces`` is the bottom layer that ``devices``,
``latency`` and ``hwnas`` already import; it imports nothing heavier than the
standard library.
"""

from spaces.core.files import OutputError, atomic_write, check_writable

__all__ = ["OutputError", "atomic_write", "check_writable"]
