"""Chunk tables read straight from chunked datasets' version-1 B-trees, a level at a time.

A chunked dataset written in HDF5's default (earliest) format keeps its chunk table in a v1
B-tree whose nodes lie between the chunks, all over the file. h5py's ``chunk_iter`` visits them
one at a time; here each level of every tree asked for is one concurrent fetch, so a table of
thousands of chunks costs as many round trips as its tree has levels (three for an Allen LFP
array), and an index can leave large tables to be read only when their data is first read.

Every node is checked as it is read (signature, node type, levels descending by one, each node
visited once, chunk origins on the chunk grid, each chunk once); a tree that fails a check raises
:class:`ChunkTreeError`, and callers fall back to h5py.
See the HDF5 File Format Specification, section III.A.1 (v1 B-trees, node type 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from s3ecephys.hdf5.btree import Sizes, chunk_node_bytes, chunk_node_entries, parse_chunk_node
from s3ecephys.hdf5.index import ChunkTable, ChunkTree

# Reads exactly these (offset, length) byte ranges (one concurrent wave per call).
Reader = Callable[[Sequence[tuple[int, int]]], list[bytes]]

# Children per node that HDF5 allocates by default (2K with the chunk B-tree's K = 32): nodes
# are fetched at this size first, and again whole in the rare file made with a larger K.
_DEFAULT_ENTRIES = 64
# Deeper than any tree a real file holds (64 children per node): a root claiming more is damage
# (levels below must then descend one by one, and no node is read twice).
_MAX_LEVEL = 32


class ChunkTreeError(ValueError):
    """A chunk B-tree did not read as one (damaged file, or a format this reader does not know)."""


def read_chunk_tables(
    read: Reader,
    trees: Sequence[tuple[ChunkTree, tuple[int, ...]]],
    file_size: int,
) -> list[ChunkTable]:
    """The chunk table of each ``(tree, chunk shape)``, all trees walked together: one ``read``
    per level (two when some node is larger than HDF5's default)."""
    rows: list[list[_Row]] = [[] for _ in trees]
    seen: set[int] = set()
    # (tree number, node address, the level it must have; None for a root).
    frontier: list[tuple[int, int, int | None]] = [
        (number, tree.address, None) for number, (tree, _) in enumerate(trees)
    ]
    while frontier:
        for _, address, _ in frontier:
            if address in seen or not 0 < address < file_size:
                raise ChunkTreeError(f"chunk B-tree node at {address} is out of place")
            seen.add(address)
        bodies = _read_nodes(read, trees, frontier, file_size)
        following: list[tuple[int, int, int | None]] = []
        for (number, address, level), data in zip(frontier, bodies, strict=True):
            tree, chunks = trees[number]
            node = parse_chunk_node(data, len(chunks), file_size, Sizes(tree.address_width))
            if node is None or (level is not None and node.level != level):
                raise ChunkTreeError(f"no chunk B-tree node of the expected level at {address}")
            if node.level > _MAX_LEVEL:
                raise ChunkTreeError(f"chunk B-tree node at {address} claims level {node.level}")
            if node.level == 0:
                rows[number] += zip(
                    node.origins, node.children, node.sizes, node.filter_masks, strict=True
                )
            else:
                following += [(number, child, node.level - 1) for child in node.children]
        frontier = following
    return [_table(found, chunks) for found, (_, chunks) in zip(rows, trees, strict=True)]


def _read_nodes(
    read: Reader,
    trees: Sequence[tuple[ChunkTree, tuple[int, ...]]],
    frontier: list[tuple[int, int, int | None]],
    file_size: int,
) -> list[bytes]:
    def length(number: int, address: int, entries: int) -> int:
        tree, chunks = trees[number]
        wanted = chunk_node_bytes(len(chunks), entries, Sizes(tree.address_width))
        return min(wanted, file_size - address)

    spans = [(address, length(n, address, _DEFAULT_ENTRIES)) for n, address, _ in frontier]
    bodies = read(spans)
    larger = []
    for position, ((number, address, _), data) in enumerate(zip(frontier, bodies, strict=True)):
        entries = chunk_node_entries(data)
        if entries is not None and entries > _DEFAULT_ENTRIES:
            larger.append((position, (address, length(number, address, entries))))
    if larger:
        for (position, _), data in zip(larger, read([span for _, span in larger]), strict=True):
            bodies[position] = data
    return bodies


_Row = tuple[tuple[int, ...], int, int, int]  # chunk origin, address, stored size, filter mask


def _table(rows: list[_Row], chunks: tuple[int, ...]) -> ChunkTable:
    if not rows:
        return ChunkTable.empty(len(chunks))
    origins = np.array([row[0] for row in rows], dtype=np.int64).reshape(len(rows), len(chunks))
    shape = np.array(chunks, dtype=np.int64)
    if np.any(origins % shape):
        raise ChunkTreeError("a chunk B-tree key is not on the chunk grid")
    grid = origins // shape
    if len(np.unique(grid, axis=0)) != len(grid):
        raise ChunkTreeError("a chunk B-tree lists a chunk twice")
    # Kept in the tree's order (by grid position), as h5py's chunk_iter lists them.
    return ChunkTable(
        grid=grid,
        offsets=np.array([row[1] for row in rows], dtype=np.int64),
        sizes=np.array([row[2] for row in rows], dtype=np.int64),
        filter_masks=np.array([row[3] for row in rows], dtype=np.int64),
    )
