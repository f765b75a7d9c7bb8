"""The project tables, built from the project CSVs exactly as AllenSDK 2.16.2 builds them.

``EcephysProjectCache`` (allensdk/brain_observatory/ecephys/ecephys_project_cache.py, 2.16.2, which
pins pandas 1.5.3) reads ``sessions.csv``, ``probes.csv``, ``channels.csv`` and ``units.csv`` with
``pd.read_csv(path, index_col="id")`` and the two ``<session_type>_analysis_metrics.csv`` with
``index_col="ecephys_unit_id"``, then:

1. sessions: a ``structure_acronyms`` column (a Python list literal per row), if present, is
   parsed into ``ecephys_structure_acronyms`` and dropped.
2. probes: ``lfp_sampling_rate`` is divided by ``lfp_temporal_subsampling_factor``.
3. units: the waveform metrics are renamed (``PT_ratio`` -> ``waveform_PT_ratio`` …,
   ``l_ratio`` -> ``L_ratio``), the quality-metric bounds of :mod:`s3ecephys.allen.filters` are
   applied, then with ``filter_by_validity`` only ``quality == "good"`` rows are kept and the
   ``quality`` column is dropped.
4. "annotated" tables: probes ⋈ sessions, channels ⋈ annotated probes, units ⋈ annotated
   channels, each an inner ``pd.merge(left, right, left_on=<foreign key>, right_index=True)``.
   AllenSDK also builds a copy of the units with ``name -> probe_name``, ``local_index ->
   peak_channel`` … but returns the un-renamed merge: those renames never reach its users, and
   they do not happen here either.
5. public tables: counts of owned units (default filters, always), channels and probes, and
   ``ecephys_structure_acronyms`` (per owner, the channels' acronyms unique in order of
   appearance, NaN included, as a numpy array; ``0`` for an owner with no channel) are added,
   then the ``SUPPRESS_FROM_*`` columns are dropped.

Two details of pandas 1.5.3 shape the results and are reproduced on any pandas:

- An inner merge on a column returns the left rows *grouped by key*, keys in order of first
  appearance (pandas 2.2 changed this to plain left order). So ``get_probes()`` lists probes
  session by session, ``get_channels()`` probe by probe, ``get_units()`` channel by channel, and
  the acronym lists follow that order.
- Text columns are ``object`` arrays (missing values NaN). On pandas 3 ``read_csv`` infers the
  ``str`` dtype instead; :func:`read_project_csv` turns such columns back into ``object`` so
  values, ``unique()`` results and acronym arrays are the same as AllenSDK's.

Two are not reproduced. pandas 1.5.3's default float parser keeps the first 17 digits of a
number, leading zeros included, so about a fifth of the metric values it yields are a few ulps
(relative error up to ~1e-12 for values below 1e-3) off the correctly rounded value that pandas 2
and later (and so this module) read. And an empty result keeps its column types here, where
pandas 1.5.3 turned an empty merge's index and a header-only CSV's columns into ``object``.

Everything here is a pure function of DataFrames (no I/O except parsing what it is handed) and
vectorised: the real units table (99,180 rows) builds in a fraction of a second.

:class:`~s3ecephys.allen.project_tables.ProjectTables` answers the cache's table methods with them.
"""

from __future__ import annotations

import ast
import io
import os
from collections.abc import Sequence
from typing import IO, Any

import numpy as np
import pandas as pd

from s3ecephys.allen.filters import quality_metrics_mask, resolve_unit_filter_bounds

__all__ = [
    "PROJECT_CSV_INDEX",
    "SUPPRESS_FROM_CHANNELS",
    "SUPPRESS_FROM_PROBES",
    "SUPPRESS_FROM_SESSION_TABLE",
    "SUPPRESS_FROM_UNITS",
    "WAVEFORM_METRIC_RENAMES",
    "annotate_analysis_metrics",
    "annotate_channels",
    "annotate_probes",
    "annotate_units",
    "channel_table",
    "prepare_probes",
    "prepare_sessions",
    "prepare_units",
    "probe_table",
    "read_project_csv",
    "session_analysis_metrics_from_typewise",
    "session_table",
    "unit_table",
]

