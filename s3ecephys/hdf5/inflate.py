"""Inflating HDF5's deflate (gzip) filter: libdeflate when installed, else zlib.

Inflating gzip chunks is what bounds a whole-LFP reduction on one machine. libdeflate (the
``deflate`` package, a dependency) inflated synthetic LFP chunks (float32, gzip level 9, the real
files' 46,989 x 1 chunk shape) 2.2x faster than zlib here, ahead of ISA-L (1.6x) and zlib-ng
(1.3x), and like them releases the GIL, so decoding threads scale with the cores
(``python -m benchmarks.decode_floor --synthetic 375912`` measures them all).

libdeflate inflates into a buffer whose size must be known beforehand: the reader knows it (a
chunk's raw size). When the size is not given, when the stream inflates to more than that, or
when ``deflate`` cannot be imported (a platform without its wheel), zlib does the work, so the
result never depends on which library is present.
"""

from __future__ import annotations

import zlib
from typing import Any

try:
    import deflate as _libdeflate
except ImportError:  # the dependency is missing on this platform: zlib alone
    _libdeflate = None


class InflateError(OSError):
    """A deflate stream is damaged: the chunk (or the file) is corrupt."""


def inflater_name() -> str:
    """Which library inflates in this process: ``"libdeflate"`` or ``"zlib"``."""
    return "zlib" if _libdeflate is None else "libdeflate"


def inflate(data: Any, expected_size: int | None = None, *, what: str = "") -> Any:
    """The inflated bytes of one zlib-wrapped deflate stream (HDF5's deflate filter).

    ``data`` is any buffer (bytes, memoryview …); ``expected_size`` the inflated size when known
    (it lets libdeflate inflate in one pass into a buffer of that size). A damaged stream raises
    :class:`InflateError` naming ``what``.
    """
    if _libdeflate is not None and expected_size:
        try:
            return _libdeflate.zlib_decompress(data, expected_size)
        except _libdeflate.DeflateError:
            # Larger than expected, or damaged: zlib tells which (and inflates the former).
            pass
    try:
        return zlib.decompress(data)
    except zlib.error as error:
        where = f"{what}: " if what else ""
        raise InflateError(
            f"{where}a gzip-compressed chunk cannot be inflated ({error}); the file is damaged"
        ) from error
