"""Where an object header says more metadata lies, read from its messages, for prefetching.

Opening a group or dataset, h5py reads its object header, then whatever the header points to:
continuation blocks (headers grow when attributes are added later), the global heap collections
holding variable-length string attributes (NWB's ``neurodata_type``, ``colnames`` …), a group's
B-tree and local heap, a chunked dataset's chunk B-tree. Each would be one more round trip. These
functions list those places so that they can be fetched together, before h5py asks. A header
they cannot follow just yields fewer hints; the one hint read for more than prefetching, a chunk
B-tree's root, is checked node by node by :mod:`s3ecephys.hdf5.chunk_btree` when walked.
See the HDF5 File Format Specification, section IV (object headers and their messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3ecephys.hdf5.btree import DEFAULT_SIZES, Sizes

OHDR, OCHK = b"OHDR", b"OCHK"
GCOL = b"GCOL"
_LAYOUT, _CONTINUATION, _ATTRIBUTE, _SYMBOL_TABLE = 0x08, 0x10, 0x0C, 0x11
_CHUNKED = 2
_VARIABLE_LENGTH = 9


@dataclass
class HeaderHints:
    """Places an object header points to: continuation blocks ``(address, length, version)``,
    global heap collections, other metadata (a group's B-tree and local heap) and, for a chunked
    dataset whose chunks are indexed by a version-1 B-tree, that tree's root (not metadata worth
    prefetching: an index leaves large chunk tables to be read when first needed)."""

    continuations: list[tuple[int, int, int]] = field(default_factory=list)
    heap_collections: list[int] = field(default_factory=list)
    metadata: list[int] = field(default_factory=list)
    chunk_tree: int | None = None
    # The chunk's dimensions as the layout message gives them (the last: the element's size).
    chunk_dimensions: tuple[int, ...] = ()

    def merge(self, other: HeaderHints) -> None:
        self.continuations += other.continuations
        self.heap_collections += other.heap_collections
        self.metadata += other.metadata
        if other.chunk_tree is not None:
            self.chunk_tree, self.chunk_dimensions = other.chunk_tree, other.chunk_dimensions


def parse_object_header(data: bytes, file_size: int, sizes: Sizes = DEFAULT_SIZES) -> HeaderHints:
    """Hints from the object header at the start of ``data`` (version 1 or 2)."""
    if data[:4] == OHDR:
        return _parse_v2_header(data, file_size, sizes)
    if len(data) >= 16 and data[0] == 1 and data[1] == 0:
        size = int.from_bytes(data[8:12], "little")
        return parse_messages(data[16 : 16 + size], 1, file_size, sizes)
    return HeaderHints()


def parse_continuation_block(
    data: bytes, version: int, file_size: int, sizes: Sizes = DEFAULT_SIZES
) -> HeaderHints:
    """Hints from a continuation block of a version-``version`` object header."""
    if version == 2:
        if data[:4] != OCHK:
            return HeaderHints()
        return parse_messages(data[4:-4], 2, file_size, sizes)
    return parse_messages(data, 1, file_size, sizes)


def collection_size(data: bytes, sizes: Sizes = DEFAULT_SIZES) -> int | None:
    """The size of the global heap collection at the start of ``data``, or None."""
    if data[:4] != GCOL or len(data) < 8 + sizes.lengths:
        return None
    return int.from_bytes(data[8 : 8 + sizes.lengths], "little")


def parse_messages(data: bytes, version: int, file_size: int, sizes: Sizes) -> HeaderHints:
    """Hints from a run of header messages (version 1: 8-byte aligned, version 2: packed)."""
    hints = HeaderHints()
    position = 0
    prefix = 8 if version == 1 else 4
    while position + prefix <= len(data):
        if version == 1:
            kind = int.from_bytes(data[position : position + 2], "little")
            size = int.from_bytes(data[position + 2 : position + 4], "little")
            body_start = position + 8
        else:
            kind = data[position]
            size = int.from_bytes(data[position + 1 : position + 3], "little")
            # Bit 2 of the message flags: a 2-byte creation order follows.
            body_start = position + 4 + (2 if data[position + 3] & 0x04 else 0)
        body = data[body_start : body_start + size]
        if len(body) < size:
            break
        if kind == _CONTINUATION:
            address = _integer(body, 0, sizes.offsets)
            length = _integer(body, sizes.offsets, sizes.lengths)
            if 0 < address < file_size and length > 0:
                hints.continuations.append((address, length, version))
        elif kind == _SYMBOL_TABLE:
            for address in (
                _integer(body, 0, sizes.offsets),
                _integer(body, sizes.offsets, sizes.offsets),
            ):
                if 0 < address < file_size:
                    hints.metadata.append(address)
        elif kind == _LAYOUT and size > 3 + sizes.offsets and body[0] == 3 and body[1] == _CHUNKED:
            # Version 3 layout of a chunked dataset: the root of its chunk B-tree (version 4
            # layouts index chunks in other structures, left to h5py).
            address = _integer(body, 3, sizes.offsets)
            count, start = body[2], 3 + sizes.offsets
            if 0 < address < file_size and len(body) >= start + 4 * count:
                hints.chunk_tree = address
                hints.chunk_dimensions = tuple(
                    _integer(body, start + 4 * axis, 4) for axis in range(count)
                )
        elif kind == _ATTRIBUTE:
            hints.heap_collections += _attribute_heap_collections(body, file_size, sizes)
        position = body_start + size
    return hints


def _parse_v2_header(data: bytes, file_size: int, sizes: Sizes) -> HeaderHints:
    if len(data) < 7:
        return HeaderHints()
    flags = data[5]
    position = 6
    if flags & 0x20:
        position += 16  # access, modification, change and birth times
    if flags & 0x10:
        position += 4  # attribute storage phase change values
    width = 1 << (flags & 0x03)
    size = _integer(data, position, width)
    position += width
    return parse_messages(data[position : position + size], 2, file_size, sizes)


def _attribute_heap_collections(body: bytes, file_size: int, sizes: Sizes) -> list[int]:
    """Heap collections holding the values of a variable-length (string) attribute."""
    if len(body) < 8:
        return []
    version = body[0]
    name_size = _integer(body, 2, 2)
    type_size = _integer(body, 4, 2)
    space_size = _integer(body, 6, 2)
    if version == 1:
        padded = [_pad8(name_size), _pad8(type_size), _pad8(space_size)]
        type_start = 8 + padded[0]
        data_start = type_start + padded[1] + padded[2]
    elif version in (2, 3):
        type_start = 8 + (1 if version == 3 else 0) + name_size
        data_start = type_start + type_size + space_size
    else:
        return []
    if type_start >= len(body) or body[type_start] & 0x0F != _VARIABLE_LENGTH:
        return []
    # Each value: a 4-byte length, then the collection's address and the index in it.
    step = 4 + sizes.offsets + 4
    collections = []
    for start in range(data_start, len(body) - step + 1, step):
        length = _integer(body, start, 4)
        address = _integer(body, start + 4, sizes.offsets)
        if length and 0 < address < file_size:
            collections.append(address)
    return collections


def _integer(data: bytes, start: int, width: int) -> int:
    return int.from_bytes(data[start : start + width], "little")


def _pad8(size: int) -> int:
    return (size + 7) // 8 * 8