# The index column of each project CSV, as AllenSDK reads it.
PROJECT_CSV_INDEX: dict[str, str] = {
    "sessions": "id",
    "probes": "id",
    "channels": "id",
    "units": "id",
    "analysis_metrics": "ecephys_unit_id",
}

WAVEFORM_METRIC_RENAMES: dict[str, str] = {
    "PT_ratio": "waveform_PT_ratio",
    "amplitude": "waveform_amplitude",
    "duration": "waveform_duration",
    "halfwidth": "waveform_halfwidth",
    "recovery_slope": "waveform_recovery_slope",
    "repolarization_slope": "waveform_repolarization_slope",
    "spread": "waveform_spread",
    "velocity_above": "waveform_velocity_above",
    "velocity_below": "waveform_velocity_below",
    "l_ratio": "L_ratio",
}

# Columns each public table hides by default (``suppress=None``), as in AllenSDK 2.16.2.
SUPPRESS_FROM_UNITS: tuple[str, ...] = (
    "air_channel_index",
    "surface_channel_index",
    "has_nwb",
    "lfp_temporal_subsampling_factor",
    "epoch_name_quality_metrics",
    "epoch_name_waveform_metrics",
    "isi_experiment_id",
)
SUPPRESS_FROM_CHANNELS: tuple[str, ...] = (
    "air_channel_index",
    "surface_channel_index",
    "name",
    "date_of_acquisition",
    "published_at",
    "specimen_id",
    "session_type",
    "isi_experiment_id",
    "age_in_days",
    "sex",
    "genotype",
    "has_nwb",
    "lfp_temporal_subsampling_factor",
)
SUPPRESS_FROM_PROBES: tuple[str, ...] = (
    "air_channel_index",
    "surface_channel_index",
    "date_of_acquisition",
    "published_at",
    "specimen_id",
    "session_type",
    "isi_experiment_id",
    "age_in_days",
    "sex",
    "genotype",
    "has_nwb",
    "lfp_temporal_subsampling_factor",
)
SUPPRESS_FROM_SESSION_TABLE: tuple[str, ...] = (
    "has_nwb",
    "isi_experiment_id",
    "date_of_acquisition",
)

CsvSource = str | os.PathLike[str] | IO[str] | IO[bytes] | bytes


# --- reading -------------------------------------------------------------------------------------


def read_project_csv(kind: str, source: CsvSource) -> pd.DataFrame:
    """Parse one project CSV the way AllenSDK reads it.

    ``kind`` is ``"sessions"``, ``"probes"``, ``"channels"``, ``"units"`` (indexed by ``id``) or
    ``"analysis_metrics"`` (a ``<session_type>_analysis_metrics.csv`` or
    ``session_<id>_analysis_metrics.csv``, indexed by ``ecephys_unit_id``). ``source`` is a path,
    an open text or binary file, or the file's bytes. Types are pandas' defaults (ids ``int64``,
    ``True``/``False`` columns ``bool``, numbers with gaps ``float64``) except that text columns
    are ``object`` on every pandas version, as AllenSDK has them.
    """
    try:
        index_column = PROJECT_CSV_INDEX[kind]
    except KeyError:
        raise ValueError(
            f"unknown project table {kind!r}; expected one of {sorted(PROJECT_CSV_INDEX)}"
        ) from None
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    return _text_columns_as_object(pd.read_csv(source, index_col=index_column))


def _text_columns_as_object(table: pd.DataFrame) -> pd.DataFrame:
    text_columns = {
        column: object
        for column, dtype in table.dtypes.items()
        if isinstance(dtype, pd.StringDtype)
    }
    return table.astype(text_columns) if text_columns else table


# --- stage 1: each CSV on its own ----------------------------------------------------------------


