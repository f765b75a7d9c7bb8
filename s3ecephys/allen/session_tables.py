"""The shapes of a session's probe, channel and unit tables, as AllenSDK 2.16.2 builds them from
the NWB file (``Channels.from_nwb``, ``Probes.get_units_table``, ``_build_units_table``).

Pure functions on frames: the session API (:mod:`s3ecephys.allen.session_api`) feeds them what
it read from the file, the session (:mod:`s3ecephys.allen.session_probes`) merges their results.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from s3ecephys.allen.filters import (
    UnitFilterBounds,
    quality_metrics_mask,
    resolve_unit_filter_bounds,
)
from s3ecephys.allen.tables import WAVEFORM_METRIC_RENAMES
from s3ecephys.nwb.tables import widen_numeric_columns

# The columns of AllenSDK 2.16.2's units table before its merges: the properties of its ``Unit``
# (``_unit.py``) in ``dir()`` order, without ``id`` and the ragged arrays. ``Unit`` takes
# ``waveform_halfwidth`` but has no property for it, so that column never reaches the table.
UNIT_COLUMNS = (
    "PT_ratio", "amplitude", "amplitude_cutoff", "cluster_id", "cumulative_drift", "d_prime",
    "firing_rate", "isi_violations", "isolation_distance", "l_ratio", "local_index",
    "max_drift", "nn_hit_rate", "nn_miss_rate", "peak_channel_id", "presence_ratio", "quality",
    "recovery_slope", "repolarization_slope", "silhouette_score", "snr", "spread",
    "velocity_above", "velocity_below", "waveform_duration",
)
# ``Unit`` arguments without a default: a file lacking one cannot be read by AllenSDK either.
REQUIRED_UNIT_COLUMNS = (
    "peak_channel_id", "local_index", "cluster_id", "quality", "firing_rate", "isi_violations",
    "presence_ratio", "amplitude_cutoff",
)
# ``EcephysSession._build_units_table``.
UNIT_RENAMES = {
    "description": "probe_description",
    "local_index_channel": "channel_local_index",
    **WAVEFORM_METRIC_RENAMES,
    "sampling_rate": "probe_sampling_rate",
    "lfp_sampling_rate": "probe_lfp_sampling_rate",
    "has_lfp_data": "probe_has_lfp_data",
}
# The electrodes columns AllenSDK's ``Channels.from_nwb`` uses (``local_index`` in the 2020
# files, ``probe_channel_number`` in newer ones).
ELECTRODE_COLUMNS = [
    "x", "y", "z", "location", "local_index", "probe_channel_number",
    "probe_horizontal_position", "probe_vertical_position", "probe_id", "valid_data",
]
# ``Channel`` ignores the file's ``filtering`` column and reports its own default.
CHANNEL_FILTERING = "AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"
# The channels.csv columns that replace the NWB file's (the registration was redone after 2019).
CHANNEL_OVERLAY_COLUMNS = [
    "ecephys_structure_id",
    "ecephys_structure_acronym",
    "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate",
    "left_right_ccf_coordinate",
]


def session_unit_filter_bounds(**unit_filters: Any) -> UnitFilterBounds:
    """The bounds a session filters its NWB units with.

    As the project tables, a missing bound takes its default and ``None`` means no bound; then
    AllenSDK's ``Probes.get_units_table`` applies each bound as ``bound or inf``, so a bound of
    ``0`` means no bound too (unlike ``EcephysProjectCache.get_units``).
    """
    bounds = resolve_unit_filter_bounds(**unit_filters)
    return UnitFilterBounds(
        amplitude_cutoff_maximum=bounds.amplitude_cutoff_maximum or math.inf,
        presence_ratio_minimum=bounds.presence_ratio_minimum or -math.inf,
        isi_violations_maximum=bounds.isi_violations_maximum or math.inf,
    )


def channels_from_electrodes(electrodes: pd.DataFrame) -> pd.DataFrame:
    """AllenSDK 2.16.2's channels table (``Channels.from_nwb(...).to_dataframe()`` before any
    overlay or validity filter) from the NWB electrodes table.

    ``location`` becomes ``structure_acronym`` (None for ``'None'`` or ``''``, the subregion
    after ``-`` stripped), ``x, y, z`` the three CCF coordinates, ``local_index`` (or
    ``probe_channel_number``) ``probe_channel_number``; ``filtering`` is ``Channel``'s default.
    """
    has_local, has_number = "local_index" in electrodes, "probe_channel_number" in electrodes
    if has_local == has_number:
        raise ValueError(
            "cannot tell the channels' numbers on their probe: the electrodes table has "
            f"{'both' if has_local else 'neither'} 'local_index' and 'probe_channel_number' "
            f"(columns: {list(electrodes.columns)})"
        )
    location = electrodes["location"].astype(object)
    acronyms = location.str.split("-").str[0].to_numpy(dtype=object, copy=True)
    acronyms[location.isin(["None", ""]).to_numpy()] = None

    channels = pd.DataFrame(
        {
            "anterior_posterior_ccf_coordinate": electrodes.get("x", np.nan),
            "dorsal_ventral_ccf_coordinate": electrodes.get("y", np.nan),
            "filtering": pd.Series(CHANNEL_FILTERING, index=electrodes.index, dtype=object),
            "left_right_ccf_coordinate": electrodes.get("z", np.nan),
            "probe_channel_number": electrodes[
                "local_index" if has_local else "probe_channel_number"
            ],
            "probe_horizontal_position": electrodes["probe_horizontal_position"],
            "probe_id": electrodes["probe_id"],
            "probe_vertical_position": electrodes["probe_vertical_position"],
            "structure_acronym": pd.Series(acronyms, index=electrodes.index, dtype=object),
            "valid_data": electrodes["valid_data"].astype(bool),
        },
        index=electrodes.index,
    )
    return widen_numeric_columns(channels)


def clobbering_merge(table: pd.DataFrame, overlay: pd.DataFrame) -> pd.DataFrame:
    """AllenSDK's ``clobbering_merge`` on the index: ``overlay``'s columns replace ``table``'s
    (and come last); rows missing from either side are dropped (an inner merge)."""
    kept = table.drop(columns=[c for c in overlay.columns if c in table.columns])
    return kept.merge(overlay, left_index=True, right_index=True)


def units_in_probe_order(
    units: pd.DataFrame, channels: pd.DataFrame, probes: pd.DataFrame
) -> pd.DataFrame:
    """The file's units as AllenSDK collects them: probe by probe (``probes``' order), each
    probe's units in file order, units whose peak channel is on no probe left out; numbers
    widened to int64/float64 as AllenSDK's rows of Python numbers give them."""
    missing = [c for c in REQUIRED_UNIT_COLUMNS if c not in units]
    if missing:
        raise ValueError(f"the units table of this session file lacks columns {missing}")
    units = units.reindex(columns=list(UNIT_COLUMNS))
    probe_of_unit = units["peak_channel_id"].map(channels["probe_id"])
    position = probes.index.get_indexer(probe_of_unit)
    kept = np.flatnonzero(position >= 0)
    order = kept[np.argsort(position[kept], kind="stable")]
    return widen_numeric_columns(units.iloc[order])


