"""Per-unit ragged data (spike times, amplitudes, mean waveforms) as AllenSDK's dictionaries,
read on access.

AllenSDK builds ``{unit_id: array}`` dictionaries holding every unit's values; here the mapping
holds the unit ids only, in AllenSDK's order, and a unit's values are one byte range fetched
when first asked for (many units in one concurrent round with ``prefetch``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

# Rows fetched per batch when a whole mapping is iterated: bounds the bytes in flight.
_ITERATION_BATCH = 256


class RaggedUnitMapping(Mapping[int, Any]):
    """A ragged unit column restricted to some units, in AllenSDK's order, read on access.

    ``build(unit_id, rows)`` shapes a unit's rows (mean waveforms become DataArrays); values are
    read once and kept by the column. ``prefetch(ids)`` reads many units in one concurrent
    round; iterating ``items()``/``values()`` reads in batches of that kind.
    """

    def __init__(
        self,
        column: Any,
        unit_ids: Sequence[int] | pd.Index,
        build: Callable[[int, np.ndarray], Any] | None = None,
    ):
        self._column = column
        self._ids = [int(i) for i in unit_ids]
        self._known = set(self._ids)
        self._build = build

    def restricted_to(
        self,
        unit_ids: Sequence[int] | pd.Index,
        build: Callable[[int, np.ndarray], Any] | None = None,
    ) -> RaggedUnitMapping:
        """The units of ``unit_ids`` only, in this mapping's order (AllenSDK's way of keeping a
        session's units), sharing the column and what it has read; ``build`` shapes values."""
        kept = {int(i) for i in unit_ids}
        return RaggedUnitMapping(self._column, [i for i in self._ids if i in kept], build)

    def __getitem__(self, unit_id: int) -> Any:
        unit_id = int(unit_id)
        if unit_id not in self._known:
            raise KeyError(unit_id)
        rows = self._column[unit_id]
        return rows if self._build is None else self._build(unit_id, rows)

    def __contains__(self, unit_id: object) -> bool:
        try:
            return int(unit_id) in self._known  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def prefetch(self, unit_ids: Sequence[int]) -> None:
        """Fetch these units' values together (one concurrent request round)."""
        self._column.prefetch([int(u) for u in unit_ids if int(u) in self._known])

    def items(self) -> Iterator[tuple[int, Any]]:  # type: ignore[override]
        """``(unit id, value)`` in order, read in concurrent batches of units."""
        for start in range(0, len(self._ids), _ITERATION_BATCH):
            batch = self._ids[start : start + _ITERATION_BATCH]
            self.prefetch(batch)
            for unit_id in batch:
                yield unit_id, self[unit_id]

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        """The values in unit order, read as :meth:`items` reads them."""
        for _, value in self.items():
            yield value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} units>"