def prepare_sessions(raw_sessions: pd.DataFrame) -> pd.DataFrame:
    """``sessions.csv`` with a ``structure_acronyms`` list-literal column, if any, parsed.

    The parsed lists become ``ecephys_structure_acronyms`` (appended last, so the public session
    table keeps it before the counts) and ``structure_acronyms`` is dropped.
    """
    sessions = raw_sessions.copy()
    if "structure_acronyms" not in sessions.columns:
        return sessions
    # An object array holds one list per element (pandas would spread a list over rows).
    parsed = np.empty(len(sessions), dtype=object)
    # One literal per session (tens of rows): a loop is the plain way to parse them.
    for position, (session_id, text) in enumerate(sessions["structure_acronyms"].items()):
        if not isinstance(text, str):
            raise ValueError(
                f"sessions.csv: structure_acronyms of session {session_id} is {text!r}, "
                "not a Python list literal"
            )
        parsed[position] = ast.literal_eval(text)
    sessions["ecephys_structure_acronyms"] = parsed
    return sessions.drop(columns=["structure_acronyms"])


def prepare_probes(raw_probes: pd.DataFrame) -> pd.DataFrame:
    """``probes.csv`` with ``lfp_sampling_rate`` divided by ``lfp_temporal_subsampling_factor``.

    The CSV holds the acquisition rate (≈2500 Hz); the LFP files are subsampled by the factor
    (2), so the result is the rate of the LFP data users get (≈1250 Hz). Without both columns the
    table is returned unchanged.
    """
    probes = raw_probes.copy()
    if {"lfp_sampling_rate", "lfp_temporal_subsampling_factor"} <= set(probes.columns):
        probes["lfp_sampling_rate"] = (
            probes["lfp_sampling_rate"] / probes["lfp_temporal_subsampling_factor"]
        )
    return probes


def prepare_units(
    raw_units: pd.DataFrame, filter_by_validity: bool = True, **unit_filter_kwargs: Any
) -> pd.DataFrame:
    """``units.csv`` renamed and filtered as AllenSDK's ``EcephysProjectCache._get_units``.

    Waveform metrics get their ``waveform_`` names and ``l_ratio`` becomes ``L_ratio``; the rows
    outside the quality-metric bounds (see :func:`resolve_unit_filter_bounds`) go; with
    ``filter_by_validity`` only ``quality == "good"`` rows stay and ``quality`` is dropped. A
    table with an ``ecephys_structure_id`` column (units.csv has none) also loses units with no
    structure unless ``filter_out_of_brain_units=False``.
    """
    units = raw_units.rename(columns=WAVEFORM_METRIC_RENAMES)
    bounds = resolve_unit_filter_bounds(**unit_filter_kwargs)
    units = units.loc[quality_metrics_mask(units, bounds)]
    if "quality" in units.columns and filter_by_validity:
        units = units.loc[(units["quality"] == "good").to_numpy(dtype=bool)]
        units = units.drop(columns="quality")
    if "ecephys_structure_id" in units.columns and unit_filter_kwargs.get(
        "filter_out_of_brain_units", True
    ):
        units = units.loc[units["ecephys_structure_id"].notna().to_numpy()]
    return units


# --- stage 2: the annotated (merged) tables ------------------------------------------------------


