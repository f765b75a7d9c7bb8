"""Reading selections: plan them, fetch every range in one call, decode chunks in threads.

One :meth:`RangeStore.fetch_each` per call sends all ranges concurrently, so a read costs one
round trip however many chunks it touches, and so do several reads asked for together (the columns
of a table, the rows of a ragged column). Each chunk is decoded as soon as its bytes are in, while
the rest are still arriving; decoding (libdeflate and zlib release the GIL) and copying into the
results run in a shared thread pool, and each piece writes a disjoint part of its result.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np

from s3ecephys.hdf5.codecs import check_supported, decode_chunk
from s3ecephys.hdf5.index import DatasetIndex
from s3ecephys.hdf5.planner import Piece, plan_read
from s3ecephys.hdf5.selection import Selection, outer_index
from s3ecephys.hdf5.through_h5py import read_through_h5py, reads_through_h5py
from s3ecephys.storage.ranges import RangeStore

# Below this many stored bytes, handing pieces to threads costs more than it saves.
_THREADED_BYTES = 1 << 20
_TASK_BYTES = 1 << 19
_WORKERS = min(8, os.cpu_count() or 1)


class UnreadableDatasetError(NotImplementedError):
    """The dataset's values cannot be read by this engine (the message says why)."""


def read_selection(
    store: RangeStore, dataset: DatasetIndex, selection: Selection, *, order: str = "C"
) -> Any:
    """The values of ``selection`` of ``dataset``, as h5py's ``dataset[...]`` returns them
    (``order="F"``: the same values in Fortran memory order)."""
    return read_selections(store, [(dataset, selection)], order=order)[0]


def read_selections(
    store: RangeStore, requests: Sequence[tuple[DatasetIndex, Selection]], *, order: str = "C"
) -> list[Any]:
    """The values of several ``(dataset, selection)`` of one file, with one fetch for all."""
    results: list[Any] = [None] * len(requests)
    outputs: list[tuple[int, DatasetIndex, Selection, np.ndarray]] = []
    work: list[tuple[Piece, DatasetIndex, np.ndarray]] = []
    for number, (dataset, selection) in enumerate(requests):
        if dataset.inline is not None:
            results[number] = selection.apply(dataset.inline_values())
            continue
        if reads_through_h5py(dataset):  # a filter or type only h5py decodes
            results[number] = read_through_h5py(store, dataset, selection)
            continue
        if dataset.unreadable is not None:
            raise UnreadableDatasetError(f"{dataset.path}: {dataset.unreadable}")
        check_supported(dataset.filters, dataset.path)
        plan = plan_read(dataset, selection)
        out = _allocate(dataset, selection, plan.needs_fill, order)
        outputs.append((number, dataset, selection, out))
        work += [(piece, dataset, out) for piece in plan.pieces if piece.offset is not None]
    if work:
        ranges = [(piece.offset, piece.size) for piece, _, _ in work]
        _place_as_they_arrive(work, store.fetch_each(ranges, views=True))
    for number, _, selection, out in outputs:
        results[number] = selection.finish(out)
    return results


def read_ahead(store: RangeStore, dataset: DatasetIndex, selection: Selection) -> None:
    """Start fetching what :func:`read_selection` of the same arguments will fetch (a dataset
    this engine decodes itself; see :mod:`s3ecephys.storage.read_ahead`)."""
    ranges = _ranges(dataset, selection)
    if ranges:
        store.read_ahead(ranges, views=True)


def was_read(store: RangeStore, dataset: DatasetIndex, selection: Selection) -> bool:
    """Whether :func:`read_selection` of the same arguments began moments ago (S3)."""
    ranges = _ranges(dataset, selection)
    return bool(ranges) and store.was_asked(ranges, views=True)


def _ranges(dataset: DatasetIndex, selection: Selection) -> list[tuple[int, int]]:
    """The byte ranges a read of ``selection`` fetches (none when it fetches otherwise)."""
    if dataset.inline is not None or dataset.unreadable is not None:
        return []
    if reads_through_h5py(dataset):
        return []
    plan = plan_read(dataset, selection)
    return [(piece.offset, piece.size) for piece in plan.pieces if piece.offset is not None]


def _allocate(
    dataset: DatasetIndex, selection: Selection, needs_fill: bool, order: str
) -> np.ndarray:
    if needs_fill:
        return np.full(selection.counts, dataset.fill(), dtype=dataset.dtype, order=order)
    return np.empty(selection.counts, dtype=dataset.dtype, order=order)


def _place_as_they_arrive(
    work: list[tuple[Piece, DatasetIndex, np.ndarray]],
    arrivals: Generator[list[tuple[int, Any]], None, None],
) -> None:
    """Decode each chunk into its result as soon as its bytes are in, while the others are
    still on the way (a large read's transfer and decoding overlap)."""
    threaded = len(work) > 1 and sum(piece.size for piece, _, _ in work) >= _THREADED_BYTES
    pending: deque[Future[None]] = deque()
    try:
        for batch in arrivals:
            items = [(work[position], body) for position, body in batch]
            if not threaded:
                _place(items)
                continue
            # Parts of about _TASK_BYTES: one future per chunk would cost more than small
            # chunks' decoding, one per arrival would leave threads idle when much arrives
            # at once (a local file's whole request).
            size = sum(len(body) for _, body in items)
            count = max(1, min(len(items), _WORKERS * 4, size // _TASK_BYTES))
            pending += [_pool().submit(_place, items[i::count]) for i in range(count)]
            # A damaged chunk stops the read now, not after the rest has arrived.
            while pending and pending[0].done():
                pending.popleft().result()
        for future in pending:
            future.result()
    finally:
        arrivals.close()  # an error here cancels the requests still running
        for future in pending:
            future.cancel()


def _place(items: list[tuple[tuple[Piece, DatasetIndex, np.ndarray], Any]]) -> None:
    for (piece, dataset, out), body in items:
        itemsize = dataset.dtype.itemsize
        raw_size = itemsize * math.prod(piece.shape)
        raw = decode_chunk(
            body, dataset.filters, piece.filter_mask, itemsize, path=dataset.path, raw_size=raw_size
        )
        values = _as_array(raw, dataset.dtype, piece.shape, dataset.path)
        _copy(out, piece.target, values[outer_index(piece.source)])


def _copy(out: np.ndarray, where: tuple[slice, ...], values: np.ndarray) -> None:
    """``out[where] = values``, with each run along the last axis moved as one element when
    both hold it contiguously: a chunk two channels wide lands in rows of 95, which numpy would
    otherwise copy value by value (3-4x slower)."""
    if values.ndim > 1 and values.shape[-1] > 1 and values.dtype == out.dtype:
        target, itemsize = out[where], values.dtype.itemsize  # slices only: a view of ``out``
        contiguous = target.strides[-1] == values.strides[-1] == itemsize
        if contiguous and target.shape == values.shape and not values.dtype.hasobject:
            run = np.dtype((np.void, itemsize * values.shape[-1]))
            target.view(run)[...] = values.view(run)
            return
    out[where] = values


def _as_array(raw: Any, dtype: np.dtype, shape: tuple[int, ...], path: str) -> np.ndarray:
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    buffer = memoryview(raw).cast("B")
    if buffer.nbytes < expected:
        raise OSError(
            f"{path}: a chunk decoded to {buffer.nbytes} bytes, expected {expected}; "
            "the file or its index is damaged"
        )
    # An array element type (dtype.shape) adds its axes after the dataset's, as in h5py.
    return np.frombuffer(buffer[:expected], dtype=dtype).reshape(shape + dtype.shape)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="s3ecephys-decode")
