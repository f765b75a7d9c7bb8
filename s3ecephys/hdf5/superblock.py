"""How long an HDF5 file says it is: a truncated copy is recognised from its first bytes alone.

The superblock at the start of an HDF5 file records the file's end-of-file address (HDF5 File
Format Specification II.A, every superblock version). The HDF5 library itself refuses a file
shorter than that ("truncated file"), so comparing it with the size on disk tells a cut-off copy
(an interrupted download, say) from a complete one without reading anything else and without
asking where the file came from.
"""

from __future__ import annotations

import os
from pathlib import Path

SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Enough for the end-of-file address of any superblock version with 8-byte addresses.
HEAD_BYTES = 64


def stored_file_size(head: bytes) -> int | None:
    """The size the superblock at the start of ``head`` gives its file (base address plus
    end-of-file address), or None when ``head`` does not start with a superblock this reads."""
    if head[:8] != SIGNATURE or len(head) < 16:
        return None
    version = head[8]
    if version in (0, 1):
        width = head[13]
        # Versions 0 and 1: fixed fields, then base, free-space, end-of-file addresses; version
        # 1 has 4 more bytes (indexed storage node K and a reserved pair) before them.
        base_at = 24 if version == 0 else 28
        end_at = base_at + 2 * width
    elif version in (2, 3):
        width = head[9]
        # Versions 2 and 3: base, superblock extension, end-of-file addresses after 12 bytes.
        base_at = 12
        end_at = base_at + 2 * width
    else:
        return None
    if width not in (2, 4, 8) or len(head) < end_at + width:
        return None
    base = int.from_bytes(head[base_at:base_at + width], "little")
    end = int.from_bytes(head[end_at:end_at + width], "little")
    undefined = 2 ** (8 * width) - 1
    if undefined in (base, end):
        return None
    return base + end


def missing_bytes(path: str | os.PathLike[str]) -> int:
    """How many bytes ``path`` lacks, by its own superblock: 0 for a complete HDF5 file and for
    any file whose superblock is not at its start (not HDF5, or behind a user block)."""
    path = Path(path)
    with path.open("rb") as handle:
        expected = stored_file_size(handle.read(HEAD_BYTES))
    if expected is None:
        return 0
    return max(0, expected - path.stat().st_size)
