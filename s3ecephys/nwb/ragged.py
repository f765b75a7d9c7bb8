"""Ragged NWB columns (``spike_times``, ``spike_amplitudes``, ``waveform_mean``) as lazy mappings.

In the Allen session files these columns are contiguous and uncompressed, ~2.8 GB together, so
one unit's values are one byte range: a row is read when it is first asked for, and many rows
asked for together (``prefetch``) travel in one concurrent fetch. Nothing reads a whole column.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from s3ecephys.hdf5.array import Dataset

# Rows fetched per batch when a whole column is iterated: bounds the bytes in flight at once.
_ITERATION_BATCH = 256


class RaggedColumn(Mapping[int, np.ndarray]):
    """``row id -> values`` of one ragged column; rows are fetched on demand and kept.

    ``data`` is the column's dataset (engine or h5py), ``ends`` its ``_index`` values (each row's
    exclusive end, any integer width), ``ids`` the table's ids in row order.
    """

    def __init__(self, data: Any, ends: Any, ids: Iterable[int]):
        self._data = data
        ends = np.asarray(ends, dtype=np.int64)
        self._ids = [int(i) for i in ids]
        if len(ends) != len(self._ids):
            raise ValueError(
                f"ragged column {getattr(data, 'name', '')!r} has {len(ends)} index entries "
                f"for {len(self._ids)} rows"
            )
        starts = np.concatenate([[0], ends[:-1]])
        self._bounds = dict(zip(self._ids, zip(starts.tolist(), ends.tolist(), strict=True),
                                strict=True))
        self._rows: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._bounds

    def __getitem__(self, key: int) -> np.ndarray:
        key = int(key)
        if key not in self._rows:
            if key not in self._bounds:
                raise KeyError(key)
            self.prefetch([key])
        return self._rows[key]

    def bounds(self, key: int) -> tuple[int, int]:
        """Start and end (exclusive) of a row in the column's data."""
        return self._bounds[int(key)]

    def prefetch(self, keys: Iterable[int]) -> None:
        """Read every row of ``keys`` not read yet, together."""
        missing = [int(k) for k in dict.fromkeys(keys) if int(k) not in self._rows]
        unknown = [k for k in missing if k not in self._bounds]
        if unknown:
            raise KeyError(f"no row(s) {unknown[:10]} in this column")
        if not missing:
            return
        selections = [slice(*self._bounds[key]) for key in missing]
        if isinstance(self._data, Dataset):
            values = self._data.read_many(selections)  # one concurrent wave
        else:
            values = [self._data[selection] for selection in selections]
        self._rows.update(zip(missing, values, strict=True))

    def values(self) -> Iterator[np.ndarray]:  # type: ignore[override]
        for _, value in self.items():
            yield value

    def items(self) -> Iterator[tuple[int, np.ndarray]]:  # type: ignore[override]
        for start in range(0, len(self._ids), _ITERATION_BATCH):
            batch = self._ids[start : start + _ITERATION_BATCH]
            self.prefetch(batch)
            for key in batch:
                yield key, self._rows[key]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} rows, {len(self._rows)} read>"
