"""Many sessions as one lazy object: the LFP of selected channels as an ``xarray.DataTree``.

Users select channels with the project tables (``cache.get_channels()`` rows, filtered as they
like); :func:`open_lfp_tree` groups them by session and probe and puts each probe's LFP, as
``EcephysSession.get_lfp`` returns it (dask-backed, picklable), restricted to those channels,
at ``/session_<id>/probe_<id>``. Opening reads only what ``get_lfp`` reads (each file's index and
the probe's timestamps, both kept locally after the first time); every reduction of the tree is
one dask graph, run by whatever scheduler is active (threads, or ``distributed`` processes).

Each probe keeps its own ``time`` coordinate (probes sample on their own clocks):
:func:`s3ecephys.allen.align.align_to_events` puts them on a common time base.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from s3ecephys.allen.cache import EcephysProjectCache
    from s3ecephys.allen.session import EcephysSession

# channels.csv columns carried onto each probe's ``channel`` dimension, under these names.
CHANNEL_COORDINATES = {
    "ecephys_structure_acronym": "structure_acronym",
    "ecephys_structure_id": "structure_id",
    "probe_vertical_position": "probe_vertical_position",
    "probe_horizontal_position": "probe_horizontal_position",
    "anterior_posterior_ccf_coordinate": "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate": "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate": "left_right_ccf_coordinate",
}
# Presentation columns kept on a session node (the stimulus parameters vary by stimulus).
PRESENTATION_COLUMNS = ("start_time", "stop_time", "duration", "stimulus_block",
                        "stimulus_condition_id")
# Sessions opened at once: each open is a few dependent round trips, so overlap them.
_OPEN_THREADS = 8
T = TypeVar("T")


def session_node(session_id: int) -> str:
    return f"session_{int(session_id)}"


def probe_node(probe_id: int) -> str:
    return f"probe_{int(probe_id)}"


def select_sessions(
    table: pd.DataFrame,
    cache: EcephysProjectCache,
    session_types: Sequence[str] | str | None,
) -> pd.DataFrame:
    """``table`` rows (channels or units of the project tables) of sessions of these types."""
    if "ecephys_session_id" not in table:
        raise ValueError(
            "the table needs an 'ecephys_session_id' column: pass rows of cache.get_channels() "
            "or cache.get_units() (filtered as you like)"
        )
    if session_types is None:
        return table
    wanted = [session_types] if isinstance(session_types, str) else list(session_types)
    sessions = cache.get_session_table()
    unknown = sorted(set(wanted) - set(sessions["session_type"]))
    if unknown:
        raise ValueError(
            f"unknown session type(s) {unknown}; known: {sorted(set(sessions['session_type']))}"
        )
    chosen = sessions.index[sessions["session_type"].isin(wanted)]
    return table[table["ecephys_session_id"].isin(chosen)]


def in_threads(
    function: Callable[[int], T], session_ids: Sequence[int], progress: bool = False
) -> dict[int, T]:
    """``function(session_id)`` for each session, several at once: each opening is a few
    dependent round trips (and, the first time, a probe's timestamps), so overlap them."""
    ids = [int(s) for s in session_ids]
    if not ids:
        return {}
    results: dict[int, T] = {}
    with ThreadPoolExecutor(min(_OPEN_THREADS, len(ids))) as pool, tqdm(
        total=len(ids), desc="opening sessions", unit="session", disable=not progress
    ) as bar:
        futures = {pool.submit(function, session_id): session_id for session_id in ids}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return {session_id: results[session_id] for session_id in ids}


def open_sessions(
    cache: EcephysProjectCache, session_ids: Sequence[int], **session_options: Any
) -> dict[int, EcephysSession]:
    """These sessions opened (indexes and small tables only), several at once."""
    cache.get_session_table()  # the project tables, read once before the threads share them
    return in_threads(lambda s: cache.get_session_data(s, **session_options), session_ids)


def presentations_dataset(session: EcephysSession, stimulus_name: str) -> xr.Dataset:
    """The session's presentations of one stimulus, dimension ``presentation`` (their ids)."""
    table = session.stimulus_presentations
    chosen = table[table["stimulus_name"] == stimulus_name]
    if chosen.empty:
        raise ValueError(
            f"session {session.ecephys_session_id} has no presentations of {stimulus_name!r}; "
            f"its stimuli: {sorted(table['stimulus_name'].dropna().unique())}"
        )
    columns = [c for c in PRESENTATION_COLUMNS if c in chosen]
    frame = chosen[columns].rename_axis("presentation")
    # Coordinates, not variables: a reduction of the tree (``tree.std("time")``) leaves them be.
    dataset = xr.Dataset(coords=xr.Dataset.from_dataframe(frame).variables)
    dataset.attrs["stimulus_name"] = stimulus_name
    return dataset


def _probe_lfp(
    session: EcephysSession,
    probe_id: int,
    rows: pd.DataFrame,
    window: tuple[float, float] | None,
    mask_invalid_intervals: bool,
) -> xr.Dataset | None:
    """One probe's LFP restricted to ``rows``' channels (None when none of them has LFP)."""
    lfp = session.get_lfp(probe_id, mask_invalid_intervals=mask_invalid_intervals)
    # The LFP files hold a subset of a probe's channels (every other one or so).
    kept = rows.index[rows.index.isin(lfp["channel"].to_numpy())]
    if kept.empty:
        return None
    lfp = lfp.sel(channel=kept.to_numpy(dtype=np.int64))
    if window is not None:
        lfp = lfp.sel(time=slice(*window))
    coordinates = {
        name: ("channel", rows.loc[kept, column].to_numpy())
        for column, name in CHANNEL_COORDINATES.items()
        if column in rows
    }
    probes = session.probes
    attrs = {
        "ecephys_session_id": int(session.ecephys_session_id),
        "ecephys_probe_id": int(probe_id),
        "probe_description": str(probes.loc[probe_id, "description"]),
    }
    return xr.Dataset({"LFP": lfp.assign_coords(coordinates)}, attrs=attrs)


def open_lfp_tree(
    cache: EcephysProjectCache,
    channels: pd.DataFrame,
    *,
    session_types: Sequence[str] | str | None = None,
    stimulus_name: str | None = None,
    time: tuple[float, float] | None = None,
    mask_invalid_intervals: bool = True,
    progress: bool = False,
) -> xr.DataTree:
    """The LFP of the selected channels of every session, as one lazy ``DataTree``.

    ``channels`` are rows of ``cache.get_channels()`` (index: channel id; columns
    ``ecephys_session_id``, ``ecephys_probe_id``, the structure and position columns). The tree
    is ``/session_<id>/probe_<id>``, each probe a Dataset with ``LFP`` (time, channel) (the
    dask-backed array of ``get_lfp``, NaN in invalid intervals with ``mask_invalid_intervals``)
    and, on ``channel``, ``structure_acronym``, ``probe_vertical_position`` (depth along the
    probe, µm) and the other channel columns. Channels without LFP (the files keep a subset) and
    probes without LFP data are left out.

    ``session_types`` keeps sessions of these types; ``time=(start, stop)`` (s, session clock)
    keeps that window; ``stimulus_name`` keeps the span from the first to the last presentation
    of that stimulus and puts those presentations on the session node (dimension
    ``presentation``), where :func:`~s3ecephys.allen.align.align_to_events` finds them.
    Sessions are opened several at once; ``progress`` shows a bar.
    """
    chosen = select_sessions(channels, cache, session_types)
    if "ecephys_probe_id" not in chosen:
        raise ValueError("the channels table needs an 'ecephys_probe_id' column "
                         "(cache.get_channels())")
    if chosen.empty:
        raise ValueError("no channel selected (the table is empty after the session filter)")
    cache.get_session_table()  # the project tables, read once before the threads share them

    def session_nodes(session_id: int) -> tuple[dict[str, xr.Dataset], list[int]]:
        session = cache.get_session_data(session_id)
        nodes: dict[str, xr.Dataset] = {}
        without_lfp: list[int] = []
        window = time
        if stimulus_name is not None:
            presentations = presentations_dataset(session, stimulus_name)
            nodes[session_node(session_id)] = presentations
            span = (float(presentations["start_time"].min()),
                    float(presentations["stop_time"].max()))
            window = span if time is None else (max(span[0], time[0]), min(span[1], time[1]))
        session_rows = chosen[chosen["ecephys_session_id"] == session_id]
        for probe_id, rows in session_rows.groupby("ecephys_probe_id", sort=True):
            if not bool(session.probes.loc[probe_id, "has_lfp_data"]):
                without_lfp.append(int(probe_id))
                continue
            probe = _probe_lfp(session, int(probe_id), rows, window, mask_invalid_intervals)
            if probe is not None:
                probe.attrs["session_type"] = str(session.session_type)
                nodes[f"{session_node(session_id)}/{probe_node(probe_id)}"] = probe
        return nodes, without_lfp

    per_session = in_threads(
        session_nodes, sorted(chosen["ecephys_session_id"].unique()), progress
    )
    nodes = {path: node for found, _ in per_session.values() for path, node in found.items()}
    without_lfp = [probe for _, skipped in per_session.values() for probe in skipped]
    if without_lfp:
        warnings.warn(f"probes without LFP data left out: {without_lfp}", stacklevel=3)
    if not any("/" in path for path in nodes):
        raise ValueError(
            f"none of the {len(chosen)} selected channels has LFP (the LFP files keep a subset "
            "of each probe's channels; probes with has_lfp_data False have none)"
        )
    tree = xr.DataTree.from_dict(nodes)
    tree.attrs["channels_selected"] = len(chosen)
    return tree


def lfp_leaves(tree: xr.DataTree) -> list[xr.DataTree]:
    """The probe nodes of an LFP tree (those holding an ``LFP`` variable)."""
    return [node for node in tree.subtree if "LFP" in node.data_vars]
