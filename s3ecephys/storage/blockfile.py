"""A read-only file object over a :class:`RangeStore`, for h5py to walk metadata with.

h5py reads a file as many small, dependent reads (superblock, object headers, B-trees, heaps).
Over S3 each miss costs a round trip, so this file object keeps what it has read in aligned blocks,
fetches the head and the tail of the file in one concurrent wave when opened (HDF5 writers put
the metadata of objects created before the bulk data at the head, and of those created after it at
the end: pynwb's NWB files have both; on S3 that wave also tells the object's size and version),
and lets its owner prefetch regions it knows it will need.
It is only for metadata: bulk data goes through :meth:`RangeStore.fetch` directly.
"""

from __future__ import annotations

import io
import threading

from s3ecephys.storage.ranges import RangeStore

DEFAULT_BLOCK_SIZE = 64 * 1024
DEFAULT_HEAD_SIZE = 1 << 20
# On the synthetic Allen files, 1 MiB of tail cuts indexing from ~15 round trips to ~4.
DEFAULT_TAIL_SIZE = 1 << 20


class BlockFile(io.RawIOBase):
    """Binary, seekable, read-only file whose reads are served from a block cache."""

    def __init__(
        self,
        store: RangeStore,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        head_size: int = DEFAULT_HEAD_SIZE,
        tail_size: int = DEFAULT_TAIL_SIZE,
    ):
        super().__init__()
        self.store = store
        self.block_size = block_size
        self.reads = 0
        self._blocks: dict[int, bytes] = {}
        self._position = 0
        self._lock = threading.Lock()
        # What the store had done before this file object's first fetch (to tell its cost).
        self.stats_before = store.stats.copy()
        head, tail = store.fetch_ends(head_size, tail_size)
        self.size = store.info().size  # known since the ends arrived
        self._keep(0, head)
        self._keep(self.size - len(tail), tail)

    def _keep(self, offset: int, data: bytes) -> None:
        """Cache the whole blocks that ``data`` (the bytes from ``offset``) covers."""
        end = offset + len(data)
        block = -(-offset // self.block_size)
        while block * self.block_size < end:
            start = block * self.block_size
            stop = min(start + self.block_size, self.size)
            if stop > end:
                break
            self._blocks.setdefault(block, data[start - offset : stop - offset])
            block += 1

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Bring the blocks covering ``ranges`` into the cache, in one concurrent fetch."""
        wanted = sorted(
            {
                block
                for offset, length in ranges
                if length > 0
                for block in range(
                    offset // self.block_size,
                    (min(offset + length, self.size) - 1) // self.block_size + 1,
                )
                if block not in self._blocks
            }
        )
        if not wanted:
            return
        spans = [
            (block * self.block_size, min(self.block_size, self.size - block * self.block_size))
            for block in wanted
        ]
        bodies = self.store.fetch(spans)
        with self._lock:
            self._blocks.update(zip(wanted, bodies, strict=True))

    # -- io.RawIOBase ----------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer).cast("B")
        start = self._position
        end = min(start + len(view), self.size)
        if end <= start:
            return 0
        self.reads += 1
        self.prefetch([(start, end - start)])
        position = start
        while position < end:
            block, inside = divmod(position, self.block_size)
            piece = self._blocks[block][inside : inside + end - position]
            view[position - start : position - start + len(piece)] = piece
            position += len(piece)
        self._position = end
        return end - start
