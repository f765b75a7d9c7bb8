"""Event-aligned LFP windows: ``(presentation, time_from_onset, channel)`` on a common time base.

Each probe samples on its own clock, so the probes of a session (and of many sessions) have
different ``time`` coordinates. Aligning each to the same events on the same
``time_from_onset`` grid puts them on one time base, as AllenSDK's tutorials do by hand
(``lfp.sel(time=onset + window, method="nearest")``). The selection stays lazy: one vectorised
index into the dask array, so only the chunks around the events are ever read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from s3ecephys.allen.dataset_tree import lfp_leaves

Onsets = np.ndarray | pd.Series | xr.DataArray | list[float]


def _onset_values(onsets: Any) -> tuple[np.ndarray, np.ndarray]:
    """Onset times and presentation labels (a Series' or DataArray's index, else 0..n-1)."""
    if isinstance(onsets, pd.Series):
        return onsets.to_numpy(dtype=np.float64), onsets.index.to_numpy()
    if isinstance(onsets, xr.DataArray):
        if onsets.ndim != 1:
            raise ValueError(f"onsets must be one-dimensional, got dims {onsets.dims}")
        labels = onsets[onsets.dims[0]].to_numpy()
        return onsets.to_numpy().astype(np.float64), labels
    values = np.asarray(onsets, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"onsets must be one-dimensional, got shape {values.shape}")
    return values, np.arange(len(values))


def nearest_samples(times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the sample nearest each target time (``times`` sorted ascending)."""
    right = np.clip(np.searchsorted(times, targets), 1, len(times) - 1)
    left = right - 1
    closer_left = (targets - times[left]) <= (times[right] - targets)
    return np.where(closer_left, left, right)


def align_lfp(
    lfp: xr.DataArray,
    onsets: Onsets,
    window: tuple[float, float],
    step: float | None = None,
) -> xr.DataArray:
    """``lfp`` (time, ...) around each onset: ``(presentation, time_from_onset, ...)``, lazy.

    ``time_from_onset`` runs from ``window[0]`` (included) to ``window[1]`` (excluded) by
    ``step`` (default: the probe's median sample interval); each point takes the sample nearest
    ``onset + time_from_onset``, or NaN when that is more than one step outside the recording
    (or the selected time range).
    """
    if "time" not in lfp.dims:
        raise ValueError(f"the array has no 'time' dimension (dims {lfp.dims})")
    start, stop = (float(w) for w in window)
    if not stop > start:
        raise ValueError(f"window must be (start, stop) with stop > start, got {window}")
    times = lfp["time"].to_numpy()
    if len(times) < 2:
        raise ValueError("the LFP has fewer than two samples in time: nothing to align")
    if step is None:
        step = float(np.median(np.diff(times)))
    offsets = np.arange(round((stop - start) / step)) * step + start
    onset_times, labels = _onset_values(onsets)
    targets = onset_times[:, None] + offsets[None, :]
    picks = nearest_samples(times, targets)
    outside = (targets < times[0] - step) | (targets > times[-1] + step)
    dims = ("presentation", "time_from_onset")
    aligned = lfp.isel(time=xr.DataArray(picks, dims=dims)).drop_vars("time")
    aligned = aligned.assign_coords(presentation=labels, time_from_onset=offsets)
    if outside.any():
        aligned = aligned.where(xr.DataArray(~outside, dims=dims))
    return aligned


def _session_onsets(node: xr.DataTree, onsets: Any) -> Any:
    """The onsets a probe node aligns to: given for all, given per session id, or its session
    node's presentations (``open_lfp(..., stimulus_name=...)``)."""
    session_id = node.attrs.get("ecephys_session_id")
    if isinstance(onsets, Mapping):
        if session_id not in onsets:
            raise KeyError(f"no onsets given for session {session_id} (node {node.path})")
        return onsets[session_id]
    if onsets is not None:
        return onsets
    parent = node.parent
    if parent is None or "start_time" not in parent.coords:
        raise ValueError(
            f"{node.path}: no onsets given and no presentations on its session node; open the "
            "tree with stimulus_name=... or pass onsets"
        )
    return parent["start_time"]


def align_to_events(
    data: xr.DataArray | xr.DataTree,
    onsets: Onsets | Mapping[int, Onsets] | None = None,
    window: tuple[float, float] = (-0.1, 0.5),
    *,
    step: float | None = None,
) -> xr.DataArray | xr.DataTree:
    """LFP windows around events, ``(presentation, time_from_onset, channel)``, lazily.

    ``data`` is one probe's LFP (``session.get_lfp``) or a tree of ``cache.open_lfp``. For a
    tree, each probe is aligned to ``onsets`` if one array is given, to ``onsets[session_id]``
    for a mapping, else to the presentations the tree was opened with (``stimulus_name=``);
    every probe gets the same ``time_from_onset`` grid (``step`` default: the first probe's
    sample interval), so probes and sessions line up. Onsets as a Series (e.g.
    ``presentations["start_time"]``) label ``presentation`` with its index.
    """
    if isinstance(data, xr.DataArray):
        return align_lfp(data, _require(onsets), window, step)
    leaves = lfp_leaves(data)
    if not leaves:
        raise ValueError("the tree has no node with an 'LFP' variable")
    if step is None:
        step = float(np.median(np.diff(leaves[0]["time"].to_numpy())))
    # Presentations of the session nodes would clash with other onsets' ``presentation``.
    keep = onsets is None
    aligned = {
        node.path: node.to_dataset(inherit=False) if keep else xr.Dataset(attrs=node.attrs)
        for node in data.subtree
    }
    for node in leaves:
        lfp = align_lfp(node["LFP"], _session_onsets(node, onsets), window, step)
        dataset = node.to_dataset(inherit=False).drop_vars("LFP").drop_dims("time")
        aligned[node.path] = dataset.assign(LFP=lfp)
    return xr.DataTree.from_dict(aligned)


def _require(onsets: Any) -> Any:
    if onsets is None or isinstance(onsets, Mapping):
        raise ValueError("aligning one DataArray needs one array of onsets")
    return onsets
