"""Lazy datasets: h5py-like metadata for free, numpy reads of only the chunks touched, dask arrays.

A :class:`Dataset` answers ``shape``, ``dtype``, ``chunks``, ``attrs`` … from the file index, and
``ds[selection]`` with one concurrent fetch of the chunks the selection touches (``read_many``:
of many selections at once). ``to_dask`` builds a graph whose every task is
``getter(BlockSource, index)``: a :class:`BlockSource` is plain data (the store's URL, options
and pinned version, the rows of the chunk table its block needs, filters, dtype, shape), so tasks
pickle and run on process workers, and dask fuses a later slice of the array into the task, which
then reads only the chunks that slice touches.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from s3ecephys.hdf5.attributes import Attributes
from s3ecephys.hdf5.chunk_tables import LazyChunkTables
from s3ecephys.hdf5.codecs import check_supported, filter_name
from s3ecephys.hdf5.index import DEFLATE, FLETCHER32, SHUFFLE, DatasetIndex
from s3ecephys.hdf5.planner import ReadPlan, plan_read
from s3ecephys.hdf5.reader import (
    UnreadableDatasetError,
    read_ahead,
    read_selection,
    read_selections,
    was_read,
)
from s3ecephys.hdf5.selection import Selection, select
from s3ecephys.hdf5.through_h5py import reads_through_h5py
from s3ecephys.storage.ranges import RangeStore
from s3ecephys.storage.read_ahead import ASKED_MEMORY

if TYPE_CHECKING:
    import dask.array

# Decoded bytes per dask task when ``to_dask`` chooses the blocks.
DEFAULT_TASK_BYTES = 16 * 2**20
# Blocks a task of a dask scan fetches ahead: as many as the threads that read side by side
# (dask's default on two cores), so that the one after those is in flight meanwhile.
_AHEAD = 2


class Dataset:
    """One dataset of an indexed HDF5 file (see :func:`~s3ecephys.hdf5.open_hdf5`)."""

    def __init__(
        self,
        store: RangeStore,
        index: DatasetIndex,
        name: str,
        chunk_tables: LazyChunkTables | None = None,
    ):
        self._store = store
        self._index = index
        self.name = name
        self.attrs = Attributes(index.attrs)
        # Where a chunk table left out of the index is read from (the file's, shared by its
        # datasets, keeps it beside the index).
        self._chunk_tables = chunk_tables or LazyChunkTables(store, None)

    # -- metadata (no reads) ---------------------------------------------------------------------

    @property
    def index(self) -> DatasetIndex:
        """The index entry this dataset reads through."""
        return self._index

    @property
    def store(self) -> RangeStore:
        """The :class:`RangeStore` reads go through (``store.stats`` counts them)."""
        return self._store

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The shape (None for an empty dataspace, as in h5py)."""
        return self._index.shape

    @property
    def dtype(self) -> np.dtype:
        return self._index.dtype

    @property
    def ndim(self) -> int:
        return len(self._shape())

    @property
    def size(self) -> int:
        return int(np.prod(self._shape(), dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def chunks(self) -> tuple[int, ...] | None:
        return self._index.chunks

    @property
    def maxshape(self) -> tuple[int | None, ...] | None:
        return self._index.maxshape

    @property
    def layout(self) -> str:
        """``contiguous``, ``chunked``, ``compact``, ``virtual`` or ``external``."""
        return self._index.layout

    @property
    def fillvalue(self) -> Any:
        return self._index.fill()

    @property
    def compression(self) -> str | None:
        for info in self._index.filters:
            if info.id not in (SHUFFLE, FLETCHER32):
                return "gzip" if info.id == DEFLATE else filter_name(info)
        return None

    @property
    def compression_opts(self) -> int | None:
        for info in self._index.filters:
            if info.id == DEFLATE:
                return info.values[0] if info.values else None
        return None

    @property
    def shuffle(self) -> bool:
        return any(info.id == SHUFFLE for info in self._index.filters)

    @property
    def fletcher32(self) -> bool:
        return any(info.id == FLETCHER32 for info in self._index.filters)

    def __len__(self) -> int:
        if not self._shape():
            raise TypeError("a scalar dataset has no len()")
        return self._shape()[0]

    def _shape(self) -> tuple[int, ...]:
        if self._index.shape is None:
            raise TypeError(f"{self.name} has an empty dataspace: no shape, no values")
        return self._index.shape

    def __repr__(self) -> str:
        shape = "null" if self.shape is None else self.shape
        return f'<s3ecephys Dataset "{self.name}": shape {shape}, type "{self.dtype.str}">'

    # -- reads -----------------------------------------------------------------------------------

    def __getitem__(self, selection: Any) -> Any:
        """The values of ``selection`` (h5py's rules and results); reads the chunks it touches."""
        if self._index.shape is None:
            return None
        self._chunk_tables.ensure([self._index])
        return read_selection(self._store, self._index, select(selection, self._shape()))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = np.asarray(self[()])
        return values if dtype is None else values.astype(dtype)

    def read_many(self, selections: Sequence[Any]) -> list[Any]:
        """``[self[s] for s in selections]``, with the chunks (or runs) of all of them fetched in
        one concurrent wave: the rows of a ragged column, several windows. Ranges shared by
        several selections are fetched once; each result is what ``self[s]`` returns, e.g.
        ``head, channel = ds.read_many([np.s_[:10], np.s_[5000:6000, 3]])``.
        """
        return read_together([(self, selection) for selection in selections])

    def plan(self, selection: Any = ()) -> ReadPlan:
        """What reading ``selection`` would fetch: ``plan.ranges``, ``plan.bytes_needed`` …
        (empty for values held in the index). No data is read; a chunk table not read yet is
        (see :mod:`s3ecephys.hdf5.chunk_tables`)."""
        chosen = select(selection, self._shape())
        if self._index.inline is not None or self._index.layout not in ("chunked", "contiguous"):
            return ReadPlan(chosen, ())
        self._chunk_tables.ensure([self._index])
        return plan_read(self._index, chosen)

    def asstr(self, encoding: str = "utf-8", errors: str = "strict") -> StringView:
        """A view that reads variable-length strings as ``str`` (h5py reads them as bytes)."""
        return StringView(self, encoding, errors)

    def to_dask(
        self, chunks: Any = None, *, target_bytes: int = DEFAULT_TASK_BYTES
    ) -> dask.array.Array:
        """A dask array over this dataset; no data is read until it is computed (only the
        chunk table, the first time: each task carries the byte ranges of its block).

        ``chunks`` (anything dask accepts) defaults to blocks made of whole storage chunks: the
        trailing axes are taken whole while a block stays under ``target_bytes`` decoded (all
        channels of a time window are one concurrent fetch), then the first axis grows by whole
        chunks up to ``target_bytes``.
        """
        import dask.array as da
        from dask.array.core import getter, normalize_chunks
        from dask.base import tokenize
        from dask.highlevelgraph import HighLevelGraph

        shape, dtype = self._shape(), self.dtype
        if dtype.shape:  # dask arrays cannot have sub-array elements
            raise NotImplementedError(
                f"{self.name} has an array element type ({dtype}), which to_dask does not "
                "support; read it with dataset[...]"
            )
        if self._index.inline is not None:
            values = self._index.inline_values()
            return da.from_array(values, chunks=chunks if chunks is not None else "auto")
        # Fail here, not in a worker: the graph could never compute.
        if self._index.unreadable is not None:
            raise UnreadableDatasetError(f"{self.name}: {self._index.unreadable}")
        if not reads_through_h5py(self._index):
            check_supported(self._index.filters, self.name)
        self._chunk_tables.ensure([self._index])
        if chunks is None:
            unit = self.chunks or (1,) * len(shape)
            chunks = block_shape(shape, unit, dtype.itemsize, target_bytes)
        blocks = normalize_chunks(
            chunks, shape, dtype=dtype, limit=target_bytes, previous_chunks=self.chunks
        )
        # Pins the version the index describes (no request: it is known since opening), so
        # workers need no HEAD and a replaced object fails loudly instead of mixing versions.
        store = self._store
        info = store.info()
        name = "s3ecephys-" + tokenize(store.url, info.fingerprint, self.name, blocks)
        starts = [np.cumsum((0, *sizes[:-1])).tolist() for sizes in blocks]
        sources = {}
        for position in itertools.product(*(range(len(sizes)) for sizes in blocks)):
            origin = tuple(starts[axis][i] for axis, i in enumerate(position))
            extent = tuple(blocks[axis][i] for axis, i in enumerate(position))
            block_index = self._block_index(origin, extent)
            sources[position] = BlockSource(store, block_index, origin, extent)
        graph = {}
        for position, source in sources.items():
            # The neighbours along the first axis, nearest first: a scan fetches ahead.
            def along(steps: range, at: tuple[int, ...] = position) -> tuple[BlockSource, ...]:
                near = [(at[0] + step, *at[1:]) for step in steps]
                return tuple(sources[p] for p in near if p in sources)

            before, after = along(range(-1, -_AHEAD - 1, -1)), along(range(1, _AHEAD + 1))
            key = (name, *position)
            index = tuple(slice(0, n) for n in source.shape)
            task_source = replace(source, before=before, after=after)
            graph[key] = _getter_task(key, getter, task_source, index)
        layer = HighLevelGraph.from_collections(name, graph, dependencies=())
        return da.Array(layer, name, blocks, dtype=dtype)

    def _block_index(self, origin: tuple[int, ...], extent: tuple[int, ...]) -> DatasetIndex:
        """This dataset's index cut down to what one block needs (no attributes, only the chunk
        table rows the block touches)."""
        index = self._index
        table = index.chunk_table
        if table is None or index.chunks is None:
            return replace(index, attrs={})
        first = np.array(origin) // np.array(index.chunks)
        last = (np.array(origin) + np.maximum(np.array(extent), 1) - 1) // np.array(index.chunks)
        inside = np.all((table.grid >= first) & (table.grid <= last), axis=1)
        return replace(index, attrs={}, chunk_table=table.select(np.flatnonzero(inside)))


def read_together(items: Sequence[tuple[Dataset, Any]]) -> list[Any]:
    """``[dataset[selection] for dataset, selection in items]`` for datasets of one file, in one
    concurrent wave: the chunk tables not read yet in one walk, then every range at once
    (neighbours coalesced, as for a single read). See :meth:`File.read_many`."""
    if not items:
        return []
    store = items[0][0].store
    for dataset, _ in items:
        if dataset.store is not store:
            raise ValueError(
                f"{dataset.name} is in another file than {items[0][0].name} "
                f"({dataset.store.url} and {store.url}): read_many reads one file"
            )
    # Datasets of one file share its chunk tables; a Dataset made by hand has its own.
    tables: dict[int, tuple[LazyChunkTables, list[DatasetIndex]]] = {}
    for dataset, _ in items:
        entry = tables.setdefault(id(dataset._chunk_tables), (dataset._chunk_tables, []))
        entry[1].append(dataset.index)
    for lazy, entries in tables.values():
        lazy.ensure(entries)
    # An empty dataspace has no values (``dataset[...]`` is None, as in h5py): nothing to read.
    wanted = [
        (number, dataset.index, select(selection, dataset._shape()))
        for number, (dataset, selection) in enumerate(items)
        if dataset.shape is not None
    ]
    results: list[Any] = [None] * len(items)
    values = read_selections(store, [(index, chosen) for _, index, chosen in wanted])
    for (number, _, _), value in zip(wanted, values, strict=True):
        results[number] = value
    return results


@dataclass(frozen=True)
class BlockSource:
    """One block of a dataset, readable with numpy-style indexing relative to the block.

    Plain data only, so a dask task holding it pickles small and runs anywhere.
    """

    store: RangeStore
    dataset: DatasetIndex
    origin: tuple[int, ...]
    shape: tuple[int, ...]
    # The blocks before and after this one along the first axis (nearest first): a read of this
    # whole block right after its neighbour on one side fetches those on the other side ahead.
    before: tuple[BlockSource, ...] = ()
    after: tuple[BlockSource, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to another process (a worker: no read-ahead there), a task carries its own
        # block's chunk rows, not its neighbours'.
        return (BlockSource, (self.store, self.dataset, self.origin, self.shape))

    @property
    def dtype(self) -> np.dtype:
        return self.dataset.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, selection: Any) -> Any:
        chosen = select(selection, self.shape).shifted(self.origin, self.dataset.shape)
        if chosen.counts == self.shape and (self.before or self.after) and _reads_ahead_here():
            scanning = _scan_under_way(self)
            # dask may scan either way (its order often goes backwards): the way it goes is
            # the side whose neighbour was read moments ago. A block with neither, in a scan
            # that jumped here, gets both nearest neighbours (dask's order jumps between runs
            # of blocks; each neighbour is read sooner or later in the same scan).
            if self.after and self.after[0].was_read():
                coming = self.before
            elif self.before and self.before[0].was_read():
                coming = self.after
            elif scanning:
                coming = self.before[:1] + self.after[:1]
            else:
                coming = ()
            for block in coming:
                read_ahead(self.store, block.dataset, block._whole())
        order = landing_order(self.dataset.chunks, self.shape)
        return read_selection(self.store, self.dataset, chosen, order=order)

    def was_read(self) -> bool:
        """Whether a read of this whole block began moments ago."""
        return was_read(self.store, self.dataset, self._whole())

    def _whole(self) -> Selection:
        whole = select(tuple(slice(0, n) for n in self.shape), self.shape)
        return whole.shifted(self.origin, self.dataset.shape)


class StringView:
    """Reads a string dataset as ``str`` (see :meth:`Dataset.asstr`)."""

    def __init__(self, dataset: Dataset, encoding: str, errors: str):
        self._dataset, self._encoding, self._errors = dataset, encoding, errors

    def __getitem__(self, selection: Any) -> Any:
        values = self._dataset[selection]
        if isinstance(values, bytes):
            return values.decode(self._encoding, self._errors)
        if isinstance(values, np.ndarray) and values.dtype.kind in "OS":
            decoded = np.empty(values.shape, dtype=object)
            for position, value in np.ndenumerate(values):
                is_bytes = isinstance(value, bytes)
                decoded[position] = (
                    value.decode(self._encoding, self._errors) if is_bytes else value
                )
            return decoded
        return values

    def __len__(self) -> int:
        return len(self._dataset)


def block_shape(
    shape: tuple[int, ...], unit: tuple[int, ...], itemsize: int, target_bytes: int
) -> tuple[int, ...]:
    """Whole ``unit`` s (storage chunks) per block: trailing axes grown first, each to its full
    length when the block stays under ``target_bytes`` (or within a quarter above it), else cut
    into equal parts under it; then the first axis.

    A trailing axis just too long for the target is taken whole rather than split in two: an
    Allen LFP chunk row (46,989 samples x 95 channels, 17.9 MB) is one concurrent fetch as one
    block, where 16 MiB blocks of 89 and 6 channels would make two tasks, two round trips.
    """
    block = [max(1, min(u, n)) for u, n in zip(unit, shape, strict=True)]
    for axis in [*range(len(shape) - 1, 0, -1), 0][: len(shape)]:
        others = itemsize * int(np.prod(block[:axis] + block[axis + 1 :], dtype=np.int64))
        units = max(1, target_bytes // max(1, others * block[axis]))
        fit = max(1, min(shape[axis], block[axis] * units))
        if axis and fit < shape[axis]:
            if others * shape[axis] <= target_bytes * 5 // 4:
                fit = shape[axis]
            else:  # equal parts, so that no thin remainder becomes a task of its own
                part = _ceil_div(shape[axis], _ceil_div(shape[axis], fit))
                fit = _ceil_div(part, block[axis]) * block[axis]
        block[axis] = fit
    return tuple(block)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def landing_order(chunks: tuple[int, ...] | None, shape: tuple[int, ...]) -> str:
    """``"F"`` when a storage chunk's values land in longer contiguous runs of a block of
    ``shape`` in Fortran order than in C order, else ``"C"``.

    A dask block's memory order is free, and it decides the cost of assembling it: chunks of a
    few channels × many samples (LFP: 2 × 11,719) placed in a C-order block of 95 channels write
    a few values into every row (each write a cache line of its own, shared with the thread
    placing the neighbouring chunk), in Fortran order a few contiguous columns.
    """
    if chunks is None or len(shape) < 2:
        return "C"
    return "F" if min(chunks[0], shape[0]) > min(chunks[-1], shape[-1]) else "C"


# When a whole block of each dataset (S3 URL, dataset path) was last read in this process.
_whole_reads: dict[tuple[str, str], float] = {}
_whole_reads_lock = threading.Lock()


def _scan_under_way(block: BlockSource) -> bool:
    """Whether another whole block of ``block``'s dataset was read moments ago (a scan is under
    way); notes this one."""
    key = (block.store.url, block.dataset.path)
    now = time.monotonic()
    with _whole_reads_lock:
        last = _whole_reads.get(key)
        _whole_reads[key] = now
    return last is not None and now - last < ASKED_MEMORY


def _reads_ahead_here() -> bool:
    """Whether this process reads a scan's blocks itself: not a worker process (multiprocessing,
    or a distributed worker), whose neighbouring blocks usually go to other workers."""
    if multiprocessing.parent_process() is not None:
        return False
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return True
    try:
        distributed.get_worker()
    except ValueError:
        return True
    return False


def _getter_task(key: tuple[Any, ...], getter: Any, source: BlockSource, index: tuple) -> Any:
    # A Task with the source as a literal value: dask's slice optimisation can then fuse a later
    # ``array[...]`` into this getter, so that computing a small window reads a small window.
    try:
        from dask._task_spec import DataNode, Task
    except ImportError:  # dask before 2024.12 fuses the classic tuple form
        return (getter, source, index)
    return Task(key, getter, DataNode(None, source), DataNode(None, index))
