"""From a selection to the byte ranges that hold it, without reading anything.

A :class:`ReadPlan` lists :class:`Piece` s: one stored chunk (or one run of a contiguous dataset),
where its bytes are, and which part of it lands where in the result. Chunked data is read whole
chunk by whole chunk (a compressed chunk cannot be cut). Contiguous data is read run by run: one
byte range per run of consecutive selected positions, neighbouring runs merged when the gap between
them is smaller than ``gap`` bytes (skipping a small gap costs a request, reading it costs almost
nothing), so no selection turns into per-element requests.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from s3ecephys.hdf5.index import DatasetIndex
from s3ecephys.hdf5.selection import AxisIndex, Selection, regular

# Below this many bytes a gap inside contiguous data is read through rather than skipped.
DEFAULT_GAP = 64 * 1024


@dataclass(frozen=True)
class Piece:
    """One unit of stored data a read needs.

    ``offset``/``size`` locate its stored bytes (``offset`` None: never written, the fill value);
    ``filter_mask`` says which filters were skipped for it; decoded, it is an array of ``shape``
    whose part ``source`` goes to ``target`` in the (ascending) result.
    """

    offset: int | None
    size: int
    filter_mask: int
    shape: tuple[int, ...]
    source: tuple[AxisIndex, ...]
    target: tuple[slice, ...]


@dataclass(frozen=True)
class ReadPlan:
    """The pieces one selection needs; ``ranges`` is what a single fetch must ask for."""

    selection: Selection
    pieces: tuple[Piece, ...]

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return [(p.offset, p.size) for p in self.pieces if p.offset is not None and p.size]

    @property
    def bytes_needed(self) -> int:
        """Stored bytes of the chunks (or runs) the selection touches."""
        return sum(size for _, size in self.ranges)

    @property
    def needs_fill(self) -> bool:
        return any(piece.offset is None for piece in self.pieces)


def plan_read(dataset: DatasetIndex, selection: Selection, *, gap: int = DEFAULT_GAP) -> ReadPlan:
    """The plan for reading ``selection`` of a contiguous or chunked ``dataset``."""
    if selection.size == 0:
        return ReadPlan(selection, ())
    if dataset.layout == "chunked":
        return ReadPlan(selection, tuple(_chunked_pieces(dataset, selection)))
    if dataset.layout == "contiguous":
        return ReadPlan(selection, tuple(_contiguous_pieces(dataset, selection, gap)))
    raise ValueError(f"{dataset.path}: no byte ranges for {dataset.layout} layout")


# -- chunked -------------------------------------------------------------------------------------


def _chunked_pieces(dataset: DatasetIndex, selection: Selection) -> list[Piece]:
    chunks = dataset.chunks
    assert chunks is not None and dataset.chunk_table is not None
    per_axis = [
        _axis_chunks(index, length) for index, length in zip(selection.axes, chunks, strict=True)
    ]
    combinations = list(itertools.product(*per_axis))
    grid = np.array([[part[0] for part in combo] for combo in combinations], dtype=np.int64)
    table = dataset.chunk_table
    rows = table.lookup(grid.reshape(len(combinations), len(chunks)))
    pieces = []
    for combo, row in zip(combinations, rows.tolist(), strict=True):
        source = tuple(part[1] for part in combo)
        target = tuple(part[2] for part in combo)
        if row < 0:
            pieces.append(Piece(None, 0, 0, chunks, source, target))
        else:
            pieces.append(
                Piece(
                    int(table.offsets[row]),
                    int(table.sizes[row]),
                    int(table.filter_masks[row]),
                    chunks,
                    source,
                    target,
                )
            )
    return pieces


def _axis_chunks(index: AxisIndex, chunk: int) -> list[tuple[int, AxisIndex, slice]]:
    """Per chunk touched along one axis: (chunk number, positions inside it, result positions)."""
    if isinstance(index, np.ndarray):
        numbers = index // chunk
        starts = np.flatnonzero(np.diff(numbers)) + 1
        edges = [0, *starts.tolist(), len(index)]
        return [
            (
                int(numbers[first]),
                regular(index[first:last] - int(numbers[first]) * chunk),
                slice(first, last),
            )
            for first, last in itertools.pairwise(edges)
        ]
    start, step = index.start, index.step
    count = len(range(index.start, index.stop, step))
    if step >= chunk:
        # At most one selected position per chunk: walk the positions, not the chunks between.
        parts = []
        for k in range(count):
            number, inside = divmod(start + k * step, chunk)
            parts.append((number, slice(inside, inside + 1, 1), slice(k, k + 1)))
        return parts
    parts = []
    last = start + (count - 1) * step
    for number in range(start // chunk, last // chunk + 1):
        low, high = number * chunk, (number + 1) * chunk
        first_k = max(0, -(-(low - start) // step))
        end_k = min(count, -(-(high - start) // step))
        if first_k >= end_k:
            continue
        inside = slice(start + first_k * step - low, start + (end_k - 1) * step - low + 1, step)
        parts.append((number, inside, slice(first_k, end_k)))
    return parts


# -- contiguous ----------------------------------------------------------------------------------


def _contiguous_pieces(dataset: DatasetIndex, selection: Selection, gap: int) -> list[Piece]:
    shape = selection.shape
    itemsize = dataset.dtype.itemsize
    ndim = len(shape)
    if dataset.offset is None:
        return [Piece(None, 0, 0, shape, selection.axes, _whole(selection.counts))]
    if ndim == 0:
        return [Piece(dataset.offset, itemsize, 0, (), (), ())]
    # Bytes between consecutive positions along each axis.
    strides = [itemsize * int(np.prod(shape[axis + 1 :], dtype=np.int64)) for axis in range(ndim)]
    # Split on the first axis whose positions are small enough to read whole: axes before it are
    # walked position by position, the axes after it are read entirely.
    split = next((axis for axis in range(ndim) if strides[axis] <= gap), ndim - 1)
    runs = _runs(selection.axes[split], max(0, gap // strides[split]))
    leading = [_positions(selection.axes[axis]) for axis in range(split)]
    trailing_source = selection.axes[split + 1 :]
    trailing_target = _whole(selection.counts[split + 1 :])

    pieces = []
    for combo in itertools.product(*(enumerate(positions) for positions in leading)):
        base = dataset.offset + sum(
            position * strides[axis] for axis, (_, position) in enumerate(combo)
        )
        lead_source = (slice(0, 1, 1),) * split
        lead_target = tuple(slice(out, out + 1) for out, _ in combo)
        for first, end, inside, target in runs:
            pieces.append(
                Piece(
                    base + first * strides[split],
                    (end - first) * strides[split],
                    0,
                    (1,) * split + (end - first,) + shape[split + 1 :],
                    lead_source + (inside,) + tuple(trailing_source),
                    lead_target + (target,) + trailing_target,
                )
            )
    return pieces


def _runs(index: AxisIndex, max_gap: int) -> list[tuple[int, int, AxisIndex, slice]]:
    """Runs of positions read as one range: (first, end, positions inside the run, result
    positions). Positions closer than ``max_gap`` unselected ones share a run."""
    if isinstance(index, slice):
        count = len(range(index.start, index.stop, index.step))
        if index.step - 1 <= max_gap:
            end = index.start + (count - 1) * index.step + 1
            return [(index.start, end, slice(0, end - index.start, index.step), slice(0, count))]
        return [
            (position, position + 1, slice(0, 1, 1), slice(k, k + 1))
            for k, position in enumerate(range(index.start, index.stop, index.step))
        ]
    breaks = np.flatnonzero(np.diff(index) - 1 > max_gap) + 1
    edges = [0, *breaks.tolist(), len(index)]
    runs = []
    for first, last in itertools.pairwise(edges):
        low = int(index[first])
        runs.append(
            (low, int(index[last - 1]) + 1, regular(index[first:last] - low), slice(first, last))
        )
    return runs


def _positions(index: AxisIndex) -> list[int]:
    if isinstance(index, slice):
        return list(range(index.start, index.stop, index.step))
    return index.tolist()


def _whole(counts: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(0, count) for count in counts)
