"""Spikes around stimulus presentations: counts, times and per-condition statistics.

The results match AllenSDK 2.16.2's ``EcephysSession`` methods of the same names. The work is
done per unit with ``np.searchsorted`` over all presentations at once, never per spike or per
presentation. The spike mapping may have a ``prefetch(unit_ids)`` method (as a session's
``spike_times`` does): it is called once, so that all units' spikes arrive in one round of
requests.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr


def structurewise_unit_counts(units: pd.DataFrame) -> pd.Series:
    """Units per ``ecephys_structure_acronym``, most numerous first.

    Named and indexed as pandas 1.5.3 (AllenSDK's) names a ``value_counts`` result: the Series is
    named after the column and its index is unnamed.
    """
    counts = units["ecephys_structure_acronym"].value_counts()
    counts.name = "ecephys_structure_acronym"
    counts.index.name = None
    return counts


def presentationwise_spike_counts(
    spike_times_mapping: Mapping[int, np.ndarray],
    presentations: pd.DataFrame,
    bin_edges: Sequence[float] | np.ndarray,
    unit_ids: Sequence[int] | np.ndarray,
    binarize: bool = False,
    dtype: Any = None,
    large_bin_size_threshold: float = 0.001,
    time_domain_callback: Callable[[np.ndarray], np.ndarray] | None = None,
) -> xr.DataArray:
    """Spike counts per presentation, time bin and unit: DataArray ``spike_counts`` with dims
    ``(stimulus_presentation_id, time_relative_to_stimulus_onset, unit_id)``.

    ``bin_edges`` are seconds relative to each presentation's start. A bin counts the spikes in
    ``[left, right]``, both edges included, so a spike exactly on an inner edge counts in both
    neighbouring bins (AllenSDK's rule). The time coordinate holds the bin centres. Counts are
    ``uint16`` (``uint8`` 0/1 when ``binarize``) unless ``dtype`` says otherwise; binarizing bins
    wider than ``large_bin_size_threshold`` warns. ``time_domain_callback`` may rewrite the
    (presentations × edges) array of absolute edges before counting; edges that then decrease
    along a row raise ``ValueError``, and rows overlapping the next one warn.
    """
    bin_edges = np.asarray(bin_edges, dtype=np.float64)
    largest_bin = np.amax(np.diff(bin_edges))
    if binarize and largest_bin > large_bin_size_threshold:
        warnings.warn(
            f"You've elected to binarize spike counts, but your maximum bin width is "
            f"{largest_bin:2.5f} seconds. Binarizing spike counts with such a large bin width "
            "can cause significant loss of accuracy! Please consider only binarizing spike "
            f"counts when your bins are <= {large_bin_size_threshold} seconds wide.",
            stacklevel=2,
        )
    onsets = presentations["start_time"].to_numpy(dtype=np.float64)
    domain = onsets[:, None] + bin_edges[None, :]
    if time_domain_callback is not None:
        domain = np.asarray(time_domain_callback(domain))
    out_of_order = np.argwhere(np.diff(domain, axis=1) < 0)
    if len(out_of_order):
        raise ValueError(
            "The time domain specified contains out-of-order bin edges at (row, column) "
            f"indices: {[tuple(int(i) for i in pair) for pair in out_of_order[:10]]}"
        )
    gaps = domain[1:, 0] - domain[:-1, -1]
    overlapping = np.flatnonzero(gaps < 0)
    if len(overlapping):
        warnings.warn(
            "You've specified some overlapping time intervals between neighboring rows: "
            f"{[(int(row), int(row) + 1) for row in overlapping[:10]]}, with a maximum overlap "
            f"of {np.abs(np.min(gaps))} seconds.",
            stacklevel=2,
        )
    unit_ids = np.asarray(unit_ids)
    if dtype is None:
        dtype = np.uint8 if binarize else np.uint16
    counts = np.zeros((domain.shape[0], domain.shape[1] - 1, unit_ids.size), dtype=dtype)
    _prefetch(spike_times_mapping, unit_ids)
    lefts, rights = domain[:, :-1], domain[:, 1:]
    for column, unit_id in enumerate(unit_ids):
        spikes = np.asarray(spike_times_mapping[unit_id])
        in_bin = np.searchsorted(spikes, rights, side="right") - np.searchsorted(
            spikes, lefts, side="left"
        )
        counts[:, :, column] = in_bin > 0 if binarize else in_bin
    return xr.DataArray(
        counts,
        name="spike_counts",
        dims=("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id"),
        coords={
            "stimulus_presentation_id": presentations.index.to_numpy(),
            "time_relative_to_stimulus_onset": bin_edges[:-1] + np.diff(bin_edges) / 2,
            "unit_id": unit_ids,
        },
    )


def presentationwise_spike_times(
    spike_times_mapping: Mapping[int, np.ndarray],
    presentations: pd.DataFrame,
    unit_ids: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Every spike that falls in a presentation, ``start < t <= stop``.

    Indexed by ``spike_time`` (sorted; equal times keep unit order), with columns
    ``stimulus_presentation_id``, ``unit_id`` and ``time_since_stimulus_presentation_onset``.
    ``unit_ids=None`` means every unit of the mapping. A spike belongs to one presentation at
    most: with overlapping presentations it goes where AllenSDK's bisection over the interleaved
    start and stop times puts it (a presentation that contains it).
    """
    units = _resolve_units(spike_times_mapping, unit_ids)
    presentation_ids = presentations.index.to_numpy()
    onsets = presentations["start_time"].to_numpy(dtype=np.float64)
    bounds = _interleaved_bounds(presentations)
    _prefetch(spike_times_mapping, units)
    times, owners, emitters = [], [], []
    for unit_id in units:
        spikes = np.asarray(spike_times_mapping[unit_id])
        inside, position = _locate_spikes(spikes, bounds)
        times.append(spikes[inside])
        owners.append(position)
        emitters.append(np.full(position.size, unit_id, dtype=np.int64))
    if not times:
        times, owners, emitters = [np.empty(0)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    spike_time = np.concatenate(times).astype(np.float64, copy=False)
    owner = np.concatenate(owners)
    order = np.argsort(spike_time, kind="stable")
    owner = owner[order]
    return pd.DataFrame(
        {
            "stimulus_presentation_id": presentation_ids[owner].astype(np.int64),
            "unit_id": np.concatenate(emitters)[order],
            "time_since_stimulus_presentation_onset": spike_time[order] - onsets[owner],
        },
        index=pd.Index(spike_time[order], name="spike_time"),
    )


def conditionwise_spike_statistics(
    spike_times_mapping: Mapping[int, np.ndarray],
    presentations: pd.DataFrame,
    unit_ids: Sequence[int] | np.ndarray | None = None,
    use_rates: bool = False,
) -> pd.DataFrame:
    """Per unit and stimulus condition: spikes per presentation summarised over the condition's
    presentations.

    Spikes are counted as :func:`presentationwise_spike_times` assigns them. Columns
    ``spike_count`` (total; counts only), ``stimulus_presentation_count``, ``spike_mean``,
    ``spike_std`` (ddof=1, NaN for a single presentation) and ``spike_sem``; with ``use_rates``
    the statistics are of count / duration. Indexed by ``(unit_id, stimulus_condition_id)``,
    ordered by condition, then unit. Presentations without a condition (invalid ones) are left
    out. With ``unit_ids=None`` only units that spiked in these presentations appear, as in
    AllenSDK; listed units appear even when silent.
    """
    units = _resolve_units(spike_times_mapping, unit_ids)
    bounds = _interleaved_bounds(presentations)
    _prefetch(spike_times_mapping, units)
    counts = np.zeros((len(presentations), len(units)), dtype=np.int64)
    for column, unit_id in enumerate(units):
        _, position = _locate_spikes(np.asarray(spike_times_mapping[unit_id]), bounds)
        counts[:, column] = np.bincount(position, minlength=len(presentations))
    if unit_ids is None:
        spiked = counts.any(axis=0)
        units, counts = units[spiked], counts[:, spiked]
    by_unit = np.argsort(units, kind="stable")
    units, counts = units[by_unit], counts[:, by_unit]

    conditions = presentations["stimulus_condition_id"].to_numpy()
    valid = ~pd.isna(conditions)
    statistics = ["stimulus_presentation_count", "spike_mean", "spike_std", "spike_sem"]
    columns = statistics if use_rates else ["spike_count", *statistics]
    if not valid.any() or not units.size:
        index = pd.MultiIndex.from_arrays(
            [np.empty(0, np.int64), np.empty(0, np.int64)],
            names=["unit_id", "stimulus_condition_id"],
        )
        return pd.DataFrame({c: np.empty(0) for c in columns}, index=index)
    condition_ids, group = np.unique(conditions[valid].astype(np.float64), return_inverse=True)
    condition_ids = condition_ids.astype(presentations["stimulus_condition_id"].dtype)
    by_group = np.argsort(group, kind="stable")
    group, counts = group[by_group], counts[valid][by_group]
    values = counts.astype(np.float64)
    if use_rates:
        durations = presentations["duration"].to_numpy()[valid][by_group].astype(np.float64)
        values = values / durations[:, None]
    # Groups are contiguous now: sum each with reduceat, then a second pass for the spread
    # (two passes, like numpy's std).
    firsts = np.flatnonzero(np.r_[True, np.diff(group) != 0])
    n = np.bincount(group)
    mean = np.add.reduceat(values, firsts, axis=0) / n[:, None]
    squares = np.add.reduceat((values - mean[group]) ** 2, firsts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(squares / (n[:, None] - 1))
    std[n == 1] = np.nan

    table = {
        "spike_count": np.add.reduceat(counts, firsts, axis=0).ravel(),
        "stimulus_presentation_count": np.repeat(n, units.size).astype(np.int64),
        "spike_mean": mean.ravel(),
        "spike_std": std.ravel(),
        "spike_sem": (std / np.sqrt(n)[:, None]).ravel(),
    }
    index = pd.MultiIndex.from_arrays(
        [np.tile(units, condition_ids.size), np.repeat(condition_ids, units.size)],
        names=["unit_id", "stimulus_condition_id"],
    )
    return pd.DataFrame({c: table[c] for c in columns}, index=index)


def _resolve_units(
    spike_times_mapping: Mapping[int, np.ndarray], unit_ids: Sequence[int] | np.ndarray | None
) -> np.ndarray:
    ids = list(spike_times_mapping) if unit_ids is None else unit_ids
    return np.asarray(ids, dtype=np.int64).reshape(-1)


def _prefetch(spike_times_mapping: Mapping[int, np.ndarray], unit_ids: np.ndarray) -> None:
    prefetch = getattr(spike_times_mapping, "prefetch", None)
    if prefetch is not None and len(unit_ids):
        prefetch([int(unit_id) for unit_id in unit_ids])


def _interleaved_bounds(presentations: pd.DataFrame) -> np.ndarray:
    """``start_0, stop_0, start_1, stop_1, …`` in the presentations' order."""
    bounds = np.empty(2 * len(presentations), dtype=np.float64)
    bounds[0::2] = presentations["start_time"].to_numpy(dtype=np.float64)
    bounds[1::2] = presentations["stop_time"].to_numpy(dtype=np.float64)
    return bounds


def _locate_spikes(spikes: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which spikes fall in a presentation, and the position of that presentation.

    A spike lands at an even slot of the interleaved bounds when ``start < t <= stop``. The
    bisection runs over the unit's whole (sorted) spike array, as AllenSDK's does, so that even
    unsorted bounds (overlapping presentations) give the same answer.
    """
    if not bounds.size:
        return np.zeros(spikes.shape, dtype=bool), np.empty(0, dtype=np.int64)
    slot = np.searchsorted(bounds, spikes) - 1
    inside = slot % 2 == 0
    return inside, slot[inside] // 2