def filter_units(
    units: pd.DataFrame,
    channels: pd.DataFrame,
    *,
    filter_by_validity: bool,
    filter_out_of_brain_units: bool,
    bounds: UnitFilterBounds,
) -> pd.DataFrame:
    """``Probes.get_units_table``: with ``filter_by_validity``, units on valid channels with
    quality ``good`` (the column then dropped); with ``filter_out_of_brain_units``, units whose
    peak channel has a structure in the file (``channels``' ``structure_acronym``, the file's
    channels before any overlay); quality bounds as :func:`session_unit_filter_bounds` makes
    them."""
    if filter_by_validity or filter_out_of_brain_units:
        if filter_by_validity:
            channels = channels[channels["valid_data"]]
        if filter_out_of_brain_units:
            channels = channels[channels["structure_acronym"].notna()]
        units = units[units["peak_channel_id"].isin(channels.index)]
    if filter_by_validity:
        units = units[units["quality"] == "good"].drop(columns=["quality"])
    return units[quality_metrics_mask(units, bounds)]


def merge_units(units: pd.DataFrame, channels: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """``EcephysSession._build_units_table``: the units joined with their peak channel and probe,
    renamed (``waveform_*``, ``probe_*``), index ``unit_id``, sorted by probe and position."""
    table = units.merge(
        channels,
        left_on="peak_channel_id",
        right_index=True,
        suffixes=("_unit", "_channel"),
    ).merge(probes, left_on="probe_id", right_index=True, suffixes=("_unit", "_probe"))
    table.index.name = "unit_id"
    table = table.rename(columns=UNIT_RENAMES)
    return table.sort_values(
        by=["probe_description", "probe_vertical_position", "probe_horizontal_position"],
        kind="stable",
    )


def acronym_column(table: pd.DataFrame) -> str:
    """channels.csv's ``ecephys_structure_acronym`` when the session has it, else (a session
    opened from its file alone, where AllenSDK fails) the file's ``structure_acronym``."""
    return "ecephys_structure_acronym" if "ecephys_structure_acronym" in table else (
        "structure_acronym"
    )
