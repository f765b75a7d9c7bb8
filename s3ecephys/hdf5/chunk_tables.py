"""Chunk tables an index left out, read when a dataset's data is first read.

Indexing a file reads its structure and small values; the chunk table of a large chunked
dataset (an LFP array: thousands of chunks, its B-tree nodes spread over the whole file) would
add one round trip per tree level to every open, for a table most opens never use. So the index
records where the tree starts, and the first read of the dataset walks it (one concurrent fetch
per level, for all datasets asked for together), keeps the table beside the index, and every
later open finds it there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from s3ecephys.hdf5.chunk_btree import ChunkTreeError, read_chunk_tables
from s3ecephys.hdf5.index import ChunkTable, DatasetIndex
from s3ecephys.hdf5.index_cache import IndexCache
from s3ecephys.storage.ranges import RangeStore


class LazyChunkTables:
    """Fills in the missing chunk tables of one file's datasets (from the cache, else the file)."""

    def __init__(self, store: RangeStore, cache: IndexCache | None):
        self.store = store
        self.cache = cache
        # Datasets are read from several threads (dask): each table is read once.
        self._lock = threading.Lock()

    def ensure(self, entries: Iterable[DatasetIndex]) -> None:
        """Give every entry of ``entries`` its chunk table, reading the missing ones together."""
        entries = list(entries)
        if not any(_missing(entry) for entry in entries):
            return
        with self._lock:
            pending = list({id(e): e for e in entries if _missing(e)}.values())
            if not pending:
                return
            info = self.store.info()  # known since the file was opened: no request
            unread = []
            for entry in pending:
                saved = None
                if self.cache is not None:
                    saved = self.cache.load_chunk_table(self.store, info, entry.path)
                if saved is not None:
                    entry.set_chunk_table(saved)
                else:
                    unread.append(entry)
            if not unread:
                return
            for entry, table in zip(unread, self._read(unread, info.size), strict=True):
                entry.set_chunk_table(table)
                if self.cache is not None:
                    self.cache.save_chunk_table(self.store, info, entry.path, table)

    def _read(self, entries: list[DatasetIndex], size: int) -> list[ChunkTable]:
        trees = [(entry.chunk_tree, entry.chunks) for entry in entries]
        try:
            return read_chunk_tables(self.store.fetch, trees, size)  # type: ignore[arg-type]
        except ChunkTreeError:
            # h5py reads what this reader could not (only indexing imports h5py otherwise).
            from s3ecephys.hdf5.indexer import chunk_table_through_h5py

            return [chunk_table_through_h5py(self.store, entry.path) for entry in entries]


def _missing(entry: DatasetIndex) -> bool:
    return entry.chunk_table is None and entry.chunk_tree is not None and entry.chunks is not None
