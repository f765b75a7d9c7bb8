"""The file object h5py indexes through: a :class:`BlockFile` that fetches metadata ahead.

h5py reads metadata one dependent piece at a time: over S3, a round trip each. Here, when h5py
reads a B-tree node, all its descendants are fetched level by level (one concurrent wave per
level) before h5py asks for them; the same for a group: its B-tree, symbol table nodes, its
members' object headers, and what those point to (continuation blocks, string attribute heaps,
their own B-trees and local heaps). Chunk B-trees are not followed from headers: their nodes lie
between the chunks, all over the file (~400 for an Allen LFP array), and the index reads them
itself, when needed (:mod:`s3ecephys.hdf5.chunk_btree`); the few h5py walks (a tree that reader
could not read) are still fetched a level at a time. h5py parses everything itself: a wrong
guess only costs bytes.
"""

from __future__ import annotations

from s3ecephys.hdf5.btree import (
    CHUNK_NODE,
    GROUP_NODE,
    HEAP,
    SNOD,
    TREE,
    local_heap_segment,
    parse_superblock,
    parse_symbol_node,
    parse_tree_node,
)
from s3ecephys.hdf5.object_header import (
    GCOL,
    HeaderHints,
    collection_size,
    parse_continuation_block,
    parse_object_header,
)
from s3ecephys.storage.blockfile import BlockFile
from s3ecephys.storage.ranges import RangeStore

# Bytes fetched for a node whose size is not known yet: a chunk-tree node of rank <= 5 with the
# default 64 entries, a group-tree node, a symbol table node, an object header's first part, a
# global heap collection of the usual size.
_NODE_BYTES = 4096
# Larger heap collections hold large values (long strings): not worth fetching ahead beyond this.
_MAX_COLLECTION = 1 << 20
# Kinds of items to expand: found by signature (_NODE), object headers and their continuation
# blocks (no signature in version 1), and plain bytes to fetch.
_NODE, _HEADER, _CONTINUATION_V1, _CONTINUATION_V2, _RAW = (
    "node",
    "header",
    "continuation-1",
    "continuation-2",
    "raw",
)


class MetadataFile(BlockFile):
    """A :class:`BlockFile` that, seeing h5py read a B-tree or symbol table node, fetches what
    lies below it (see the module's description) before h5py asks, one wave per level."""

    def __init__(self, store: RangeStore, **options: int):
        super().__init__(store, **options)
        # Widths of addresses and lengths in this file (from the superblock).
        self.sizes = parse_superblock(self.peek(0, 64))
        # Addresses already followed (h5py reading them again triggers nothing) and the items
        # expanded, as (kind, address, length): one address can be read as two kinds.
        self._expanded: set[int] = set()
        self._done: set[tuple[str, int, int]] = set()

    def readinto(self, buffer: memoryview | bytearray) -> int:
        start = self.tell()
        count = super().readinto(buffer)
        if count >= 4 and start not in self._expanded:
            signature = bytes(memoryview(buffer)[:4])
            if signature in (TREE, SNOD):
                self._expand([(_NODE, start, _NODE_BYTES)])
        return count

    def _expand(self, frontier: list[tuple[str, int, int]]) -> None:
        """Fetch what the items of ``frontier`` lead to, one concurrent wave per step: B-tree
        levels, then symbol table nodes, then object headers, then what headers point to."""
        while frontier:
            self._done.update(frontier)
            self._expanded.update(address for _, address, _ in frontier)
            following: list[tuple[str, int, int]] = []
            for kind, address, length in frontier:
                following += self._leads(kind, address, length)
            frontier = [item for item in dict.fromkeys(following) if item not in self._done]
            self.prefetch([(address, length) for _, address, length in frontier])

    def _leads(self, kind: str, address: int, length: int) -> list[tuple[str, int, int]]:
        """The metadata the (already fetched) item at ``address`` points to."""
        data = self.peek(address, length)
        if kind == _HEADER:
            return self._header_leads(parse_object_header(data, self.size, self.sizes))
        if kind in (_CONTINUATION_V1, _CONTINUATION_V2):
            version = 1 if kind == _CONTINUATION_V1 else 2
            hints = parse_continuation_block(data, version, self.size, self.sizes)
            return self._header_leads(hints)
        signature = data[:4]
        if signature == SNOD:
            # Object headers of a group's members: fetched, then read for what they point to.
            return [
                (_HEADER, a, _NODE_BYTES) for a in parse_symbol_node(data, self.size, self.sizes)
            ]
        if signature == TREE:
            node = parse_tree_node(data, self.size, self.sizes)
            if node is None or (node.kind == CHUNK_NODE and node.level == 0):
                return []  # chunk leaves point at data, which the index never reads
            if node.kind in (GROUP_NODE, CHUNK_NODE):
                return [(_NODE, a, _NODE_BYTES) for a in node.children]
        if signature == GCOL:
            size = collection_size(data, self.sizes)
            if size is not None and length < size <= _MAX_COLLECTION:
                return [(_RAW, address, size)]
        if signature == HEAP:
            segment = local_heap_segment(data, self.size, self.sizes)
            return [(_RAW, *segment)] if segment else []
        return []

    def _header_leads(self, hints: HeaderHints) -> list[tuple[str, int, int]]:
        leads = [
            (_CONTINUATION_V1 if version == 1 else _CONTINUATION_V2, address, length)
            for address, length, version in hints.continuations
        ]
        leads += [(_NODE, address, _NODE_BYTES) for address in hints.heap_collections]
        leads += [(_NODE, address, _NODE_BYTES) for address in hints.metadata]
        return leads

    def peek(self, offset: int, length: int) -> bytes:
        """Bytes from ``offset`` that are already in the block cache (fewer if a block is missing),
        without counting a read."""
        pieces = []
        end = min(offset + length, self.size)
        position = offset
        while position < end:
            block, inside = divmod(position, self.block_size)
            cached = self._blocks.get(block)
            if cached is None:
                break
            piece = cached[inside : inside + end - position]
            pieces.append(piece)
            position += len(piece)
        return b"".join(pieces)