def annotate_probes(probes: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """Probes (from :func:`prepare_probes`) with their session's columns; orphans dropped."""
    return _inner_merge_grouped(probes, "ecephys_session_id", sessions, ("_probe", "_session"))


def annotate_channels(channels: pd.DataFrame, annotated_probes: pd.DataFrame) -> pd.DataFrame:
    """Channels with their probe's and session's columns; channels of unknown probes dropped."""
    return _inner_merge_grouped(
        channels, "ecephys_probe_id", annotated_probes, ("_channel", "_probe")
    )


def annotate_units(units: pd.DataFrame, annotated_channels: pd.DataFrame) -> pd.DataFrame:
    """Units (from :func:`prepare_units`) with their peak channel's, probe's, session's columns."""
    return _inner_merge_grouped(
        units, "ecephys_channel_id", annotated_channels, ("_unit", "_channel")
    )


def _inner_merge_grouped(
    left: pd.DataFrame, key: str, right: pd.DataFrame, suffixes: tuple[str, str]
) -> pd.DataFrame:
    """An inner ``pd.merge(left, right, left_on=key, right_index=True)`` in pandas 1.5.3's order.

    pandas before 2.2 returned an inner merge's rows grouped by key, keys in order of first
    appearance in ``left`` and rows of one key in their original order. A stable sort on the
    first-appearance codes gives that grouping; the merge of the grouped rows then keeps it on
    every pandas version (it is a no-op reordering for pandas < 2.2 and kept as is by later ones).
    """
    codes, _ = pd.factorize(left[key])
    grouped = left.take(np.argsort(codes, kind="stable"))
    return pd.merge(
        grouped, right, how="inner", left_on=key, right_index=True, suffixes=list(suffixes)
    )


# --- stage 3: the public tables ------------------------------------------------------------------


def session_table(
    sessions: pd.DataFrame,
    annotated_probes: pd.DataFrame,
    annotated_channels: pd.DataFrame,
    annotated_units: pd.DataFrame,
    suppress: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``EcephysProjectCache.get_session_table()``.

    ``sessions`` comes from :func:`prepare_sessions`; ``annotated_units`` must be built with the
    default unit filters (AllenSDK counts units that way whatever the caller asks elsewhere).
    Adds ``unit_count``, ``channel_count``, ``probe_count``, ``ecephys_structure_acronyms``;
    drops ``suppress`` (default :data:`SUPPRESS_FROM_SESSION_TABLE`); renames ``genotype`` to
    ``full_genotype``.
    """
    table = sessions.copy()
    table["unit_count"] = _owned_counts(table.index, annotated_units["ecephys_session_id"])
    table["channel_count"] = _owned_counts(table.index, annotated_channels["ecephys_session_id"])
    table["probe_count"] = _owned_counts(table.index, annotated_probes["ecephys_session_id"])
    table["ecephys_structure_acronyms"] = _owned_uniques(
        table.index, annotated_channels, "ecephys_session_id", "ecephys_structure_acronym"
    )
    table = _suppress(table, SUPPRESS_FROM_SESSION_TABLE if suppress is None else suppress)
    return table.rename(columns={"genotype": "full_genotype"})


def probe_table(
    annotated_probes: pd.DataFrame,
    annotated_channels: pd.DataFrame,
    annotated_units: pd.DataFrame,
    suppress: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``EcephysProjectCache.get_probes()``: annotated probes plus ``unit_count`` (default unit
    filters), ``channel_count`` and ``ecephys_structure_acronyms``, less ``suppress`` (default
    :data:`SUPPRESS_FROM_PROBES`)."""
    table = annotated_probes.copy()
    table["unit_count"] = _owned_counts(table.index, annotated_units["ecephys_probe_id"])
    table["channel_count"] = _owned_counts(table.index, annotated_channels["ecephys_probe_id"])
    table["ecephys_structure_acronyms"] = _owned_uniques(
        table.index, annotated_channels, "ecephys_probe_id", "ecephys_structure_acronym"
    )
    return _suppress(table, SUPPRESS_FROM_PROBES if suppress is None else suppress)


def channel_table(
    annotated_channels: pd.DataFrame,
    annotated_units: pd.DataFrame,
    suppress: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``EcephysProjectCache.get_channels()``: annotated channels plus ``unit_count`` (default
    unit filters), less ``suppress`` (default :data:`SUPPRESS_FROM_CHANNELS`); a ``name`` column
    left by a custom ``suppress`` is called ``probe_name``."""
    table = annotated_channels.copy()
    table["unit_count"] = _owned_counts(table.index, annotated_units["ecephys_channel_id"])
    table = _suppress(table, SUPPRESS_FROM_CHANNELS if suppress is None else suppress)
    return table.rename(columns={"name": "probe_name"})


def unit_table(
    annotated_units: pd.DataFrame, suppress: Sequence[str] | None = None
) -> pd.DataFrame:
    """``EcephysProjectCache.get_units()``: annotated units less ``suppress`` (default
    :data:`SUPPRESS_FROM_UNITS`)."""
    return _suppress(annotated_units, SUPPRESS_FROM_UNITS if suppress is None else suppress)


def annotate_analysis_metrics(metrics: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Analysis metrics joined onto a public units table (inner, on unit id, units' order).

    Columns: the units table's, then the metrics' (clashing names get pandas' ``_x``/``_y``);
    the index is renamed ``ecephys_unit_id``.
    """
    annotated = pd.merge(units, metrics, how="inner", left_index=True, right_index=True)
    annotated.index.name = "ecephys_unit_id"
    return annotated


def session_analysis_metrics_from_typewise(
    typewise_metrics: pd.DataFrame,
    raw_units: pd.DataFrame,
    channels: pd.DataFrame,
    probes: pd.DataFrame,
    session_id: int,
) -> pd.DataFrame:
    """One session's rows of a ``<session_type>_analysis_metrics.csv`` table.

    Stands in for ``session_<id>_analysis_metrics.csv``, which AllenSDK fetches from its warehouse
    (the same metric bundles, selected by session) and which the S3 cache may not hold. A unit
    belongs to the session of its peak channel's probe; every unit of units.csv counts, filtered
    or not, as in the warehouse query. Column types are re-inferred from the selected rows.
    """
    unit_probe = raw_units["ecephys_channel_id"].map(channels["ecephys_probe_id"])
    unit_session = unit_probe.map(probes["ecephys_session_id"])
    session_units = unit_session.index[(unit_session == session_id).to_numpy()]
    rows = typewise_metrics.loc[typewise_metrics.index.isin(session_units)]
    # A file of these rows alone would be typed by its own values: a True/False/NaN column with
    # no NaN among them is bool there, as read_csv would make it.
    return _text_columns_as_object(rows.infer_objects())


def _suppress(table: pd.DataFrame, suppress: Sequence[str]) -> pd.DataFrame:
    return table.drop(columns=list(suppress), errors="ignore")


def _owned_counts(owners: pd.Index, member_owner_ids: pd.Series) -> np.ndarray:
    """For each owner id, how many members name it (0 for none), as int64."""
    counts = member_owner_ids.value_counts()
    return counts.reindex(owners, fill_value=0).to_numpy(dtype=np.int64)


def _owned_uniques(
    owners: pd.Index, members: pd.DataFrame, owner_column: str, value_column: str
) -> np.ndarray:
    """For each owner, its members' distinct values in order of appearance (NaN included).

    Mirrors AllenSDK's ``get_grouped_uniques``: a numpy array per owner that has members (the
    dtype ``Series.unique()`` gives: ``object`` for text), the integer ``0`` for one that has
    none; a plain ``int64`` zero column when no owner has any.
    """
    pairs = members[[owner_column, value_column]]
    firsts = pairs.loc[~pairs.duplicated().to_numpy()]
    firsts = firsts.loc[firsts[owner_column].notna().to_numpy()]
    if firsts.empty:
        return np.zeros(len(owners), dtype=np.int64)
    owner_ids = firsts[owner_column].to_numpy()
    values = firsts[value_column].to_numpy()
    # Stable sort: members of one owner stay in order of appearance.
    order = np.argsort(owner_ids, kind="stable")
    owner_ids, values = owner_ids[order], values[order]
    starts = np.flatnonzero(np.r_[True, owner_ids[1:] != owner_ids[:-1]])
    groups = np.split(values, starts[1:])
    positions = owners.get_indexer(owner_ids[starts])
    result = np.zeros(len(owners), dtype=object)
    # One assignment per owner (sessions or probes: at most a few hundred).
    for position, group in zip(positions, groups, strict=True):
        if position >= 0:
            result[position] = group.copy()
    return result
