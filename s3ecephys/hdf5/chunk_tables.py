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
from typing import Any

from s3ecephys.hdf5.chunk_btree import ChunkTreeError, read_chunk_tables
from s3ecephys.hdf5.codecs import UnsupportedFilterError, check_supported
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

    def __reduce__(self) -> tuple[Any, ...]:
        # A File or Dataset pickles (dask.delayed, multiprocessing): the lock stays behind.
        return (LazyChunkTables, (self.store, self.cache))

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
                if saved is not None and saved.grid.shape[1] == len(entry.chunks or ()):
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
            from s3ecephys.hdf5.indexer import chunk_tables_through_h5py

            return chunk_tables_through_h5py(self.store, [entry.path for entry in entries])


def _missing(entry: DatasetIndex) -> bool:
    """Whether ``entry`` waits for its chunk table, and could be read once it has it (a dataset
    whose data cannot be decoded here fails with its own error, before any table is read)."""
    if entry.chunk_table is not None or entry.chunk_tree is None or entry.chunks is None:
        return False
    if entry.unreadable is not None or entry.inline is not None:
        return False
    try:
        check_supported(entry.filters, entry.path)
    except UnsupportedFilterError:
        return False
    return True
