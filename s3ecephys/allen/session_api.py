"""``session.api``: AllenSDK 2.16.2's ``EcephysNwbSessionApi`` readers, read in place.

AllenSDK's session gets every table from its API object and users reach into it for what the
session does not wrap (``api.get_running_speed(include_rotation=True)``,
``api.get_raw_running_data()`` …). :class:`SessionApi` has the same ``get_*`` methods with the
same arguments and results, read lazily: what the file holds is read when first asked for, and
what the session needs too (probes, channels, units, the ragged unit columns, LFP files) is read
once and shared with it. There is no ``nwbfile``: nothing here builds pynwb objects.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from dateutil.parser import parse as parse_datetime

from s3ecephys.allen import stimuli
from s3ecephys.allen.ragged_units import RaggedUnitMapping
from s3ecephys.allen.session_tables import (
    ELECTRODE_COLUMNS,
    UNIT_COLUMNS,
    channels_from_electrodes,
    clobbering_merge,
    filter_units,
    session_unit_filter_bounds,
    units_in_probe_order,
)
from s3ecephys.nwb import behaviour
from s3ecephys.nwb.lfp_file import LfpFile
from s3ecephys.nwb.session_file import SessionFile


class SessionApi:
    """The readers of one session file (AllenSDK's ``EcephysNwbSessionApi``), read in place.

    ``open_lfp(probe_id)`` opens a probe's LFP file; ``channel_overlay`` holds channels.csv's
    structure and CCF columns (``external_channel_columns`` in AllenSDK); the filters are
    AllenSDK's (``filter_by_validity``, ``filter_out_of_brain_units`` and the unit bounds).
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
        self.nwb = nwb
        self.filter_by_validity = filter_by_validity
        self.filter_out_of_brain_units = filter_out_of_brain_units
        self._open_lfp = open_lfp
        self._channel_overlay = channel_overlay
        self._unit_bounds = session_unit_filter_bounds(**unit_filters)
        self._ragged: dict[str, Any] = {}
        self._lfp_files: dict[int, LfpFile] = {}
        self._lfp_coordinates: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def test(self) -> None:
        """Fail unless the file reads (AllenSDK's check: its identifier is a session id)."""
        self.get_ecephys_session_id()

    # -- identity ------------------------------------------------------------------------------

    def get_ecephys_session_id(self) -> int:
        """The session id (the file's ``identifier``)."""
        return self.nwb.session_id

    def get_session_start_time(self) -> Any:
        """When the recording started: a timezone-aware ``datetime``, as pynwb parses it."""
        text = self.nwb.session_start_time
        return parse_datetime(text) if text else None

    def get_metadata(self) -> dict[str, Any]:
        """The subject and session type, with AllenSDK's keys (None for a field the file lacks,
        as pynwb gives it)."""
        subject = self.nwb.subject()
        return {
            "specimen_name": subject.get("specimen_name"),
            "age_in_days": subject.get("age_in_days"),
            "full_genotype": subject.get("genotype"),
            "strain": subject.get("strain"),
            "sex": subject.get("sex"),
            "stimulus_name": self.nwb.stimulus_notes,
            "subject_id": subject.get("subject_id"),
            "age": subject.get("age"),
            "species": subject.get("species"),
        }

    def get_rig_metadata(self) -> dict[str, Any] | None:
        """``{"geometry": rig geometry (rows x, y, z), "equipment": name}``; None when the
        session has no eye tracking rig metadata."""
        return self.nwb.rig_metadata()

    # -- probes, channels, units ---------------------------------------------------------------

    @cached_property
    def _probes(self) -> pd.DataFrame:
        return self.nwb.electrode_groups()

    def get_probes(self) -> pd.DataFrame:
        """One row per probe (index ``id``): ``description`` (probeA..), ``location``,
        ``sampling_rate``, ``lfp_sampling_rate`` (as the file states it), ``has_lfp_data``."""
        return self._probes.copy()

    @cached_property
    def _nwb_channels(self) -> pd.DataFrame:
        """Every channel of the file, shaped as AllenSDK's ``Channels`` (no overlay, no filter)."""
        return channels_from_electrodes(self.nwb.electrodes(columns=ELECTRODE_COLUMNS))

    def get_channels(self) -> pd.DataFrame:
        """The channels (index ``id``, file order): the file's ``structure_acronym`` and, from
        channels.csv, ``ecephys_structure_id``, ``ecephys_structure_acronym`` and the CCF
        coordinates (replacing the file's); only valid channels with ``filter_by_validity``."""
        channels = self._nwb_channels
        if self._channel_overlay is not None:
            channels = clobbering_merge(channels, self._channel_overlay)
        if self.filter_by_validity:
            channels = channels[channels["valid_data"]].drop(columns=["valid_data"])
        return channels.copy()

    @cached_property
    def _probe_units(self) -> pd.DataFrame:
        """Every unit of the file on a probe, in AllenSDK's order (probe by probe)."""
        units = self.nwb.units(columns=list(UNIT_COLUMNS))
        return units_in_probe_order(units, self._nwb_channels, self._probes)

    def get_units(self) -> pd.DataFrame:
        """The units passing the filters (index ``id``), before the session joins them with
        their channels and probes: AllenSDK's ``Probes.get_units_table``."""
        return filter_units(
            self._probe_units,
            self._nwb_channels,
            filter_by_validity=self.filter_by_validity,
            filter_out_of_brain_units=self.filter_out_of_brain_units,
            bounds=self._unit_bounds,
        ).copy()

    def _ragged_units(self, name: str) -> RaggedUnitMapping:
        """A ragged unit column over every unit on a probe; one column object per name, so that
        what the API and the session read is read once."""
        if name not in self._ragged:
            units = self._probe_units.index  # the unit table brings the column's row ends
            self._ragged[name] = RaggedUnitMapping(self.nwb.ragged_unit_column(name), units)
        return self._ragged[name]

    def get_spike_times(self) -> RaggedUnitMapping:
        """``unit id -> spike times (s)`` for every unit on a probe, the filters notwithstanding
        (as AllenSDK's); read per unit on access."""
        return self._ragged_units("spike_times")

    def get_spike_amplitudes(self) -> RaggedUnitMapping:
        """``unit id -> spike amplitudes`` for every unit on a probe; read per unit on access."""
        return self._ragged_units("spike_amplitudes")

    def get_mean_waveforms(self) -> RaggedUnitMapping:
        """``unit id -> mean waveform`` (array: channel row on the probe × sample) for every unit
        on a probe; read per unit on access."""
        return self._ragged_units("waveform_mean")

    # -- stimuli and intervals -----------------------------------------------------------------

    def get_stimulus_presentations(self) -> pd.DataFrame:
        """Every ``intervals/*_presentations`` table in one, sorted by start time, ``color``
        split: the raw table the session builds ``stimulus_presentations`` from."""
        return stimuli.nwb_stimulus_presentations(self.nwb.presentation_tables())

    def get_invalid_times(self) -> pd.DataFrame:
        """Intervals of bad data (index ``id``; start_time, stop_time, tags); a frame without
        columns (and an object index, as pandas 1.5 gave it under AllenSDK) when there are
        none."""
        table = self.nwb.invalid_times()
        return pd.DataFrame(index=pd.Index([], dtype=object)) if table is None else table

    def get_optogenetic_stimulation(self) -> pd.DataFrame:
        """The optotagging table (index ``id``); KeyError in sessions without optotagging."""
        table = self.nwb.optogenetic_stimulation()
        if table is None:
            raise KeyError(
                f"session {self.get_ecephys_session_id()} has no optotagging "
                "(processing/optotagging/optogenetic_stimulation): only Cre lines were "
                f"optotagged; this mouse is {self.get_metadata()['full_genotype']!r}"
            )
        return table

    # -- behaviour -------------------------------------------------------------------------------

    def get_running_speed(self, include_rotation: bool = False) -> pd.DataFrame:
        """``start_time, end_time, velocity`` (cm/s) and, with ``include_rotation``,
        ``net_rotation`` (radians per sample)."""
        return self.nwb.running_speed(include_rotation=include_rotation)

    def get_raw_running_data(self) -> pd.DataFrame:
        """``frame_time, net_rotation, signal_voltage, supply_voltage`` as acquired."""
        return behaviour.raw_running_data(self.nwb)

    def get_pupil_data(self) -> pd.DataFrame | None:
        """Ellipse fits of corneal reflection, pupil and eye per frame (index ``Time (s)``);
        None when the session has no eye tracking."""
        return self.nwb.pupil_data()

    def get_screen_gaze_data(self, include_filtered_data: bool = False) -> pd.DataFrame | None:
        """Gaze position on the screen per frame (index ``Time (s)``), raw and, with
        ``include_filtered_data``, filtered; None when the session has no gaze mapping."""
        return behaviour.screen_gaze_data(self.nwb, include_filtered_data=include_filtered_data)

    # -- LFP and CSD -----------------------------------------------------------------------------

    def _lfp_file(self, probe_id: int) -> LfpFile:
        """The probe's LFP file, opened once; fails before any request when it cannot exist."""
        probe_id = int(probe_id)
        if probe_id in self._lfp_files:
            return self._lfp_files[probe_id]
        probes = self._probes
        if probe_id not in probes.index:
            raise KeyError(
                f"probe {probe_id} is not in session {self.get_ecephys_session_id()}; its "
                f"probes are {probes['description'].to_dict()}"
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

    def get_lfp(self, probe_id: int) -> xr.DataArray:
        """The probe's LFP as a lazy DataArray ``LFP`` (time, channel), float32 volts, nothing
        masked; ``time`` and ``channel`` are read once per probe, the data by computations."""
        probe_id = int(probe_id)
        lfp = self._lfp_file(probe_id)
        if probe_id not in self._lfp_coordinates:
            self._lfp_coordinates[probe_id] = lfp.coordinates()
        times, channel_ids = self._lfp_coordinates[probe_id]
        return xr.DataArray(
            lfp.data.to_dask(),
            dims=("time", "channel"),
            coords={"time": times, "channel": channel_ids},
            name="LFP",
        )

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
