"""The spike times of units selected across sessions, as one lazy ragged mapping.

Units are selected with the project tables (``cache.get_units()`` rows); nothing is opened until
a unit's spikes are asked for: then its session is opened (its index and units table, kept
locally after the first time) and the spikes of many units travel in one concurrent fetch per
session (``prefetch``, or iterating ``items()``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from s3ecephys.allen.dataset_tree import open_sessions, select_sessions

if TYPE_CHECKING:
    from s3ecephys.allen.cache import EcephysProjectCache
    from s3ecephys.allen.session import EcephysSession

# The session is opened with no unit filter: the units were already chosen from the tables.
_UNFILTERED = {
    "filter_by_validity": False,
    "filter_out_of_brain_units": False,
    "amplitude_cutoff_maximum": None,
    "presence_ratio_minimum": None,
    "isi_violations_maximum": None,
}
# Units fetched per round when iterating: bounds the bytes in flight.
_BATCH = 256


class UnitSpikeTimes(Mapping[int, np.ndarray]):
    """``unit id -> spike times`` (s, float64, session clock) of units of many sessions.

    ``session_of`` gives each unit's session id. ``time=(start, stop)`` keeps the spikes in that
    window. Values are read on access and kept; sessions are opened on first use.
    """

    def __init__(
        self,
        cache: EcephysProjectCache,
        units: pd.DataFrame,
        time: tuple[float, float] | None = None,
    ):
        self._cache = cache
        self.session_of: dict[int, int] = {
            int(u): int(s) for u, s in units["ecephys_session_id"].items()
        }
        self._time = time
        self._sessions: dict[int, EcephysSession] = {}
        self._values: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.session_of)

    def __iter__(self) -> Iterator[int]:
        return iter(self.session_of)

    def __contains__(self, unit_id: object) -> bool:
        try:
            return int(unit_id) in self.session_of  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return False

    def __getitem__(self, unit_id: int) -> np.ndarray:
        unit_id = int(unit_id)
        if unit_id not in self.session_of:
            raise KeyError(unit_id)
        if unit_id not in self._values:
            self.prefetch([unit_id])
        return self._values[unit_id]

    @property
    def session_ids(self) -> list[int]:
        """The sessions of the selected units, sorted."""
        return sorted(set(self.session_of.values()))

    def _open(self, session_ids: Iterable[int]) -> None:
        with self._lock:
            missing = sorted(set(session_ids) - set(self._sessions))
            self._sessions.update(open_sessions(self._cache, missing, **_UNFILTERED))

    def prefetch(self, unit_ids: Sequence[int]) -> None:
        """Read these units' spikes: one concurrent fetch per session."""
        wanted = [int(u) for u in unit_ids if int(u) not in self._values]
        unknown = [u for u in wanted if u not in self.session_of]
        if unknown:
            raise KeyError(f"unit id(s) {unknown[:10]} are not among the selected units")
        by_session: dict[int, list[int]] = {}
        for unit_id in wanted:
            by_session.setdefault(self.session_of[unit_id], []).append(unit_id)
        self._open(by_session)
        for session_id, ids in by_session.items():
            spikes = self._sessions[session_id].spike_times
            absent = [u for u in ids if u not in spikes]
            if absent:
                raise KeyError(
                    f"unit id(s) {absent[:10]} are not in session {session_id}'s file"
                )
            spikes.prefetch(ids)
            for unit_id in ids:
                self._values[unit_id] = self._window(np.asarray(spikes[unit_id]))

    def _window(self, times: np.ndarray) -> np.ndarray:
        if self._time is None:
            return times
        start, stop = np.searchsorted(times, self._time)
        return times[start:stop]

    def items(self) -> Iterator[tuple[int, np.ndarray]]:  # type: ignore[override]
        ids = list(self.session_of)
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            self.prefetch(batch)
            for unit_id in batch:
                yield unit_id, self._values[unit_id]

    def values(self) -> Iterator[np.ndarray]:  # type: ignore[override]
        for _, value in self.items():
            yield value

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}: {len(self)} units of {len(self.session_ids)} sessions, "
            f"{len(self._values)} read>"
        )


def open_unit_spike_times(
    cache: EcephysProjectCache,
    units: pd.DataFrame,
    *,
    session_types: Sequence[str] | str | None = None,
    time: tuple[float, float] | None = None,
) -> UnitSpikeTimes:
    """The spike times of ``units`` (rows of ``cache.get_units()``: index unit id, column
    ``ecephys_session_id``), of sessions of ``session_types`` if given, in ``time`` if given;
    nothing is read until a unit's spikes are used."""
    chosen = select_sessions(units, cache, session_types)
    return UnitSpikeTimes(cache, chosen, time)

