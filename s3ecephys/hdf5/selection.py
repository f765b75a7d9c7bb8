"""Index expressions (``ds[1250:2500, :]``, ``ds[..., [0, 3]]``, ``ds[()]``) made regular.

Every axis of a :class:`Selection` holds ascending coordinates, as a slice with a positive step or
a sorted array without repeats, which is what the planner needs. What makes the result differ from
that (a negative step, an unsorted or repeated list, integer indices that drop an axis) is kept
aside and applied by :meth:`Selection.finish` after reading. The accepted expressions are h5py's:
integers, slices (any step), Ellipsis, one list/array of integers or booleans along one axis.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

AxisIndex = slice | np.ndarray


@dataclass(frozen=True)
class Selection:
    """A regular selection of a dataset of shape ``shape``.

    ``axes[i]`` selects ascending coordinates along axis i (``slice(start, stop, step)`` with
    ``0 <= start <= stop`` and ``step >= 1``, or a sorted int64 array); ``counts[i]`` is how many.
    ``reorder[i]`` (a slice or take-array, or None) turns the ascending result into the order
    asked for; ``drop[i]`` marks an axis indexed by an integer. ``scalar`` is h5py's rule that
    ``ds[()]`` of a scalar dataset is a scalar (``ds[...]`` is a 0-d array).
    """

    shape: tuple[int, ...]
    axes: tuple[AxisIndex, ...]
    counts: tuple[int, ...]
    reorder: tuple[AxisIndex | None, ...]
    drop: tuple[bool, ...]
    scalar: bool = False

    @property
    def size(self) -> int:
        return int(np.prod(self.counts, dtype=np.int64))

    @property
    def result_shape(self) -> tuple[int, ...]:
        """Shape of what :meth:`finish` returns."""
        return tuple(
            len(index) if isinstance(index, np.ndarray) else count
            for count, index, dropped in zip(self.counts, self.reorder, self.drop, strict=True)
            if not dropped
        )

    def finish(self, data: np.ndarray) -> Any:
        """The result asked for, from ``data`` of shape ``counts`` (ascending coordinates)."""
        for axis, index in enumerate(self.reorder):
            if index is not None:
                data = data[(slice(None),) * axis + (index,)]
        if any(self.drop):
            data = data[tuple(0 if dropped else slice(None) for dropped in self.drop)]
        return data[()] if self.scalar else data

    def apply(self, values: np.ndarray) -> Any:
        """The selection of an in-memory array holding the whole dataset."""
        # (values[()] of a 0-d array is its element, not an array: ``...`` keeps the array.)
        return self.finish(values[outer_index(self.axes)] if self.axes else values[...])

    def shifted(self, origin: tuple[int, ...], shape: tuple[int, ...]) -> Selection:
        """This selection (made on a block at ``origin``) in the coordinates of a dataset of
        ``shape``."""
        axes = tuple(_shift(index, start) for index, start in zip(self.axes, origin, strict=True))
        return Selection(shape, axes, self.counts, self.reorder, self.drop, self.scalar)

    def bounds(self) -> tuple[tuple[int, int], ...]:
        """Per axis, the half-open range of coordinates selected (empty axes give (0, 0))."""
        return tuple(_bounds(index) for index in self.axes)


def select(selection: Any, shape: tuple[int, ...]) -> Selection:
    """The :class:`Selection` for an index expression on an array of ``shape``.

    Raises ``IndexError`` for out-of-range indices and ``TypeError`` for expressions h5py does
    not accept either (several index arrays, ``None``/newaxis, floats).
    """
    items = list(selection) if isinstance(selection, tuple) else [selection]
    ellipses = sum(item is Ellipsis for item in items)
    if ellipses > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if ellipses:
        at = next(i for i, item in enumerate(items) if item is Ellipsis)
        items[at : at + 1] = [slice(None)] * (len(shape) - len(items) + 1)
    if len(items) > len(shape):
        raise IndexError(
            f"too many indices: array is {len(shape)}-dimensional, but {len(items)} were given"
        )
    items += [slice(None)] * (len(shape) - len(items))

    axes, counts, reorders, drops = [], [], [], []
    arrays = 0
    for axis, (item, length) in enumerate(zip(items, shape, strict=True)):
        if isinstance(item, slice):
            index, count, reorder = _select_slice(item, length)
            dropped = False
        elif _is_integer(item):
            position = _wrap(int(item), length, axis)
            index, count, reorder, dropped = slice(position, position + 1, 1), 1, None, True
        elif item is None:
            raise TypeError("None (numpy.newaxis) is not supported in HDF5 selections")
        else:
            arrays += 1
            if arrays > 1:
                raise TypeError("only one index list or array is allowed, as in h5py")
            index, count, reorder = _select_array(item, length, axis)
            dropped = False
        axes.append(index)
        counts.append(count)
        reorders.append(reorder)
        drops.append(dropped)
    scalar = not shape and isinstance(selection, tuple) and not selection
    return Selection(
        tuple(shape), tuple(axes), tuple(counts), tuple(reorders), tuple(drops), scalar
    )


def outer_index(axes: tuple[AxisIndex, ...]) -> tuple[Any, ...]:
    """A numpy index that selects ``axes`` as an outer product (one array at most: as is)."""
    if sum(isinstance(index, np.ndarray) for index in axes) <= 1:
        return tuple(axes)
    return np.ix_(*(_as_array(index) for index in axes))


def regular(coordinates: np.ndarray) -> AxisIndex:
    """Ascending unique ``coordinates`` as a slice when evenly spaced (faster to index with)."""
    if len(coordinates) == 0:
        return slice(0, 0, 1)
    first = int(coordinates[0])
    if len(coordinates) == 1:
        return slice(first, first + 1, 1)
    steps = np.diff(coordinates)
    step = int(steps[0])
    if np.all(steps == step):
        return slice(first, int(coordinates[-1]) + 1, step)
    return coordinates


def _select_slice(item: slice, length: int) -> tuple[slice, int, AxisIndex | None]:
    start, stop, step = item.indices(length)
    count = len(range(start, stop, step))
    if count == 0:
        return slice(0, 0, 1), 0, None
    last = start + (count - 1) * step
    if step > 0:
        return slice(start, last + 1, step), count, None
    # Read ascending, then flip: the planner only walks coordinates upwards.
    return slice(last, start + 1, -step), count, slice(None, None, -1)


def _select_array(item: Any, length: int, axis: int) -> tuple[AxisIndex, int, AxisIndex | None]:
    array = np.asarray(item)
    if array.ndim != 1:
        raise TypeError(f"index arrays must be one-dimensional (axis {axis} got {array.ndim}-d)")
    if array.dtype == bool:
        if len(array) != length:
            raise IndexError(
                f"boolean index of length {len(array)} does not match axis {axis} of "
                f"length {length}"
            )
        array = np.flatnonzero(array)
    elif array.size == 0:
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise TypeError(f"index arrays must hold integers or booleans, not {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < -length or array.max() >= length):
        raise IndexError(f"index out of range for axis {axis} with size {length}")
    array = np.where(array < 0, array + length, array)
    unique, inverse = np.unique(array, return_inverse=True)
    reorder = None if len(unique) == len(array) and np.all(unique == array) else inverse
    return regular(unique), len(unique), reorder


def _is_integer(item: Any) -> bool:
    if isinstance(item, bool | np.bool_):
        return False
    if isinstance(item, numbers.Integral):
        return True
    return isinstance(item, np.ndarray) and item.ndim == 0 and item.dtype.kind in "iu"


def _wrap(position: int, length: int, axis: int) -> int:
    if not -length <= position < length:
        raise IndexError(f"index {position} is out of bounds for axis {axis} with size {length}")
    return position + length if position < 0 else position


def _shift(index: AxisIndex, start: int) -> AxisIndex:
    if isinstance(index, slice):
        return slice(index.start + start, index.stop + start, index.step)
    return index + start


def _bounds(index: AxisIndex) -> tuple[int, int]:
    if isinstance(index, slice):
        return (index.start, index.stop) if index.stop > index.start else (0, 0)
    return (int(index[0]), int(index[-1]) + 1) if len(index) else (0, 0)


def _as_array(index: AxisIndex) -> np.ndarray:
    if isinstance(index, slice):
        return np.arange(index.start, index.stop, index.step)
    return index
