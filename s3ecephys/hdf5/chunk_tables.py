"""Chunk tables an index left out, read when a dataset's data is first read.

Indexing a file reads its structure and small values; the chunk table of a large chunked
dataset (an LFP array: thousands of chunks, its B-tree nodes spread over the whole file) would
add one round trip per tree level to every open, for a table most opens never use. So the index
records where the tree starts, and the first read of the dataset walks it (one concurrent fetch
per level, for all datasets asked for together), keeps the table beside the index, and every
later open finds it there. After an open, the walk is also started in the background
(:mod:`s3ecephys.hdf5.table_prefetch`), so that the first read usually finds the table known.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from s3ecephys.hdf5.chunk_btree import ChunkTreeError, read_chunk_tables
from s3ecephys.hdf5.codecs import UnsupportedFilterError, check_supported
from s3ecephys.hdf5.index import ChunkTable, DatasetIndex
from s3ecephys.hdf5.index_cache import IndexCache
from s3ecephys.hdf5.table_prefetch import read_later
from s3ecephys.storage.ranges import ObjectInfo, RangeStore

# Chunk tables (their cache files) some open is reading in the background: another open of the
# same file does not read them a second time.
_walking: set[Path] = set()
_walking_lock = threading.Lock()


class LazyChunkTables:
    """Fills in the missing chunk tables of one file's datasets (from the cache, else the file)."""

    def __init__(self, store: RangeStore, cache: IndexCache | None):
        self.store = store
        self.cache = cache
        # Datasets are read from several threads (dask): each table is read once.
        self._lock = threading.Lock()
        # Tables a background walk will read: a read that must walk anyway takes them along
        # (same round trips), so no walk of this file's runs after that read.
        self._queued: list[DatasetIndex] = []
        self.background_store: RangeStore | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # A File or Dataset pickles (dask.delayed, multiprocessing): the lock stays behind.
        return (LazyChunkTables, (self.store, self.cache))

    def ensure(self, entries: Iterable[DatasetIndex]) -> None:
        """Give every entry of ``entries`` its chunk table, reading the missing ones together."""
        entries = list(entries)
        if any(_missing(entry) for entry in entries):
            self._fill(entries)

    def _fill(self, entries: list[DatasetIndex], store: RangeStore | None = None) -> None:
        """Give ``entries`` their tables (none: the queued ones'), from the cache, else read
        through ``store`` (default: the file's)."""
        with self._lock:
            info = self.store.info()  # known since the file was opened: no request
            unread = self._from_cache(entries, info)
            if unread or not entries:
                # A walk is due anyway: the queued tables go along (the same round trips).
                walked = {id(entry) for entry in unread}
                queued = [entry for entry in self._queued if id(entry) not in walked]
                unread += self._from_cache(queued, info)
                self._queued = []
            if not unread:
                return
            tables = self._read(unread, info.size, store or self.store)
            for entry, table in zip(unread, tables, strict=True):
                entry.set_chunk_table(table)
                if self.cache is not None:
                    self.cache.save_chunk_table(self.store, info, entry.path, table)

    def _from_cache(self, entries: list[DatasetIndex], info: ObjectInfo) -> list[DatasetIndex]:
        """Give the entries that miss a table the one saved beside the index; those still
        missing one."""
        unread = []
        for entry in {id(e): e for e in entries if _missing(e)}.values():
            saved = None
            if self.cache is not None:
                saved = self.cache.load_chunk_table(self.store, info, entry.path)
            if saved is not None and saved.grid.shape[1] == len(entry.chunks or ()):
                entry.set_chunk_table(saved)
            else:
                unread.append(entry)
        return unread

    def read_in_background(self, entries: Iterable[DatasetIndex]) -> None:
        """Start reading the tables of ``entries`` that are neither known nor saved beside the
        index, on a background thread (a read that needs one meanwhile waits for that walk).
        A table another open of the same file is reading already is left to that walk."""
        if self.cache is None:
            return
        entries = list(entries)
        info = self.store.info()  # known since the file was opened: no request
        where = {}
        for entry in entries:
            if _missing(entry):
                path = self.cache.chunk_table_path(self.store, info, entry.path)
                if not path.is_file():
                    where[entry.path] = path
        with _walking_lock:
            wanted = [e for e in entries if e.path in where and where[e.path] not in _walking]
            _walking.update(where[e.path] for e in wanted)
        if not wanted:
            return
        with self._lock:
            self._queued += wanted
        # Counted apart: the file's ``store.stats`` are what the caller's own reads cost.
        self.background_store = twin = self.store.twin()

        def walk() -> None:
            try:
                self._fill([], twin)
            finally:
                with _walking_lock:
                    _walking.difference_update(where[e.path] for e in wanted)

        read_later(walk, self.store.url)

    def _read(
        self, entries: list[DatasetIndex], size: int, store: RangeStore
    ) -> list[ChunkTable]:
        trees = [(entry.chunk_tree, entry.chunks) for entry in entries]
        try:
            return read_chunk_tables(store.fetch, trees, size)  # type: ignore[arg-type]
        except ChunkTreeError:
            # h5py reads what this reader could not (only indexing imports h5py otherwise).
            from s3ecephys.hdf5.indexer import chunk_tables_through_h5py

            return chunk_tables_through_h5py(store, [entry.path for entry in entries])


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
