"""Just enough of HDF5's on-disk format to find where metadata continues, for prefetching.

HDF5 keeps a chunked dataset's chunk table, and an old-style group's members, in version-1
B-trees ("TREE" nodes), whose leaves for groups are symbol table nodes ("SNOD") that point at
object headers. h5py walks these one node at a time; reading the child addresses out of a node
lets the caller fetch a whole level of the tree at once (and a group's local heap, which holds its
member names). Nothing here is trusted for correctness:
h5py still reads every node itself, these functions only say what it is going to ask for.
See the HDF5 File Format Specification, sections III.A.1 (v1 B-trees) and III.C (symbol nodes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from s3ecephys.hdf5.superblock import SIGNATURE

TREE = b"TREE"
SNOD = b"SNOD"
HEAP = b"HEAP"
GROUP_NODE, CHUNK_NODE = 0, 1
# Ranks tried when a chunk node's rank is unknown (HDF5 allows 32; real files use few).
_MAX_RANK = 8


@dataclass(frozen=True)
class Sizes:
    """Widths of file addresses and lengths, from the superblock (8 and 8 almost always)."""

    offsets: int = 8
    lengths: int = 8


DEFAULT_SIZES = Sizes()


@dataclass(frozen=True)
class ChunkNode:
    """A node of a chunked dataset's v1 B-tree, read with the dataset's rank known: ``level``
    (0 = leaf), child addresses (nodes, or chunks in a leaf) and, per child, the key before it:
    the chunk's stored size, its filter mask and its first element along each axis."""

    level: int
    children: tuple[int, ...]
    sizes: tuple[int, ...]
    filter_masks: tuple[int, ...]
    origins: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class TreeNode:
    """A v1 B-tree node: ``kind`` (0 group, 1 chunks), ``level`` (0 = leaf) and the addresses of
    its children (nodes, symbol table nodes for group leaves, chunks for chunk leaves)."""

    kind: int
    level: int
    children: tuple[int, ...]


def parse_superblock(head: bytes) -> Sizes:
    """Address and length widths from the start of the file (defaults if not found there)."""
    if head[:8] != SIGNATURE or len(head) < 16:
        return Sizes()
    version = head[8]
    if version in (0, 1):
        return Sizes(offsets=head[13], lengths=head[14])
    return Sizes(offsets=head[9], lengths=head[10])


def parse_tree_node(data: bytes, file_size: int, sizes: Sizes = DEFAULT_SIZES) -> TreeNode | None:
    """The node at the start of ``data``, or None if ``data`` does not hold a whole, plausible
    v1 B-tree node. A chunk node's rank is found by trying each and checking every key."""
    header = 8 + 2 * sizes.offsets
    if len(data) < header or data[:4] != TREE:
        return None
    kind, level, entries = data[4], data[5], int.from_bytes(data[6:8], "little")
    if kind == GROUP_NODE:
        return _node(data, kind, level, entries, sizes.lengths, file_size, sizes)
    if kind != CHUNK_NODE:
        return None
    # Each key ends with an offset that is 0 before every child (the element-size axis): the
    # first rank whose keys all do is the node's.
    for rank in range(1, _MAX_RANK + 1):
        chunk_node = parse_chunk_node(data, rank, file_size, sizes)
        if chunk_node is not None:
            return TreeNode(kind, chunk_node.level, chunk_node.children)
    return None


def chunk_node_bytes(rank: int, entries: int, sizes: Sizes = DEFAULT_SIZES) -> int:
    """Bytes of a chunk B-tree node of a rank-``rank`` dataset holding ``entries`` children."""
    key = 8 + 8 * (rank + 1)
    return 8 + 2 * sizes.offsets + entries * (key + sizes.offsets) + key


def chunk_node_entries(data: bytes) -> int | None:
    """How many children the chunk B-tree node at the start of ``data`` says it has."""
    if len(data) < 8 or data[:4] != TREE or data[4] != CHUNK_NODE:
        return None
    return int.from_bytes(data[6:8], "little")


def parse_chunk_node(
    data: bytes, rank: int, file_size: int, sizes: Sizes = DEFAULT_SIZES
) -> ChunkNode | None:
    """The chunk B-tree node of a rank-``rank`` dataset at the start of ``data``, or None if
    ``data`` does not hold a whole, well-formed one (HDF5 File Format Specification III.A.1)."""
    entries = chunk_node_entries(data)
    if entries is None or len(data) < chunk_node_bytes(rank, entries, sizes):
        return None
    level = data[5]
    key = 8 + 8 * (rank + 1)
    stride = key + sizes.offsets
    children, chunk_sizes, masks, origins = [], [], [], []
    for number in range(entries):
        start = 8 + 2 * sizes.offsets + number * stride
        size, mask = struct.unpack_from("<II", data, start)
        origin = struct.unpack_from(f"<{rank + 1}Q", data, start + 8)
        where = start + key
        address = int.from_bytes(data[where : where + sizes.offsets], "little")
        # Every key before a child ends with a 0 offset (the element-size axis).
        if origin[-1] != 0 or not 0 < address < file_size:
            return None
        children.append(address)
        chunk_sizes.append(size)
        masks.append(mask)
        origins.append(origin[:-1])
    return ChunkNode(level, tuple(children), tuple(chunk_sizes), tuple(masks), tuple(origins))


def parse_symbol_node(data: bytes, file_size: int, sizes: Sizes = DEFAULT_SIZES) -> tuple[int, ...]:
    """Object header addresses of the entries of the symbol table node at the start of ``data``
    (empty when it is not a whole symbol table node)."""
    if len(data) < 8 or data[:4] != SNOD:
        return ()
    count = int.from_bytes(data[6:8], "little")
    entry = 2 * sizes.offsets + 24  # name offset, header address, cache type, reserved, scratch
    if len(data) < 8 + count * entry:
        return ()
    addresses = []
    for number in range(count):
        start = 8 + number * entry + sizes.offsets
        address = int.from_bytes(data[start : start + sizes.offsets], "little")
        if 0 < address < file_size:
            addresses.append(address)
    return tuple(addresses)


def _node(
    data: bytes,
    kind: int,
    level: int,
    entries: int,
    key: int,
    file_size: int,
    sizes: Sizes,
) -> TreeNode | None:
    header = 8 + 2 * sizes.offsets
    stride = key + sizes.offsets
    if len(data) < header + entries * stride + key:
        return None
    children = []
    for number in range(entries):
        start = header + number * stride
        where = start + key
        address = int.from_bytes(data[where : where + sizes.offsets], "little")
        if not 0 < address < file_size:
            return None
        children.append(address)
    return TreeNode(kind, level, tuple(children))


def local_heap_segment(
    data: bytes, file_size: int, sizes: Sizes = DEFAULT_SIZES
) -> tuple[int, int] | None:
    """``(address, size)`` of the data segment of the local heap at the start of ``data``."""
    end = 8 + 2 * sizes.lengths + sizes.offsets
    if data[:4] != HEAP or len(data) < end:
        return None
    size = int.from_bytes(data[8 : 8 + sizes.lengths], "little")
    address = int.from_bytes(data[8 + 2 * sizes.lengths : end], "little")
    return (address, size) if 0 < address < file_size and size > 0 else None
