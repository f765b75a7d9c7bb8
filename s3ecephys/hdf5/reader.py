"""Reading selections: plan them, fetch every range in one call, decode chunks in threads.

One :meth:`RangeStore.fetch` per call sends all ranges concurrently, so a read costs one round
trip however many chunks it touches, and so do several reads asked for together (the columns of a
table, the rows of a ragged column). Decoding (zlib releases the GIL) and copying into the results
run in a shared thread pool; each piece writes a disjoint part of its result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np

from s3ecephys.hdf5.codecs import check_supported, decode_chunk
from s3ecephys.hdf5.index import DatasetIndex
from s3ecephys.hdf5.planner import Piece, plan_read
from s3ecephys.hdf5.selection import Selection, outer_index
from s3ecephys.storage.ranges import RangeStore

# Below this many stored bytes, handing pieces to threads costs more than it saves.
_THREADED_BYTES = 1 << 20
_WORKERS = min(8, os.cpu_count() or 1)


class UnreadableDatasetError(NotImplementedError):
    """The dataset's values cannot be read by this engine (the message says why)."""


def read_selection(store: RangeStore, dataset: DatasetIndex, selection: Selection) -> Any:
    """The values of ``selection`` of ``dataset``, as h5py's ``dataset[...]`` returns them."""
    return read_selections(store, [(dataset, selection)])[0]


def read_selections(
    store: RangeStore, requests: Sequence[tuple[DatasetIndex, Selection]]
) -> list[Any]:
    """The values of several ``(dataset, selection)`` of one file, with one fetch for all."""
    results: list[Any] = [None] * len(requests)
    outputs: list[tuple[int, DatasetIndex, Selection, np.ndarray]] = []
    work: list[tuple[Piece, DatasetIndex, np.ndarray]] = []
    for number, (dataset, selection) in enumerate(requests):
        if dataset.inline is not None:
            results[number] = selection.apply(dataset.inline_values())
            continue
        if dataset.unreadable is not None:
            raise UnreadableDatasetError(f"{dataset.path}: {dataset.unreadable}")
        check_supported(dataset.filters, dataset.path)
        plan = plan_read(dataset, selection)
        out = _allocate(dataset, selection, plan.needs_fill)
        outputs.append((number, dataset, selection, out))
        work += [(piece, dataset, out) for piece in plan.pieces if piece.offset is not None]
    if work:
        bodies = store.fetch([(piece.offset, piece.size) for piece, _, _ in work], views=True)
        _place_all(list(zip(work, bodies, strict=True)))
    for number, _, selection, out in outputs:
        results[number] = selection.finish(out)
    return results


def _allocate(dataset: DatasetIndex, selection: Selection, needs_fill: bool) -> np.ndarray:
    if needs_fill:
        return np.full(selection.counts, dataset.fill(), dtype=dataset.dtype)
    return np.empty(selection.counts, dtype=dataset.dtype)


def _place_all(work: list[tuple[tuple[Piece, DatasetIndex, np.ndarray], bytes]]) -> None:
    def place(batch: list[tuple[tuple[Piece, DatasetIndex, np.ndarray], bytes]]) -> None:
        for (piece, dataset, out), body in batch:
            raw = decode_chunk(
                body, dataset.filters, piece.filter_mask, dataset.dtype.itemsize, path=dataset.path
            )
            values = _as_array(raw, dataset.dtype, piece.shape, dataset.path)
            out[piece.target] = values[outer_index(piece.source)]

    if len(work) > 1 and sum(len(body) for _, body in work) >= _THREADED_BYTES:
        # A few batches per thread: one future per chunk would cost more than small chunks'
        # decoding. list() so that the first error (corrupt chunk, short data) is raised here.
        count = min(len(work), _WORKERS * 4)
        list(_pool().map(place, [work[i::count] for i in range(count)]))
    else:
        place(work)


def _as_array(raw: Any, dtype: np.dtype, shape: tuple[int, ...], path: str) -> np.ndarray:
    expected = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
    buffer = memoryview(raw).cast("B")
    if buffer.nbytes < expected:
        raise OSError(
            f"{path}: a chunk decoded to {buffer.nbytes} bytes, expected {expected}; "
            "the file or its index is damaged"
        )
    return np.frombuffer(buffer[:expected], dtype=dtype).reshape(shape)


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="s3ecephys-decode")
