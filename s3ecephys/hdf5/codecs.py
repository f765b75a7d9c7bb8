"""Undoing HDF5's filter pipeline on one chunk's bytes: deflate, shuffle and fletcher32.

These three are what h5py writes without plugins and what the Allen files use (gzip level 9). Any
other filter raises :class:`UnsupportedFilterError` naming it, when a dataset that needs it is read
(never when a file is opened: the rest of the file stays readable). Deflate is undone by
:func:`s3ecephys.hdf5.inflate.inflate` (libdeflate, else zlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numcodecs

from s3ecephys.hdf5.index import DEFLATE, FLETCHER32, NBIT, SCALEOFFSET, SHUFFLE, SZIP, FilterInfo
from s3ecephys.hdf5.inflate import inflate

SUPPORTED_FILTERS = frozenset({DEFLATE, SHUFFLE, FLETCHER32})

# Names of common filters, for messages about files whose pipeline message names none.
_KNOWN_FILTER_NAMES = {
    SZIP: "szip",
    NBIT: "nbit",
    SCALEOFFSET: "scaleoffset",
    307: "bzip2",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32008: "bitshuffle",
    32015: "zstd",
    32026: "blosc2",
}


class UnsupportedFilterError(NotImplementedError):
    """A dataset uses a filter this reader cannot undo."""


class ChecksumError(OSError):
    """A chunk's fletcher32 checksum does not match its bytes: the data is corrupt."""


def filter_name(info: FilterInfo) -> str:
    """A readable name for a filter: the file's own, else the registered one, else its id."""
    return info.name or _KNOWN_FILTER_NAMES.get(info.id, f"filter id {info.id}")


def check_supported(filters: Sequence[FilterInfo], path: str) -> None:
    """Raise :class:`UnsupportedFilterError` if reading ``path`` needs a filter not handled here."""
    for info in filters:
        if info.id not in SUPPORTED_FILTERS:
            raise UnsupportedFilterError(
                f"{path} is compressed with the HDF5 filter '{filter_name(info)}' (id {info.id}), "
                "which s3ecephys cannot decode; it reads gzip/deflate, shuffle and fletcher32. "
                "Download the file and read it with h5py (and hdf5plugin) instead."
            )


def decode_chunk(
    data: bytes | memoryview,
    filters: Sequence[FilterInfo],
    filter_mask: int,
    itemsize: int,
    *,
    path: str = "",
    raw_size: int | None = None,
) -> bytes | bytearray | memoryview:
    """The raw (unfiltered) bytes of one stored chunk.

    Filters are undone in reverse pipeline order, skipping those whose bit is set in
    ``filter_mask`` (HDF5 records there which filters it did not apply to this chunk).
    ``raw_size``, the chunk's unfiltered size when known, lets the inflater work in one pass.
    """
    for number in range(len(filters) - 1, -1, -1):
        if filter_mask & (1 << number):
            continue
        info = filters[number]
        if info.id == DEFLATE:
            data = inflate(data, _inflated_size(filters, filter_mask, number, raw_size), what=path)
        elif info.id == SHUFFLE:
            data = _unshuffle(data, info.values[0] if info.values else itemsize)
        elif info.id == FLETCHER32:
            try:
                data = _fletcher32().decode(data)
            except RuntimeError as error:
                raise ChecksumError(f"{path}: corrupt chunk ({error})") from error
        else:
            check_supported([info], path)
    return data


def _inflated_size(
    filters: Sequence[FilterInfo], filter_mask: int, number: int, raw_size: int | None
) -> int | None:
    """What the deflate filter at ``number`` inflates to: the raw chunk plus the 4-byte
    checksum of each fletcher32 applied before it."""
    if raw_size is None:
        return None
    checksums = sum(
        1
        for earlier in range(number)
        if filters[earlier].id == FLETCHER32 and not filter_mask & (1 << earlier)
    )
    return raw_size + 4 * checksums


def _unshuffle(data: bytes | memoryview, element_size: int) -> bytes | memoryview:
    # HDF5 leaves the bytes after the last whole element unshuffled; numcodecs refuses them.
    whole = len(data) - len(data) % element_size
    if element_size <= 1 or whole == 0:
        return data
    unshuffled = _shuffle(element_size).decode(memoryview(data)[:whole])
    if whole == len(data):
        return unshuffled
    return bytes(unshuffled) + bytes(memoryview(data)[whole:])


@cache
def _fletcher32() -> numcodecs.Fletcher32:
    return numcodecs.Fletcher32()


@cache
def _shuffle(element_size: int) -> numcodecs.Shuffle:
    return numcodecs.Shuffle(elementsize=element_size)
