"""``EcephysSession``: AllenSDK's session object, read in place.

Attribute and method names, tables, filters and results follow AllenSDK 2.16.2. What differs is
what happens underneath: opening a session reads the file's index and a few small tables, never
the ragged spike, amplitude or waveform arrays; ``spike_times`` fetches a unit's spikes (one byte
range) when asked; ``get_lfp`` returns a dask-backed DataArray that reads only the chunks a
computation touches.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from dateutil.parser import parse as parse_datetime

from s3ecephys.allen import spike_analysis, stimuli
from s3ecephys.allen.filters import (
    UnitFilterBounds,
    quality_metrics_mask,
    resolve_unit_filter_bounds,
)
from s3ecephys.allen.tables import WAVEFORM_METRIC_RENAMES
from s3ecephys.hdf5 import open_hdf5
from s3ecephys.nwb.lfp_file import LfpFile
from s3ecephys.nwb.session_file import SessionFile
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
_REQUIRED_UNIT_COLUMNS = (
    "peak_channel_id", "local_index", "cluster_id", "quality", "firing_rate", "isi_violations",
    "presence_ratio", "amplitude_cutoff",
)
# ``EcephysSession._build_units_table``.
_UNIT_RENAMES = {
    "description": "probe_description",
    "local_index_channel": "channel_local_index",
    **WAVEFORM_METRIC_RENAMES,
    "sampling_rate": "probe_sampling_rate",
    "lfp_sampling_rate": "probe_lfp_sampling_rate",
    "has_lfp_data": "probe_has_lfp_data",
}
# The electrodes columns AllenSDK's ``Channels.from_nwb`` uses (``local_index`` in the 2020
# files, ``probe_channel_number`` in newer ones).
_ELECTRODE_COLUMNS = [
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
# Rows fetched per batch when a whole ragged mapping is iterated: bounds the bytes in flight.
_ITERATION_BATCH = 256


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


class EcephysSession:
    """One recording session (AllenSDK's ``EcephysSession``), read in place.

    Build one with ``EcephysProjectCache.get_session_data`` or :meth:`from_nwb_path`. Tables are
    read when first used and kept; ragged per-unit data (spike times, amplitudes, mean
    waveforms) is read per unit, many units in one concurrent round (``prefetch``).
    """

    def __init__(
        self,
        nwb: SessionFile,
        *,
        open_lfp: Callable[[int], Any] | None = None,
        channel_overlay: pd.DataFrame | None = None,
        filter_by_validity: bool = True,
        filter_out_of_brain_units: bool = True,
        **unit_filters: Any,
    ):
        self._nwb = nwb
        self._open_lfp = open_lfp
        self._channel_overlay = channel_overlay
        self._filter_by_validity = filter_by_validity
        self._filter_out_of_brain_units = filter_out_of_brain_units
        self._unit_bounds = session_unit_filter_bounds(**unit_filters)
        self._lfp_files: dict[int, LfpFile] = {}
        self._lfp_coordinates: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_nwb_path(
        cls,
        path: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        probe_lfp_paths: Mapping[int, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        api_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> EcephysSession:
        """A session from one NWB file (``s3://`` URL or local path), like AllenSDK's.

        Without project CSVs, channels keep the file's own structures and coordinates (there is
        no ``ecephys_structure_acronym``/``ecephys_structure_id``); units are filtered as in
        AllenSDK, the out-of-brain filter using the file's acronyms. Unit filters
        (``amplitude_cutoff_maximum`` …, ``filter_by_validity``) may be given as keywords or,
        as in AllenSDK, in ``api_kwargs``. Without ``probe_lfp_paths`` (probe id → URL or
        path), LFP files are looked for beside the session file as ``probe_<id>_lfp.nwb``.
        """
        path = os.fspath(path)
        options = dict(storage_options or {})
        nwb = SessionFile(open_hdf5(path, storage_options=options, cache_dir=cache_dir))
        folder = path.rsplit("/", 1)[0]
        lfp_paths = {int(k): v for k, v in (probe_lfp_paths or {}).items()}

        def open_lfp(probe_id: int) -> Any:
            lfp_path = lfp_paths.get(probe_id, f"{folder}/probe_{probe_id}_lfp.nwb")
            return open_hdf5(lfp_path, storage_options=options, cache_dir=cache_dir)

        return cls(nwb, open_lfp=open_lfp, **{**dict(api_kwargs or {}), **kwargs})

    # -- identity and metadata -------------------------------------------------------------------

    @cached_property
    def ecephys_session_id(self) -> int:
        """The session id (the file's ``identifier``)."""
        return self._nwb.session_id

    @cached_property
    def session_type(self) -> str | None:
        """``brain_observatory_1.1`` or ``functional_connectivity`` (``/general/stimulus``)."""
        return self._nwb.stimulus_notes

    @cached_property
    def session_start_time(self) -> Any:
        """When the recording started: a timezone-aware ``datetime``, as pynwb parses it."""
        text = self._nwb.session_start_time
        return parse_datetime(text) if text else None

    @cached_property
    def _subject(self) -> dict[str, Any]:
        return self._nwb.subject()

    @property
    def specimen_name(self) -> Any:
        return self._subject.get("specimen_name")

    @property
    def age_in_days(self) -> Any:
        return self._subject.get("age_in_days")

    @property
    def sex(self) -> Any:
        return self._subject.get("sex")

    @property
    def full_genotype(self) -> Any:
        return self._subject.get("genotype")

    @cached_property
    def _rig_metadata(self) -> dict[str, Any] | None:
        return self._nwb.rig_metadata()

    @property
    def rig_geometry_data(self) -> pd.DataFrame | None:
        """Eye tracking rig geometry (rows x, y, z), None when the session has none."""
        return None if self._rig_metadata is None else self._rig_metadata["geometry"]

    @property
    def rig_equipment_name(self) -> str | None:
        return None if self._rig_metadata is None else self._rig_metadata["equipment"]

    @property
    def num_units(self) -> int:
        return len(self.units)

    @property
    def num_probes(self) -> int:
        return len(self.probes)

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def num_stimulus_presentations(self) -> int:
        return len(self.stimulus_presentations)

    @property
    def structure_acronyms(self) -> list:
        """The channels' structures, in order of first appearance (None/NaN included)."""
        return self.channels[_acronym_column(self.channels)].unique().tolist()

    @property
    def stimulus_names(self) -> list:
        return self.stimulus_presentations["stimulus_name"].unique().tolist()

    @property
    def structurewise_unit_counts(self) -> pd.Series:
        """Units per structure (``ecephys_structure_acronym``), most numerous first."""
        units = self.units
        if "ecephys_structure_acronym" not in units:
            # Opened without channels.csv: AllenSDK fails here; the file's acronyms do instead.
            units = units.rename(columns={"structure_acronym": "ecephys_structure_acronym"})
        return spike_analysis.structurewise_unit_counts(units)

    @property
    def metadata(self) -> dict[str, Any]:
        """The session's description in one dictionary, with AllenSDK's keys."""
        return {
            "specimen_name": self.specimen_name,
            "session_type": self.session_type,
            "full_genotype": self.full_genotype,
            "sex": self.sex,
            "age_in_days": self.age_in_days,
            "rig_equipment_name": self.rig_equipment_name,
            "num_units": self.num_units,
            "num_channels": self.num_channels,
            "num_probes": self.num_probes,
            "num_stimulus_presentations": self.num_stimulus_presentations,
            "session_start_time": self.session_start_time,
            "ecephys_session_id": self.ecephys_session_id,
            "structure_acronyms": self.structure_acronyms,
            "stimulus_names": self.stimulus_names,
        }

    # -- probes, channels, units -----------------------------------------------------------------

    @cached_property
    def probes(self) -> pd.DataFrame:
        """One row per probe (index ``id``): ``description`` (probeA..), ``location``,
        ``sampling_rate``, ``lfp_sampling_rate`` (as the file states it), ``has_lfp_data``."""
        return self._nwb.electrode_groups()

    @cached_property
    def _nwb_channels(self) -> pd.DataFrame:
        """Every channel of the file, shaped as AllenSDK's ``Channels`` (no overlay, no filter)."""
        return channels_from_electrodes(self._nwb.electrodes(columns=_ELECTRODE_COLUMNS))

    @cached_property
    def channels(self) -> pd.DataFrame:
        """The channels (index ``id``, file order): the file's ``structure_acronym`` and, from
        channels.csv, ``ecephys_structure_id``, ``ecephys_structure_acronym`` and the CCF
        coordinates (replacing the file's); only valid channels with ``filter_by_validity``."""
        channels = self._nwb_channels
        if self._channel_overlay is not None:
            channels = clobbering_merge(channels, self._channel_overlay)
        if self._filter_by_validity:
            channels = channels[channels["valid_data"]].drop(columns=["valid_data"])
        return channels

    @cached_property
    def _probe_units(self) -> pd.DataFrame:
        """The file's units as AllenSDK collects them: probe by probe (the file's group order),
        each probe's units in file order, units whose peak channel is on no probe left out."""
        units = self._nwb.units(columns=list(UNIT_COLUMNS))
        missing = [c for c in _REQUIRED_UNIT_COLUMNS if c not in units]
        if missing:
            raise ValueError(f"the units table of this session file lacks columns {missing}")
        units = units.reindex(columns=list(UNIT_COLUMNS))
        probe_of_unit = units["peak_channel_id"].map(self._nwb_channels["probe_id"])
        position = self.probes.index.get_indexer(probe_of_unit)
        kept = np.flatnonzero(position >= 0)
        order = kept[np.argsort(position[kept], kind="stable")]
        return widen_numeric_columns(units.iloc[order])

    @cached_property
    def units(self) -> pd.DataFrame:
        """Units passing the session's filters (index ``unit_id``), joined with their peak
        channel and probe, sorted by probe and position on it.

        The filters, as AllenSDK 2.16.2 applies them: with ``filter_by_validity``, units on
        valid channels with quality ``good`` (the column is then dropped); with
        ``filter_out_of_brain_units``, units whose peak channel has a structure in the file
        (``structure_acronym``, not channels.csv's); quality bounds as ``bound or inf``.
        """
        units = self._probe_units
        if self._filter_by_validity or self._filter_out_of_brain_units:
            channels = self._nwb_channels
            if self._filter_by_validity:
                channels = channels[channels["valid_data"]]
            if self._filter_out_of_brain_units:
                channels = channels[channels["structure_acronym"].notna()]
            units = units[units["peak_channel_id"].isin(channels.index)]
        if self._filter_by_validity:
            units = units[units["quality"] == "good"].drop(columns=["quality"])
        units = units[quality_metrics_mask(units, self._unit_bounds)]
        table = units.merge(
            self.channels,
            left_on="peak_channel_id",
            right_index=True,
            suffixes=("_unit", "_channel"),
        ).merge(self.probes, left_on="probe_id", right_index=True, suffixes=("_unit", "_probe"))
        table.index.name = "unit_id"
        table = table.rename(columns=_UNIT_RENAMES)
        return table.sort_values(
            by=["probe_description", "probe_vertical_position", "probe_horizontal_position"],
            kind="stable",
        )

    @cached_property
    def _unit_order(self) -> pd.Index:
        """The session's unit ids in the order AllenSDK's per-unit dictionaries have them."""
        ids = self._probe_units.index
        return ids[ids.isin(self.units.index)]

    @cached_property
    def spike_times(self) -> Mapping[int, np.ndarray]:
        """``unit id -> spike times (s, float64)`` for the session's units; each unit's spikes
        are read when first used, ``prefetch(ids)`` reads many in one concurrent round."""
        scopes = [*self.probes["description"], "all_probes"]
        if not stimuli.filter_invalid_times_by_tags(self.invalid_times, scopes).empty:
            warnings.warn(
                "Session includes invalid time intervals that could be accessed with the "
                "attribute 'invalid_times', Spikes within these intervals are invalid and may "
                "need to be excluded from the analysis.",
                # The caller's line, above functools' cached_property.
                stacklevel=3,
            )
        return RaggedUnitMapping(self._nwb.ragged_unit_column("spike_times"), self._unit_order)

    @cached_property
    def spike_amplitudes(self) -> Mapping[int, np.ndarray]:
        """``unit id -> spike amplitudes`` (read per unit on access). As in AllenSDK, every unit
        of the file is there, the session's filters notwithstanding."""
        return RaggedUnitMapping(
            self._nwb.ragged_unit_column("spike_amplitudes"), self._probe_units.index
        )

    @cached_property
    def mean_waveforms(self) -> Mapping[int, xr.DataArray]:
        """``unit id -> DataArray (channel_id, time)`` of each session unit's mean waveform, read
        on access: rows of channels absent from ``channels`` are dropped, time in seconds."""
        channels = self.channels
        lookup = {
            int(probe_id): pd.Series(group.index.to_numpy(), index=group["probe_channel_number"])
            for probe_id, group in channels.groupby("probe_id")
        }
        units = self.units
        probe_of_unit = units["probe_id"].astype(np.int64)
        rates = self.probes["sampling_rate"]

        def build(unit_id: int, waveform: np.ndarray) -> xr.DataArray:
            probe_id = int(probe_of_unit[unit_id])
            rows = np.arange(waveform.shape[0])
            by_number = lookup.get(probe_id, pd.Series(dtype=np.int64))
            channel_ids = by_number.reindex(rows, fill_value=-1).to_numpy(dtype=np.int64)
            array = xr.DataArray(
                waveform,
                dims=["channel_id", "time"],
                coords={
                    "channel_id": channel_ids,
                    "time": np.arange(waveform.shape[1]) / rates[probe_id],
                },
            )
            return array[array["channel_id"] != -1]

        return RaggedUnitMapping(
            self._nwb.ragged_unit_column("waveform_mean"), self._unit_order, build
        )

    # -- stimuli ---------------------------------------------------------------------------------

    @cached_property
    def invalid_times(self) -> pd.DataFrame:
        """Intervals of bad data (index ``id``; start_time, stop_time, tags = [scope, id,
        label]); a frame without columns (and an object index, as pandas 1.5 gave it under
        AllenSDK) when there are none."""
        table = self._nwb.invalid_times()
        empty = pd.DataFrame(index=pd.Index([], dtype=object))
        return empty if table is None else table

    def get_invalid_times(self) -> pd.DataFrame:
        """:attr:`invalid_times` (AllenSDK's method form)."""
        return self.invalid_times

    @cached_property
    def _presentations_and_conditions(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        invalid = self._nwb.invalid_times()
        return stimuli.build_stimulus_presentations(self._nwb.presentation_tables(), invalid)

    @property
    def stimulus_presentations(self) -> pd.DataFrame:
        """Every presentation of every stimulus, sorted by start time (index
        ``stimulus_presentation_id``), without the detailed psychopy parameters."""
        return stimuli.remove_detailed_stimulus_parameters(self._presentations_and_conditions[0])

    @property
    def stimulus_conditions(self) -> pd.DataFrame:
        """One row per distinct combination of stimulus parameters (``stimulus_condition_id``)."""
        return self._presentations_and_conditions[1]

    @cached_property
    def inter_presentation_intervals(self) -> pd.DataFrame:
        """``interval`` (s) from each presentation's stop to the next one's start, indexed by
        ``(from_presentation_id, to_presentation_id)``."""
        presentations = self.stimulus_presentations
        ids = presentations.index.to_numpy()
        intervals = pd.DataFrame(
            {
                "from_presentation_id": ids[:-1],
                "to_presentation_id": ids[1:],
                "interval": presentations["start_time"].to_numpy()[1:]
                - presentations["stop_time"].to_numpy()[:-1],
            }
        )
        return intervals.set_index(["from_presentation_id", "to_presentation_id"])

    def get_inter_presentation_intervals_for_stimulus(
        self, stimulus_names: str | Sequence[str]
    ) -> pd.DataFrame:
        """The inter-presentation intervals between presentations of ``stimulus_names``."""
        names = [stimulus_names] if isinstance(stimulus_names, str) else list(stimulus_names)
        presentations = self.stimulus_presentations
        chosen = presentations.index[presentations["stimulus_name"].isin(names)]
        intervals = self.inter_presentation_intervals
        keep = intervals.index.isin(chosen, level="from_presentation_id") & intervals.index.isin(
            chosen, level="to_presentation_id"
        )
        return intervals[keep]

    def get_stimulus_table(
        self,
        stimulus_names: Sequence[str] | None = None,
        include_detailed_parameters: bool = False,
        include_unused_parameters: bool = False,
    ) -> pd.DataFrame:
        """The presentations of ``stimulus_names`` (default: all) with the parameter columns they
        use (all of them with ``include_unused_parameters``; psychopy's detailed ones with
        ``include_detailed_parameters``)."""
        return stimuli.get_stimulus_table(
            self._presentations_and_conditions[0],
            stimulus_names=stimulus_names,
            include_detailed_parameters=include_detailed_parameters,
            include_unused_parameters=include_unused_parameters,
        )

    def get_stimulus_epochs(self, duration_thresholds: Mapping[str, float] | None = None):
        """Blocks of one stimulus (start_time, stop_time, duration, stimulus_name,
        stimulus_block); spontaneous blocks under 90 s left out by default."""
        return stimuli.get_stimulus_epochs(
            self.stimulus_presentations, duration_thresholds=duration_thresholds
        )

    def get_stimulus_parameter_values(
        self, stimulus_presentation_ids: Sequence[int] | None = None, drop_nulls: bool = True
    ) -> dict[str, np.ndarray]:
        """Each stimulus parameter's distinct values over the chosen presentations."""
        return stimuli.get_stimulus_parameter_values(
            self.stimulus_presentations,
            stimulus_presentation_ids=stimulus_presentation_ids,
            drop_nulls=drop_nulls,
        )

    # -- behaviour and optotagging -------------------------------------------------------------

    @cached_property
    def optogenetic_stimulation_epochs(self) -> pd.DataFrame:
        """The optotagging table (index ``id``; start_time, stop_time, condition, level …).

        Raises KeyError in sessions without optotagging (mice without a Cre line), as AllenSDK
        does.
        """
        table = self._nwb.optogenetic_stimulation()
        if table is None:
            raise KeyError(
                f"session {self.ecephys_session_id} has no optotagging "
                "(processing/optotagging/optogenetic_stimulation): only Cre lines were "
                f"optotagged; this mouse is {self.full_genotype!r}"
            )
        return table

    @cached_property
    def running_speed(self) -> pd.DataFrame:
        """start_time, end_time, velocity (cm/s)."""
        return self._nwb.running_speed()

    def get_pupil_data(self) -> pd.DataFrame | None:
        """Ellipse fits of corneal reflection, pupil and eye per frame (index ``Time (s)``);
        None when the session has no eye tracking."""
        return self._nwb.pupil_data()

    # -- spikes around stimuli -------------------------------------------------------------------

    def presentationwise_spike_counts(
        self,
        bin_edges: Sequence[float],
        stimulus_presentation_ids: Sequence[int],
        unit_ids: Sequence[int],
        binarize: bool = False,
        dtype: Any = None,
        large_bin_size_threshold: float = 0.001,
        time_domain_callback: Callable | None = None,
    ) -> xr.DataArray:
        """Spike counts per presentation, bin (edges relative to onset, both inclusive) and
        unit: DataArray (stimulus_presentation_id, time_relative_to_stimulus_onset, unit_id)."""
        return spike_analysis.presentationwise_spike_counts(
            self.spike_times,
            self._presentations(stimulus_presentation_ids),
            np.asarray(bin_edges),
            self._unit_ids(unit_ids),
            binarize=binarize,
            dtype=dtype,
            large_bin_size_threshold=large_bin_size_threshold,
            time_domain_callback=time_domain_callback,
        )

    def presentationwise_spike_times(
        self,
        stimulus_presentation_ids: Sequence[int] | None = None,
        unit_ids: Sequence[int] | None = None,
    ) -> pd.DataFrame:
        """Each spike inside a presentation ``(start, stop]``, indexed by spike time."""
        return spike_analysis.presentationwise_spike_times(
            self.spike_times,
            self._presentations(stimulus_presentation_ids),
            self._unit_ids(unit_ids),
        )

    def conditionwise_spike_statistics(
        self,
        stimulus_presentation_ids: Sequence[int] | None = None,
        unit_ids: Sequence[int] | None = None,
        use_rates: bool = False,
    ) -> pd.DataFrame:
        """Spike count, mean, standard deviation (ddof=1) and SEM per unit and stimulus
        condition, over the chosen presentations (index ``(unit_id, stimulus_condition_id)``)."""
        return spike_analysis.conditionwise_spike_statistics(
            self.spike_times,
            self._presentations(stimulus_presentation_ids),
            # None: only the units that spiked appear, as in AllenSDK.
            None if unit_ids is None else self._unit_ids(unit_ids),
            use_rates=use_rates,
        )

    def _presentations(self, ids: Sequence[int] | int | None) -> pd.DataFrame:
        table = self.stimulus_presentations
        if ids is None:
            return table
        ids = list(np.atleast_1d(ids))
        missing = pd.Index(ids).difference(table.index)
        if len(missing):
            raise KeyError(f"stimulus presentation id(s) {list(missing[:10])} not in this session")
        return table.loc[ids]

    def _unit_ids(self, ids: Sequence[int] | int | None) -> np.ndarray:
        if ids is None:
            return self.units.index.to_numpy()
        ids = list(np.atleast_1d(ids))
        missing = pd.Index(ids).difference(self.units.index)
        if len(missing):
            raise KeyError(
                f"unit id(s) {list(missing[:10])} are not among this session's units (after its "
                "filters; see session.units)"
            )
        return np.asarray(ids)

    # -- LFP and CSD -----------------------------------------------------------------------------

    def _lfp_file(self, probe_id: int) -> LfpFile:
        """The probe's LFP file, opened once; fails before any request when it cannot exist."""
        probe_id = int(probe_id)
        if probe_id in self._lfp_files:
            return self._lfp_files[probe_id]
        probes = self.probes
        if probe_id not in probes.index:
            raise KeyError(
                f"probe {probe_id} is not in session {self.ecephys_session_id}; its probes are "
                f"{probes['description'].to_dict()}"
            )
        if not bool(probes.loc[probe_id, "has_lfp_data"]):
            with_lfp = list(probes.index[probes["has_lfp_data"].astype(bool)])
            raise ValueError(
                f"probe {probe_id} ({probes.loc[probe_id, 'description']}) has no LFP data "
                f"(has_lfp_data is False: there is no probe_{probe_id}_lfp.nwb); probes of "
                f"this session with LFP: {with_lfp}"
            )
        if self._open_lfp is None:
            raise ValueError(
                "this session was opened without access to its LFP files: open it with "
                "EcephysProjectCache.get_session_data(...) or EcephysSession.from_nwb_path(..., "
                "probe_lfp_paths={probe_id: path})"
            )
        self._lfp_files[probe_id] = LfpFile(self._open_lfp(probe_id), probe_id)
        return self._lfp_files[probe_id]

    def get_lfp(self, probe_id: int, mask_invalid_intervals: bool = True) -> xr.DataArray:
        """The probe's LFP as a lazy DataArray ``LFP`` (time, channel), float32 volts.

        ``time`` (float64 s) and ``channel`` (int64 ids of the LFP file's electrodes) are read
        once per probe. With ``mask_invalid_intervals``, samples inside invalid intervals tagged
        ``all_probes`` or the probe's name are NaN; the masking stays lazy. Only a computation
        reads data, and only the chunks its selection needs.
        """
        probe_id = int(probe_id)
        lfp = self._lfp_file(probe_id)
        if probe_id not in self._lfp_coordinates:
            self._lfp_coordinates[probe_id] = lfp.coordinates()
        times, channel_ids = self._lfp_coordinates[probe_id]
        array = xr.DataArray(
            lfp.data.to_dask(),
            dims=("time", "channel"),
            coords={"time": times, "channel": channel_ids},
            name="LFP",
        )
        if mask_invalid_intervals:
            probe_name = self.probes.loc[probe_id, "description"]
            invalid = stimuli.invalid_sample_mask(
                times, self.invalid_times, ["all_probes", probe_name]
            )
            if invalid.any():
                array = array.where(xr.DataArray(~invalid, dims="time"))
        return array

    def get_current_source_density(self, probe_id: int) -> xr.DataArray:
        """The probe's CSD: DataArray ``CSD`` (virtual_channel_index, time) with coordinates
        ``vertical_position`` and ``horizontal_position`` of the virtual electrodes."""
        csd = self._lfp_file(probe_id).csd()
        data = np.asarray(csd["data"]).T
        return xr.DataArray(
            data,
            name="CSD",
            dims=("virtual_channel_index", "time"),
            coords={
                "virtual_channel_index": np.arange(data.shape[0]),
                "time": csd["timestamps"],
                "vertical_position": (("virtual_channel_index",), csd["y_positions"]),
                "horizontal_position": (("virtual_channel_index",), csd["x_positions"]),
            },
        )

    def __repr__(self) -> str:
        return f"<EcephysSession {self.ecephys_session_id} ({self.session_type})>"


def _acronym_column(table: pd.DataFrame) -> str:
    """channels.csv's ``ecephys_structure_acronym`` when the session has it, else (a session
    opened from its file alone, where AllenSDK fails) the file's ``structure_acronym``."""
    return "ecephys_structure_acronym" if "ecephys_structure_acronym" in table else (
        "structure_acronym"
    )


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
        for start in range(0, len(self._ids), _ITERATION_BATCH):
            batch = self._ids[start : start + _ITERATION_BATCH]
            self.prefetch(batch)
            for unit_id in batch:
                yield unit_id, self[unit_id]

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        for _, value in self.items():
            yield value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} units>"
